"""``supportbot stats``: exact figures from a seeded database (SQLite and PostgreSQL), and the
command's table and ``--json`` output."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from core.clock import utcnow
from core.stats import DEFAULT_PRICES, ModelPrice, period
from storage.database import create_engine
from storage.models import ConversationRow, EscalationRow, FeedbackRow, MessageRow
from storage.stats import read
from tests.conftest import Cli, migrate

UNTIL = datetime(2026, 3, 10, 12, 0)
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)
SONNET, HAIKU = "claude-sonnet-4-6", "claude-haiku-4-5"


class Seed:
    """Rows written straight into the tables, as the bot would have stored them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._next = 0

    async def conversation(self, at: datetime, *turns: dict[str, Any]) -> tuple[int, list[int]]:
        """A conversation opened at ``at`` with ``turns`` (seq in order); its id and theirs."""
        self._next += 1
        async with self._engine.begin() as connection:
            cid = await connection.scalar(
                insert(ConversationRow)
                .values(
                    key=f"slack:T1:D{self._next}:-",
                    platform="slack",
                    customer_id="U0CUSTOMER",
                    state="open",
                    window_start=0,
                    next_seq=len(turns),
                    human_active=False,
                    dont_know_streak=0,
                    created_at=at,
                    updated_at=at,
                )
                .returning(ConversationRow.id)
            )
            ids = []
            for seq, turn in enumerate(turns):
                said = turn.pop("text", "")
                values = {
                    "conversation_id": cid,
                    "seq": seq,
                    "content": [{"type": "text", "text": said}],
                    "tokens": 1,
                    "created_at": at + seq * MINUTE,
                    **turn,
                }
                ids.append(
                    await connection.scalar(
                        insert(MessageRow).values(values).returning(MessageRow.id)
                    )
                )
        assert cid is not None
        return cid, ids

    async def escalation(self, conversation_id: int, at: datetime, **fields: Any) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(EscalationRow).values(
                    conversation_id=conversation_id,
                    reason="a reason",
                    summary="a summary",
                    customer_id="U0CUSTOMER",
                    created_at=at,
                    updated_at=at,
                    **{"state": "open", **fields},
                )
            )

    async def rating(
        self, conversation_id: int, message_id: int, rating: str, **fields: Any
    ) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(
                insert(FeedbackRow).values(
                    conversation_id=conversation_id,
                    message_id=message_id,
                    user_id="U0CUSTOMER",
                    rating=rating,
                    created_at=fields.pop("at"),
                    updated_at=UNTIL,
                    **fields,
                )
            )


def customer(text: str) -> dict[str, Any]:
    return {"role": "user", "kind": "customer", "text": text}


def answer(text: str, **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "kind": "model", "text": text, **fields}


def notice(text: str, **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "kind": "notice", "text": text, **fields}


async def seed(engine: AsyncEngine, until: datetime) -> None:
    """A week of support: two conversations the bot answered alone, two handed to people,
    and one from a month ago that the week leaves out."""
    s = Seed(engine)
    usage = {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 5000}
    c1, (_, a1) = await s.conversation(
        until - DAY,
        customer("Where is my order?"),
        answer("On its way.", model=SONNET, cache_write_tokens=300, **usage),
    )
    await s.rating(c1, a1, "up", at=until - DAY)
    c2, (_, a2, _, _) = await s.conversation(
        until - 2 * DAY,
        customer("Do you sell boats?"),
        # Stored before the model was: priced as the configured one.
        answer(
            "I don't have that information.", dont_know=True, input_tokens=500, output_tokens=100
        ),
        customer("I want a human"),
        notice("A person will follow up."),
    )
    await s.rating(c2, a2, "down", comment="useless", at=until - 2 * DAY)
    at = until - 2 * DAY + 3 * MINUTE
    await s.escalation(
        c2,
        at,
        cause="customer_asked",
        state="resolved",
        claimed_by="U0STAFF",
        claimed_at=at + 5 * MINUTE,
        closed_at=at + 65 * MINUTE,
        solved_asked_at=at + 65 * MINUTE,
        solved=True,
    )
    c3, _ = await s.conversation(
        until - 3 * DAY,
        customer("do you   sell BOATS?"),
        notice("I don't have that information.", dont_know=True, fallback="overloaded"),
    )
    await s.escalation(
        c3,
        until - 3 * DAY,
        cause="claude_unavailable",
        state="claimed",
        claimed_at=until - 3 * DAY + 15 * MINUTE,
    )
    await s.conversation(
        until - DAY / 24,
        customer("Can I pay by card?"),
        answer("Yes.", model=HAIKU, input_tokens=2000, output_tokens=1000),
    )
    old, _ = await s.conversation(
        until - 30 * DAY,
        customer("Do you sell boats?"),
        answer(
            "I don't know.", dont_know=True, model=SONNET, input_tokens=9999, fallback="timeout"
        ),
    )
    await s.escalation(old, until - 30 * DAY, cause="customer_asked", claimed_at=until - 29 * DAY)


