"""``supportbot stats``: what the support bot did over a period, from the stored data.

``storage.stats`` reads the figures; this module prices Claude's tokens and renders them as a
table for people or JSON for machines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

_PERIOD = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MTOK = 1_000_000


class ModelPrice(BaseModel):
    """US dollars per million tokens. A cache read costs 0.1× input and a cache write 2×
    (the 1-hour lifetime this bot uses by default; 1.25× for 5 minutes) unless set."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)

    def cost(self, tokens: Tokens) -> float:
        read = self.cache_read if self.cache_read is not None else self.input * 0.1
        write = self.cache_write if self.cache_write is not None else self.input * 2
        return (
            tokens.input * self.input
            + tokens.output * self.output
            + tokens.cache_read * read
            + tokens.cache_write * write
        ) / MTOK


DEFAULT_PRICES = {
    "claude-sonnet-4-6": ModelPrice(input=3, output=15),
    "claude-haiku-4-5": ModelPrice(input=1, output=5),
    "claude-opus-4-6": ModelPrice(input=5, output=25),
    "claude-sonnet-5-5": ModelPrice(input=2, output=10),
    "claude-opus-5-5": ModelPrice(input=4, output=20),
    "claude-haiku-5-5": ModelPrice(input=0.1, output=0.5),
}
"""Anthropic's list prices of the models this bot is documented with (PLATFORMS.md)."""


