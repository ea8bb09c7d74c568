"""The slice of history Claude sees, and its shape on the wire.

The window start only moves forward, and only in chunks: when the history outgrows the budget,
the oldest turns are dropped until it is back to ``KEEP`` of the budget. Between those jumps
every request repeats the previous one's messages byte for byte, so prompt caching keeps hitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from core import files, tokens
from core.types import Kind, Turn

KEEP = 0.6
TTLS = ("5m", "1h")
SEEN = frozenset({Kind.CUSTOMER, Kind.MODEL, Kind.TOOL_RESULT, Kind.STAFF})
"""The turn kinds Claude sees; a store's window holds only these."""


def fit(turns: list[Turn], *, budget: int) -> list[Turn]:
    """Drop a chunk of the oldest turns if the window exceeds ``budget`` tokens.

    Photos and PDFs go before words: over budget, the files of the oldest turns are replaced
    by a placeholder ("[photo: table.jpg]") first, and only if that is not enough are the
    oldest turns dropped. The engine stores the placeholders (``stripped``), so the next
    request repeats this one's prefix, as after a trim. The result always starts with a
    customer turn, so it never opens with an assistant turn or with a tool result whose tool
    call was dropped. The newest turn is always kept whole.
    """
    total = sum(t.tokens for t in turns)
    first = 0
    if total > budget:
        turns = list(turns)
        for index, turn in enumerate(turns[:-1]):
            if total <= budget * KEEP:
                break
            if any(files.is_file(b) for b in turn.content):
                turns[index] = without_files(turn)
                total -= turn.tokens - turns[index].tokens
        while first < len(turns) - 1 and total > budget * KEEP:
            total -= turns[first].tokens
            first += 1
    while first < len(turns) - 1 and turns[first].kind != Kind.CUSTOMER:
        first += 1
    return turns[first:]


def stripped(before: Sequence[Turn], after: Sequence[Turn]) -> list[Turn]:
    """The turns of ``after`` (``fit``'s result) whose files ``fit`` replaced by placeholders."""
    held = {t.seq: t.content for t in before}
    return [t for t in after if t.content != held.get(t.seq, t.content)]


def without_files(turn: Turn) -> Turn:
    """``turn`` with each photo or PDF replaced by its placeholder text."""
    content = [files.placeholder(b) if files.is_file(b) else b for b in turn.content]
    return replace(turn, content=content, tokens=tokens.estimate(content))


def cache_point(ttl: str) -> dict[str, str]:
    """A ``cache_control`` breakpoint whose entry lives ``ttl`` ("5m" or "1h") after its last
    hit. A 5-minute write costs 1.25× the input price, a 1-hour one 2×; a read costs 0.1×."""
    if ttl not in TTLS:
        raise ValueError(f"cache TTL must be one of {TTLS}, not {ttl!r}")
    return {"type": "ephemeral", "ttl": ttl}


def to_messages(turns: list[Turn], *, ttl: str) -> list[dict[str, Any]]:
    """Anthropic ``messages`` from stored turns.

    Consecutive same-role turns (a customer who wrote again after a failed call) merge into one
    message; a tool call whose result is missing gets one, and a result without its call is
    dropped, so the API never sees a broken tool pair. The last block carries the cache
    breakpoint for the conversation prefix, living ``ttl``.
    """
    messages: list[dict[str, Any]] = []
    for turn in turns:
        # The stored blocks are shared, never copied: every list here is new, and the one block
        # that changes (the breakpoint's) is replaced by a copy.
        content = [b for b in turn.content if b.get("type") != "text" or b.get("text")]
        if not content:
            continue
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"].extend(content)
        else:
            messages.append({"role": turn.role, "content": content})
    _repair_tool_pairs(messages)
    if messages:
        last = messages[-1]["content"]
        last[-1] = {**last[-1], "cache_control": cache_point(ttl)}
    return messages


def _repair_tool_pairs(messages: list[dict[str, Any]]) -> None:
    called: set[str] = set()
    for message in messages:
        if message["role"] == "assistant":
            called = {b["id"] for b in message["content"] if b.get("type") == "tool_use"}
            continue
        blocks = message["content"]
        answered = {b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"}
        kept = [b for b in blocks if b.get("type") != "tool_result" or b["tool_use_id"] in called]
        missing = [
            {"type": "tool_result", "tool_use_id": i, "content": "No result was recorded."}
            for i in sorted(called - answered)
        ]
        message["content"] = missing + kept
        called = set()