EXPECTED = {
    "since": "2026-03-03T12:00:00",
    "until": "2026-03-10T12:00:00",
    "conversations": 4,
    "turns": 5,
    "answered_by_bot": 2,
    "deflection_rate": 0.5,
    "escalations": {"total": 2, "by_reason": {"customer_asked": 1, "claude_unavailable": 1}},
    "median_seconds_to_claim": 600.0,
    "median_seconds_to_resolve": 3900.0,
    "feedback": {"up": 1, "down": 1, "up_ratio": 0.5, "comments": 1},
    "satisfaction": {"asked": 1, "yes": 1, "no": 0, "yes_ratio": 1.0},
    "tokens": {
        "total": {"input": 3500, "output": 1300, "cache_read": 5000, "cache_write": 300},
        "by_model": {
            # 1,500 × $3 + 300 × $15 + 5,000 × $0.30 + 300 × $6, per million.
            SONNET: {
                "input": 1500,
                "output": 300,
                "cache_read": 5000,
                "cache_write": 300,
                "estimated_cost_usd": 0.0123,
            },
            # 2,000 × $1 + 1,000 × $5, per million.
            HAIKU: {
                "input": 2000,
                "output": 1000,
                "cache_read": 0,
                "cache_write": 0,
                "estimated_cost_usd": 0.007,
            },
        },
    },
    "estimated_cost_usd": 0.0193,
    "fallbacks": {"total": 1, "by_cause": {"overloaded": 1}},
    "dont_know_questions": [{"question": "do you sell BOATS?", "count": 2}],
}


async def test_figures_from_a_seeded_week(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await seed(engine, UNTIL)
        figures = await read(engine, since=UNTIL - 7 * DAY, until=UNTIL, model=SONNET)
    finally:
        await engine.dispose()
    assert figures.report(DEFAULT_PRICES) == EXPECTED

    # A model without a price leaves the total unknown rather than wrong.
    priced = {SONNET: ModelPrice(input=3, output=15)}
    report = figures.report(priced)
    assert report["tokens"]["by_model"][HAIKU]["estimated_cost_usd"] is None
    assert report["estimated_cost_usd"] is None


def test_period_takes_minutes_hours_days_and_weeks() -> None:
    assert [period(p) for p in ("30m", "12h", "7d", "2w")] == [
        timedelta(minutes=30),
        timedelta(hours=12),
        timedelta(days=7),
        timedelta(weeks=2),
    ]
    for bad in ("7", "0d", "1y", "-1d", "d"):
        with pytest.raises(ValueError, match="use a number"):
            period(bad)


async def seeded(url: str) -> None:
    await migrate(url)
    engine = create_engine(url)
    try:
        await seed(engine, utcnow())
    finally:
        await engine.dispose()


def test_the_command_prints_a_table_and_json(cli: Cli, tmp_path: Path) -> None:
    asyncio.run(seeded(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"))

    table = cli("stats")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("Since ") and lines[0].endswith("(UTC)")
    assert "answered by the bot alone     2 (50%)" in lines
    assert "  customer_asked              1" in lines
    assert "median time to resolve        1 h 5 min" in lines
    assert "estimated cost                $0.0193" in lines
    assert "  2×                          do you sell BOATS?" in lines

    shown = cli("stats", "--json", "--since", "2w")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    assert set(report) == set(EXPECTED)
    assert report["conversations"] == 4 and report["estimated_cost_usd"] == 0.0193

    month = json.loads(cli("stats", "--json", "--since", "5w").output)
    assert month["conversations"] == 5 and month["fallbacks"]["by_cause"] == {
        "overloaded": 1,
        "timeout": 1,
    }

    refused = cli("stats", "--since", "week")
    assert refused.exit_code == 2 and "use a number" in refused.output