def period(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``2w`` as a duration; ``ValueError`` otherwise."""
    found = _PERIOD.match(text.strip())
    if found is None or int(found[1]) == 0:
        raise ValueError(f"{text!r}: use a number and m, h, d or w, e.g. 7d")
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


@dataclass(slots=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, other: Tokens) -> None:
        self.input += other.input
        self.output += other.output
        self.cache_read += other.cache_read
        self.cache_write += other.cache_write


@dataclass(slots=True)
class Figures:
    """What ``storage.stats.read`` found between ``since`` and ``until``."""

    since: datetime
    until: datetime
    conversations: int = 0
    turns: int = 0
    """Customer messages."""
    conversations_with_turns: int = 0
    """The deflection rate's denominator: conversations in which a customer wrote."""
    answered_by_bot: int = 0
    """Of those, the ones that never needed a person (no escalation)."""
    escalations: dict[str, int] = field(default_factory=dict)
    """By cause (``core.metrics.ESCALATIONS``'s labels)."""
    claim_seconds: list[float] = field(default_factory=list)
    resolve_seconds: list[float] = field(default_factory=list)
    ratings: dict[str, int] = field(default_factory=dict)
    comments: int = 0
    asked_solved: int = 0
    solved: dict[bool, int] = field(default_factory=dict)
    tokens: dict[str, Tokens] = field(default_factory=dict)
    """By model."""
    fallbacks: dict[str, int] = field(default_factory=dict)
    dont_know: list[tuple[str, int]] = field(default_factory=list)
    """The questions answered "I don't know", most often asked first."""

    def report(self, prices: dict[str, ModelPrice]) -> dict[str, Any]:
        """Everything, with the derived rates and prices: the ``--json`` shape."""
        conversations = self.conversations_with_turns
        up, down = self.ratings.get("up", 0), self.ratings.get("down", 0)
        yes, no = self.solved.get(True, 0), self.solved.get(False, 0)
        costs = {m: _cost(prices, m, t) for m, t in self.tokens.items()}
        total = Tokens()
        for tokens in self.tokens.values():
            total.add(tokens)
        return {
            "since": self.since.isoformat(timespec="seconds"),
            "until": self.until.isoformat(timespec="seconds"),
            "conversations": self.conversations,
            "turns": self.turns,
            "answered_by_bot": self.answered_by_bot,
            "deflection_rate": _ratio(self.answered_by_bot, conversations),
            "escalations": {"total": sum(self.escalations.values()), "by_reason": self.escalations},
            "median_seconds_to_claim": _median(self.claim_seconds),
            "median_seconds_to_resolve": _median(self.resolve_seconds),
            "feedback": {
                "up": up,
                "down": down,
                "up_ratio": _ratio(up, up + down),
                "comments": self.comments,
            },
            "satisfaction": {
                "asked": self.asked_solved,
                "yes": yes,
                "no": no,
                "yes_ratio": _ratio(yes, yes + no),
            },
            "tokens": {
                "total": _tokens(total),
                "by_model": {
                    m: {**_tokens(t), "estimated_cost_usd": costs[m]}
                    for m, t in self.tokens.items()
                },
            },
            "estimated_cost_usd": (
                None if any(c is None for c in costs.values()) else round(sum(costs.values()), 4)
            ),
            "fallbacks": {"total": sum(self.fallbacks.values()), "by_cause": self.fallbacks},
            "dont_know_questions": [{"question": q, "count": n} for q, n in self.dont_know],
        }


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def as_table(report: dict[str, Any]) -> str:
    """The report for people: one figure a line, breakdowns indented under their total."""
    rows: list[tuple[str, str]] = [
        ("conversations", str(report["conversations"])),
        ("customer messages", str(report["turns"])),
        (
            "answered by the bot alone",
            f"{report['answered_by_bot']} ({_percent(report['deflection_rate'])})",
        ),
        ("escalations", str(report["escalations"]["total"])),
        *_breakdown(report["escalations"]["by_reason"]),
        ("median time to claim", _duration(report["median_seconds_to_claim"])),
        ("median time to resolve", _duration(report["median_seconds_to_resolve"])),
    ]
    feedback = report["feedback"]
    rows.append(
        (
            "answers rated 👍 / 👎",
            f"{feedback['up']} / {feedback['down']} ({_percent(feedback['up_ratio'])} 👍, "
            f"{feedback['comments']} said what was wrong)",
        )
    )
    satisfaction = report["satisfaction"]
    rows.append(
        (
            '"Did we solve it?"',
            f"asked {satisfaction['asked']}: {satisfaction['yes']} yes, {satisfaction['no']} no "
            f"({_percent(satisfaction['yes_ratio'])} yes)",
        )
    )
    total = report["tokens"]["total"]
    rows.append(
        (
            "Claude tokens",
            f"{total['input']:,} in, {total['output']:,} out, {total['cache_read']:,} cache "
            f"read, {total['cache_write']:,} cache write",
        )
    )
    for model, used in report["tokens"]["by_model"].items():
        cost = used["estimated_cost_usd"]
        rows.append((f"  {model}", "no price configured" if cost is None else f"${cost:,.4f}"))
    cost = report["estimated_cost_usd"]
    rows.append(
        ("estimated cost", "unknown (a model has no price)" if cost is None else f"${cost:,.4f}")
    )
    rows.append(("fallbacks", str(report["fallbacks"]["total"])))
    rows += _breakdown(report["fallbacks"]["by_cause"])
    rows.append(('top "I don\'t know" questions', "" if report["dont_know_questions"] else "none"))
    rows += [(f"  {q['count']}×", q["question"]) for q in report["dont_know_questions"]]
    width = max(len(label) for label, _ in rows)
    head = f"Since {report['since']} until {report['until']} (UTC)"
    return "\n".join([head, *(f"{label:<{width}}  {value}".rstrip() for label, value in rows)])


def _cost(prices: dict[str, ModelPrice], model: str, tokens: Tokens) -> float | None:
    price = prices.get(model)
    return round(price.cost(tokens), 4) if price is not None else None


def _tokens(tokens: Tokens) -> dict[str, int]:
    return {
        "input": tokens.input,
        "output": tokens.output,
        "cache_read": tokens.cache_read,
        "cache_write": tokens.cache_write,
    }


def _breakdown(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [
        (f"  {name}", str(n)) for name, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
    ]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    found = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(found, 1)


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.0%}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
