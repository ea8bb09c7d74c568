"""The support workflow as customers and staff meet it, one scenario for every platform.

Each test runs on Slack and on Discord (and on each database): the real adapter over its fake
server, the real engine and desk, the fake Claude. See ``tests/harness.py`` for the API; where
the platforms differ, the scenario reads a harness property instead of naming a platform.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bots.app import Runtime
from core.config import Settings
from tests.fakes.anthropic_api import FakeAnthropic, text, tool_use
from tests.harness import PLATFORMS, Bot, Where, open_bot

WANT_PERSON = "Can I talk to a human about my order?"
STAFF_BUTTONS = ("claim", "resolve", "hand_back")
ONLY_STAFF = "Only the support team can do that."


@pytest.fixture(params=PLATFORMS)
async def bot(request: pytest.FixtureRequest, runtime: Runtime) -> AsyncIterator[Bot]:
    async with open_bot(request.param, runtime=runtime) as opened:
        yield opened


@pytest.fixture
def handoff(settings: Settings) -> str:
    assert settings.persona is not None
    return settings.persona.handoff


@pytest.mark.parametrize("where", ["thread", "dm"])
async def test_asking_for_a_person_pings_the_team_once(
    bot: Bot, where: Where, handoff: str
) -> None:
    reply = await bot.say(WANT_PERSON, where=where)
    notice = await bot.staff_notice(where=where)

    assert reply is not None and reply.says(handoff)
    assert "talk" not in reply.buttons  # no "Talk to a human" under a hand-off
    assert notice.buttons == STAFF_BUTTONS
    assert notice.says("Escalation #1") and bot.customer_mention in notice.text
    # One ping: in the customer's thread, where the team answers; for a DM, in the notice.
    pinged = reply if where == "thread" else notice
    assert bot.team_ping in pinged.text
    assert [p.ref for p in bot.team_pings()] == [pinged.ref]

    again = await bot.say("Please, a real person!", where=where)
    assert again is not None and not again.pings
    assert [p.ref for p in bot.team_pings()] == [pinged.ref], "a second trigger pings nobody"
    assert (await bot.staff_notice(where=where)).ref == notice.ref, "no second notification"


async def test_claude_handing_over_pings_the_team(bot: Bot, fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Billing dispute"}))

    assert bot.team_ping in await bot.say("I want a human")  # DESIGN.md point 9

    assert (await bot.staff_notice()).says("Billing dispute")


@pytest.mark.parametrize("where", ["thread", "dm"])
async def test_the_talk_to_a_human_button_escalates_like_asking(
    bot: Bot, where: Where, handoff: str
) -> None:
    answer = await bot.say("How long does express shipping take?", where=where)
    assert answer is not None and answer.buttons == ("talk", "up", "down")

    assert await bot.press(answer, "talk", as_staff=False) is None
    *_, handed = bot.conversation(where=where)
    notice = await bot.staff_notice(where=where)

    assert handed.ref != answer.ref and handed.says(handoff) and "talk" not in handed.buttons
    assert notice.buttons == STAFF_BUTTONS
    assert [p.ref for p in bot.team_pings()] == [(handed if where == "thread" else notice).ref]
    [answer_now] = [p for p in bot.conversation(where=where) if p.ref == answer.ref]
    assert ("talk" in answer_now.buttons) is bot.talk_button_stays
    assert answer_now.buttons[-2:] == ("up", "down"), "the answer can still be rated"


@pytest.mark.parametrize(
    ("close", "shown"), [("resolve", "resolved"), ("hand_back", "handed back to the bot")]
)
async def test_claim_quiets_the_bot_and_closing_brings_it_back(
    bot: Bot, fake_claude: FakeAnthropic, close: str, shown: str
) -> None:
    await bot.say(WANT_PERSON)
    notice = await bot.staff_notice()
    assert not notice.says(f"by {bot.staff_mention}")

    assert await bot.press(notice, "claim") is None
    claimed = await bot.staff_notice()
    assert claimed.ref == notice.ref  # updated in place
    assert claimed.says(f"claimed by {bot.staff_mention}")
    assert claimed.buttons == ("resolve", "hand_back")

    asked = len(fake_claude.requests)
    assert await bot.say("Hello? Is anyone looking at this?") is None
    assert len(fake_claude.requests) == asked, "a person has it: Claude is not asked"

    assert await bot.press(claimed, close) is None
    closed = await bot.staff_notice()
    assert closed.ref == notice.ref
    assert closed.says(f"{shown} by {bot.staff_mention}")
    assert closed.buttons == ()

    fake_claude.queue(text("Express shipping takes two days."))
    back = await bot.say("How long does express shipping take?")
    assert back is not None and back.text == "Express shipping takes two days."
    assert back.buttons == ("talk", "up", "down") and not back.pings


async def test_staff_writing_in_the_customer_thread_takes_over_until_resolved(
    bot: Bot, fake_claude: FakeAnthropic
) -> None:
    await bot.say(WANT_PERSON)
    assert await bot.staff_joins_thread("Hi, I am looking at your order now") is None
    asked = len(fake_claude.requests)
    assert await bot.say("Thank you!") is None
    assert len(fake_claude.requests) == asked, "a person has it: Claude is not asked"

    await bot.press(await bot.staff_notice(), "resolve")
    fake_claude.queue(text("Anything else I can help with?"))
    back = await bot.say("One more question about shipping")
    assert back is not None and back.text == "Anything else I can help with?"
    history = [
        block["text"]
        for message in fake_claude.requests[-1].messages
        for block in message["content"]
        if block["type"] == "text"
    ]
    assert f"{bot.staff_name} (support team): Hi, I am looking at your order now" in history


async def test_dm_relay_both_ways_until_resolved(bot: Bot, fake_claude: FakeAnthropic) -> None:
    await bot.say(WANT_PERSON, where="dm")
    fake_claude.queue(text("Thanks, I have added that for the team."))
    answer = await bot.say("It is order 123", where="dm")
    assert answer is not None and answer.text == "Thanks, I have added that for the team."
    [relayed] = await bot.staff_thread(where="dm")
    assert relayed.says(f"{bot.customer_mention} wrote: It is order 123") and not relayed.pings

    to_customer = await bot.staff_writes_in_thread("I see it and I am on it", where="dm")
    assert to_customer is not None and not to_customer.pings
    assert to_customer.says(f"{bot.staff_name} (support team): I see it and I am on it")

    asked = len(fake_claude.requests)
    assert await bot.say("Thank you", where="dm") is None, "a person is talking: bot is quiet"
    assert len(fake_claude.requests) == asked
    assert (await bot.staff_thread(where="dm"))[-1].says(f"{bot.customer_mention} wrote: Thank you")

    await bot.press(await bot.staff_notice(where="dm"), "resolve")
    assert await bot.staff_writes_in_thread("Anything else?", where="dm") is None
    fake_claude.queue(text("You are welcome!"))
    after = await bot.say("All good now", where="dm")
    assert after is not None and after.text == "You are welcome!"
    relayed = [p for p in await bot.staff_thread(where="dm") if p.says("All good now")]
    assert relayed == [], "nothing relayed once resolved"


async def test_only_an_unclaimed_escalation_is_repinged_and_only_once(bot: Bot) -> None:
    await bot.say(WANT_PERSON, where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "claim")
    await bot.say(WANT_PERSON, where="thread")
    pings_before = len(bot.team_pings())

    await bot.reping_sweep()
    await bot.reping_sweep()

    [reping] = await bot.staff_thread(where="thread")
    assert reping.pings and reping.says("is still unclaimed")
    assert reping.says("Escalation #2")
    assert await bot.staff_thread(where="dm") == []
    assert len(bot.team_pings()) == pings_before + 1


@pytest.mark.parametrize("where", ["thread", "dm"])
async def test_the_same_delivery_twice_gets_one_answer(
    bot: Bot, where: Where, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Express shipping takes two days."))
    first = await bot.say("How long does express shipping take?", where=where)
    assert first is not None and first.text == "Express shipping takes two days."
    asked = len(fake_claude.requests)

    assert await bot.redeliver_last() is None
    assert len(fake_claude.requests) == asked


async def test_a_staff_reply_delivered_twice_reaches_the_customer_once(bot: Bot) -> None:
    await bot.say(WANT_PERSON, where="dm")
    first = await bot.staff_writes_in_thread("Refund is on its way", where="dm")
    assert first is not None and first.says("Refund is on its way")

    assert await bot.redeliver_last() is None


async def test_someone_outside_the_team_cannot_press_a_staff_button(bot: Bot) -> None:
    await bot.say(WANT_PERSON)
    notice = await bot.staff_notice()

    assert await bot.press(notice, "claim", as_staff=False) == ONLY_STAFF
    assert bot.notes() == [ONLY_STAFF]
    assert await bot.staff_notice() == notice
    assert await bot.press(notice, "claim") is None  # the team still can
    assert (await bot.staff_notice()).says(f"claimed by {bot.staff_mention}")


async def test_a_staff_reply_after_resolve_is_not_sent_and_staff_are_told(bot: Bot) -> None:
    await bot.say(WANT_PERSON, where="dm")
    await bot.press(await bot.staff_notice(where="dm"), "resolve")
    assert bot.notes() == []

    assert await bot.staff_writes_in_thread("Anything else?", where="dm") is None
    [note] = bot.notes()
    assert "not sent" in note.lower() or "not delivered" in note.lower()
