"""The staff outbox on Slack (issue 9): relays between a DM and its staff thread, staff
replies to the customer and notice re-draws survive a failed post, reach their place exactly
once, and are given up when they never can.

Real Bolt and slack_sdk against the fake Slack, the real engine and desk on SQLite and
PostgreSQL, and the composition root's watcher (``watch_staff_outbox``) checking every 50 ms.
Discord's side is in ``tests/test_discord_escalation.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from bots.app import Runtime
from bots.common.workflow import NOT_DELIVERED
from core.desk import Desk
from core.engine import Engine
from core.metrics import STAFF_GIVEN_UP
from core.ports import StaffPending
from core.recovery import watch_staff_outbox
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack, Params
from tests.slack_helpers import STAFF, Harness, load_body, running_bot

WANT_PERSON = "Can I talk to a human about my order?"
DM = "D0DM"


@asynccontextmanager
async def retrying(
    runtime: Runtime,
    resend: Callable[[StaffPending], None],
    *,
    platform: str,
    give_up: timedelta = timedelta(hours=1),
) -> AsyncIterator[None]:
    """The composition root's staff outbox watcher, checking every 50 ms (a re-draw is
    offered at once, not after ``SUPPORTBOT_RECOVER_AFTER_SECONDS``)."""
    watcher = asyncio.create_task(
        watch_staff_outbox(
            runtime.store,
            resend,
            platforms={platform},
            after=timedelta(0),
            give_up_after=give_up,
            every=0.05,
        )
    )
    try:
        yield
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def settled(desk: Desk, platform: str) -> list[StaffPending]:
    """What the staff outbox still holds for ``platform``."""
    return await desk.waiting({platform})


@pytest.fixture
async def bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


def dm(text: str, ts: str) -> dict:
    return load_body("message_im", text=text, ts=ts, channel=DM, event_id=f"Ev{ts}")


def staff_reply(notice: Params, text: str, ts: str) -> dict:
    return load_body(
        "message_staff_thread", text=text, ts=ts, user="U0STAFF1", thread_ts=notice["ts"]
    )


async def escalated(bot: Harness) -> Params:
    """The customer asks for a person in their DM; the staff notice."""
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = bot.notifications()
    return notice


def relays(bot: Harness, notice: Params) -> list[str]:
    return [m["text"] for m in bot.thread(notice)]


def from_staff(bot: Harness) -> list[str]:
    return [p["text"] for p in bot.posts(DM) if "(support team)" in p["text"]]


@pytest.mark.parametrize("fault", ["error", "made"], ids=["5xx", "response-lost"])
async def test_a_relay_whose_post_failed_reaches_the_staff_thread_once(
    bot: Harness,
    slack: FakeSlack,
    fake_claude: FakeAnthropic,
    runtime: Runtime,
    desk: Desk,
    fault: str,
) -> None:
    notice = await escalated(bot)
    fake_claude.queue(text("Thanks, I've added that for the team."))
    if fault == "error":  # slack_sdk tries a 500 three times
        slack.fail("chat.postMessage", "internal_error", status=500, times=3, channel=STAFF)
    else:
        slack.fault_next("chat.postMessage", "made", channel=STAFF)
    await bot.deliver(dm("It's order #123", "1700000002.000100"))
    [waiting] = await settled(desk, "slack")
    assert waiting.kind == "relay"

    async with retrying(runtime, bot.bot.resend, platform="slack"):
        await slack.wait_for("conversations.replies", lambda p: p["ts"] == notice["ts"])
        await bot.bot.drain()  # the watcher's try, looked for first, is over

    assert relays(bot, notice) == ["<@U0CUSTOMER> wrote: It's order #123"]
    tries = [p for p in slack.calls_to("chat.postMessage") if p.get("thread_ts") == notice["ts"]]
    # Three 500s, then the post; or the one post whose answer was lost, found by the look.
    assert len(tries) == {"error": 4, "made": 1}[fault]
    assert await settled(desk, "slack") == []


async def test_an_earlier_relay_that_starts_the_same_does_not_stand_in_for_a_failed_one(
    bot: Harness, slack: FakeSlack, fake_claude: FakeAnthropic, runtime: Runtime, desk: Desk
) -> None:
    notice = await escalated(bot)
    fake_claude.queue(text("Noted."), text("Thanks, I've added that for the team."))
    await bot.deliver(dm("ok", "1700000002.000100"))
    slack.fail("chat.postMessage", "internal_error", status=500, times=3, channel=STAFF)
    await bot.deliver(dm("ok thanks, it's order #123", "1700000003.000100"))

    async with retrying(runtime, bot.bot.resend, platform="slack"):
        await slack.wait_for("conversations.replies", lambda p: p["ts"] == notice["ts"])
        await bot.bot.drain()

    assert relays(bot, notice) == [
        "<@U0CUSTOMER> wrote: ok",
        "<@U0CUSTOMER> wrote: ok thanks, it's order #123",
    ]
    assert await settled(desk, "slack") == []


async def test_a_claim_whose_notice_update_failed_is_redrawn_with_the_current_state(
    bot: Harness, slack: FakeSlack, runtime: Runtime, desk: Desk
) -> None:
    notice = await escalated(bot)
    slack.fail("chat.update", "internal_error", times=2)
    await bot.press(notice, "escalation_claim", user="U0STAFF1")
    await bot.press(notice, "escalation_resolve", user="U0STAFF1")
    assert ":red_circle: *Open*" in slack.message(STAFF, notice["ts"])["text"]
    [waiting] = await settled(desk, "slack")
    assert waiting.kind == "notice"

    async with retrying(runtime, bot.bot.resend, platform="slack"):
        await slack.wait_for("chat.update", count=3)
        await bot.bot.drain()

    drawn = slack.message(STAFF, notice["ts"])["text"]
    assert "Resolved" in drawn and "Claimed" not in drawn
    assert len(slack.calls_to("chat.update")) == 3, "two failed, then one re-draw for both"
    assert await settled(desk, "slack") == []


async def test_a_staff_reply_whose_post_failed_reaches_the_customer_once(
    bot: Harness, slack: FakeSlack, runtime: Runtime, desk: Desk
) -> None:
    notice = await escalated(bot)
    slack.fault_next("chat.postMessage", "made", channel=DM)
    await bot.deliver(staff_reply(notice, "Hi, Dana here, on it", "1700000600.000100"))
    assert slack.calls_to("chat.postEphemeral") == [], "not given up: nothing said to staff"

    async with retrying(runtime, bot.bot.resend, platform="slack"):
        await slack.wait_for("conversations.history", lambda p: p["channel"] == DM)
        await bot.bot.drain()

    assert from_staff(bot) == ["*Dana* (support team): Hi, Dana here, on it"]
    assert slack.calls_to("conversations.history")[0]["oldest"] == notice["ts"]
    assert slack.calls_to("chat.postEphemeral") == []
    assert await settled(desk, "slack") == []


async def test_a_staff_reply_the_dm_refuses_for_good_is_given_up_and_staff_are_told(
    bot: Harness, slack: FakeSlack, desk: Desk
) -> None:
    notice = await escalated(bot)
    given_up = STAFF_GIVEN_UP.labels("reply")._value.get()
    slack.fail("chat.postMessage", "channel_not_found", channel=DM)
    await bot.deliver(staff_reply(notice, "Hi, Dana here", "1700000600.000100"))

    [told] = slack.calls_to("chat.postEphemeral")
    assert (told["user"], told["text"]) == ("U0STAFF1", NOT_DELIVERED)
    assert await settled(desk, "slack") == []
    assert STAFF_GIVEN_UP.labels("reply")._value.get() == given_up + 1


async def test_a_staff_reply_still_failing_past_the_limit_is_given_up_and_staff_are_told(
    bot: Harness, slack: FakeSlack, runtime: Runtime, desk: Desk
) -> None:
    notice = await escalated(bot)
    slack.fail("chat.postMessage", "internal_error", channel=DM)
    await bot.deliver(staff_reply(notice, "Hi, Dana here", "1700000600.000100"))
    assert slack.calls_to("chat.postEphemeral") == []

    async with retrying(runtime, bot.bot.resend, platform="slack", give_up=timedelta(0)):
        [told] = await slack.wait_for("chat.postEphemeral")
        await bot.bot.drain()

    assert (told["user"], told["text"]) == ("U0STAFF1", NOT_DELIVERED)
    assert from_staff(bot) == [], "not posted again once given up"
    assert await settled(desk, "slack") == []
