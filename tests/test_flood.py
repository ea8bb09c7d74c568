"""Per-customer flood control: over the rate, messages are kept and answered together, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bots.app import open_runtime
from core.clock import utcnow
from core.flood import FloodGate, Hold
from core.types import ConversationKey
from tests.conftest import make_settings
from tests.engine_helpers import KEY, message
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import load_body, running_bot

CASEY = ("slack", "U0CASEY")


def test_a_burst_is_admitted_then_one_message_per_interval_and_the_first_held_is_marked() -> None:
    gate = FloodGate(per_minute=6, burst=3)  # a token every 10 s

    admitted = [gate.take(CASEY, 0.0) for _ in range(3)]
    held = [gate.take(CASEY, 1.0), gate.take(CASEY, 2.0)]
    other = gate.take(("discord", "U0CASEY"), 2.0)
    later = gate.take(CASEY, 11.0)  # one token back since the burst was spent

    assert admitted == [None, None, None]
    assert held == [Hold(wait=9.0, first=True), Hold(wait=8.0, first=False)]
    assert other is None, "each platform's customer has a bucket of their own"
    assert later is None
    again = gate.take(CASEY, 11.0)
    assert again is not None and again.first, "a new flood, a new notice"
    assert again.wait == pytest.approx(9.0)


async def test_messages_over_the_rate_get_one_notice_and_one_answer_together(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        fake_claude.base_url,
        flood_per_minute=30,  # a token every two seconds
        flood_burst=2,
    )
    assert settings.persona is not None
    fake_claude.queue(text("Answer one."), text("Answer two."), text("Answers three and four."))
    async with (
        FakeSlack() as slack,
        open_runtime(settings, flood=True) as runtime,
        running_bot(slack, runtime.engine, desk=runtime.desk) as bot,
    ):
        for n in range(4):
            said = load_body("message_im", text=f"Question {n + 1}?", ts=f"170000000{n}.0001")
            await bot.deliver(said, wait=False)
        await bot.bot.drain()  # the held messages' catch-up included
        history = await runtime.store.history(said_key(said))

    posts = [p["text"] for p in bot.posts("D0DM")]
    assert posts == [
        "Answer one.",
        "Answer two.",
        settings.persona.flood_notice,
        "Answers three and four.",
    ]
    assert len(fake_claude.requests) == 3, "one Claude call for the held pair"
    last = fake_claude.requests[-1].body["messages"][-1]
    assert [b["text"] for b in last["content"] if b["type"] == "text"][-2:] == [
        "Question 3?",
        "Question 4?",
    ]
    assert [t.text for t in history if t.role == "user"] == [
        "Question 1?",
        "Question 2?",
        "Question 3?",
        "Question 4?",
    ]


def said_key(body: dict[str, Any]) -> ConversationKey:
    event = body["event"]
    return ConversationKey("slack", body["team_id"], event["channel"], "-")


async def test_the_catch_up_answer_is_kept_as_the_reply_to_the_last_held_message(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    # It is posted after all of them: the outbox looks for it after the last one, where the
    # watcher's look (which stops at the customer's next message) can find it.
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        fake_claude.base_url,
        flood_per_minute=1,
        flood_burst=1,
    )
    fake_claude.queue(text("Answer one."), text("Answers two and three."))
    async with open_runtime(settings, flood=True) as runtime:
        asked = [message(f"Question {n}?", message_id=f"m-{n}") for n in (1, 2, 3)]
        replies = [await runtime.engine.handle(m) for m in asked]
        first_held = replies[1]
        assert first_held is not None and first_held.catch_up is not None
        caught_up = await runtime.engine.recover(first_held.catch_up, direct=False, late_after=None)
        assert caught_up is not None and caught_up.outbox is not None
        waiting = await runtime.store.undelivered(
            platforms={KEY.platform}, before=utcnow() + timedelta(minutes=1)
        )

    [kept] = [w for w in waiting if w.id == caught_up.outbox]
    assert caught_up.text == "Answers two and three."
    assert kept.turn.message_id == "m-3"
