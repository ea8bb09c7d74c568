"""What the engine stores for ``supportbot stats``, through real turns: the answer's id that
👍 / 👎 rate, the model, "I don't know" answers, fallback causes, escalation causes and times."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from bots.app import Runtime
from core.clock import utcnow
from core.feedback import Rating
from core.types import ConversationKey
from storage.database import create_engine
from storage.stats import read
from tests.engine_helpers import message
from tests.fakes.anthropic_api import FakeAnthropic, overloaded, text


def key(n: int) -> ConversationKey:
    return ConversationKey("test", "T1", f"C{n}", "1700000000.000100")


async def test_real_turns_store_what_stats_counts(
    runtime: Runtime, fake_claude: FakeAnthropic, database_url: str
) -> None:
    engine, desk = runtime.engine, runtime.desk
    fake_claude.queue(text("It ships tomorrow."))
    answered = await engine.handle(message("Where is my order?", key=key(1)))
    fake_claude.queue(text("I don't have that information, sorry."))
    unknown = await engine.handle(message("Do you sell boats?", key=key(2)))
    fake_claude.queue(overloaded(), overloaded())
    failed = await engine.handle(message("Xyzzy plugh?", key=key(3)))

    assert answered is not None and answered.answer_id is not None
    assert unknown is not None and unknown.answer_id is not None
    assert failed is not None and failed.escalation is not None and failed.answer_id is None
    escalation = failed.escalation.id
    assert escalation is not None
    await desk.claim(escalation, staff_id="U0STAFF")
    await desk.resolve(escalation, staff_id="U0STAFF")
    feedback = desk.feedback
    assert feedback is not None
    before = [_rated(r) for r in Rating]
    for rating in (Rating.UP, Rating.UP, Rating.DOWN):
        assert await feedback.rate(answered.answer_id, user_id="U-customer", rating=rating)
    assert await feedback.rate(answered.answer_id, user_id="U-other", rating=Rating.UP) is None
    assert [_rated(r) - b for r, b in zip(Rating, before, strict=True)] == [2, 1]

    now = utcnow()
    database: AsyncEngine = create_engine(database_url)
    try:
        figures = await read(
            database, since=now - timedelta(hours=1), until=now + timedelta(minutes=1), model="x"
        )
    finally:
        await database.dispose()
    assert (figures.conversations, figures.turns, figures.answered_by_bot) == (3, 3, 2)
    assert figures.escalations == {"claude_unavailable": 1}
    assert figures.fallbacks == {"overloaded": 1}
    assert figures.dont_know == [("Do you sell boats?", 1)]
    assert figures.ratings == {"down": 1}
    assert len(figures.claim_seconds) == len(figures.resolve_seconds) == 1
    assert set(figures.tokens) == {runtime.settings.claude.model}
    assert figures.tokens[runtime.settings.claude.model].output > 0


def _rated(rating: Rating) -> float:
    return REGISTRY.get_sample_value("supportbot_ratings_total", {"rating": rating.value}) or 0.0
