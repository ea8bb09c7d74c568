""" "Did we solve it?" after staff resolve an escalation, on Slack and Discord over their fakes.

Asked once per escalation, only when people helped (claimed, or the team wrote in the
conversation), never after a hand-back; the customer's answer is stored on the escalation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bots.app import Runtime
from core.clock import utcnow
from core.config import Settings
from storage.database import create_engine
from storage.feedback import SqlFeedbackStore
from storage.models import EscalationRow
from tests.harness import PLATFORMS, Bot, Where, open_bot

WANT_PERSON = "Can I talk to a human about my order?"


@pytest.fixture(params=PLATFORMS)
async def bot(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Bot]:
    async with open_bot(request.param, runtime=runtime) as opened:
        yield opened


@pytest.fixture
def question(settings: Settings) -> str:
    assert settings.persona is not None
    return settings.persona.feedback.solved_question


async def solved(database_url: str) -> list[tuple[bool | None, bool]]:
    """Each escalation's stored answer, and whether it was asked."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(EscalationRow.solved, EscalationRow.solved_asked_at).order_by(
                    EscalationRow.id
                )
            )
            return [(r.solved, r.solved_asked_at is not None) for r in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("where", ["dm", "thread"])
async def test_a_resolve_after_a_claim_asks_once_and_the_answer_is_stored(
    bot: Bot, where: Where, question: str, database_url: str, settings: Settings
) -> None:
    await bot.say(WANT_PERSON, where=where)
    await bot.press(await bot.staff_notice(where=where), "claim")
    before = len(bot.conversation(where=where))
    await bot.press(await bot.staff_notice(where=where), "resolve")

    [asked] = bot.conversation(where=where)[before:]
    assert asked.says(question) and asked.buttons == ("yes", "no")
    assert await solved(database_url) == [(None, True)]

    # Someone else's press does not count; the customer's does, and the question says thanks.
    assert settings.persona is not None
    texts = settings.persona.feedback
    assert await bot.press(asked, "yes", as_staff=True) in (texts.not_yours, None)
    assert await solved(database_url) == [(None, True)]
    await bot.press(asked, "yes", as_staff=False)
    [thanked] = bot.conversation(where=where)[before:]
    assert thanked.says(texts.solved_thanks) and thanked.buttons == ()
    assert await solved(database_url) == [(True, True)]


async def test_not_asked_when_nobody_helped_or_the_bot_got_it_back(
    bot: Bot, question: str, database_url: str
) -> None:
    await bot.say(WANT_PERSON, where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "resolve")  # never claimed, nobody wrote

    await bot.say(WANT_PERSON, where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "claim")
    await bot.press(await bot.staff_notice(where="dm"), "hand_back")

    assert not any(p.says(question) for p in bot.conversation(where="dm"))
    assert await solved(database_url) == [(None, False), (None, False)]


async def test_two_replicas_resolving_at_once_ask_once(
    bot: Bot, runtime: Runtime, database_url: str
) -> None:
    await bot.say(WANT_PERSON, where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "claim")
    escalation_id = bot.turns.escalation_of(bot.turns.turns[0][0].key)
    await runtime.desk.resolve(escalation_id, staff_id="U0STAFF1")
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        replicas = [SqlFeedbackStore(engine=e) for e in engines]
        asked = await asyncio.gather(
            *(r.ask_solved(escalation_id, now=utcnow()) for r in replicas * 2)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(asked) == [False, False, False, True]
