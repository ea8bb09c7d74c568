"""The escalation lifecycle on the wire: FakeSlack → Bolt → SlackBot → real Engine and Desk.

Staff notification and its buttons, the hand-off in channel threads, the DM relay, re-pings
(also across a restart), "Talk to a human", off-hours. Waits are on events, never on time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from bots.app import open_runtime
from bots.slack.render import TALK_TO_HUMAN
from core.config import Settings
from core.desk import Desk, watch_repings
from core.engine import Engine
from core.hours import SupportHours
from core.types import StaffPost
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack, Params
from tests.slack_helpers import GROUP, STAFF, Harness, load_body, running_bot

PING = f"<!subteam^{GROUP}>"
# The staff buttons' action_ids, literally: buttons posted before an upgrade carry these.
CLAIM, RESOLVE, HAND_BACK = "escalation_claim", "escalation_resolve", "escalation_hand_back"
MENTION_TS = "1700000100.000100"
WANT_PERSON = "Can I talk to a human about my order?"


@pytest.fixture(params=["http", "socket"])
async def bot(
    request: pytest.FixtureRequest, slack: FakeSlack, engine: Engine, desk: Desk
) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk, mode=request.param) as harness:
        yield harness


@pytest.fixture
async def http_bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


@pytest.fixture
def quick_settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    """Re-pings after 0.12 s instead of 10 minutes."""
    return make_settings(database_url, fake_claude.base_url, reping_minutes=0.002)


@asynccontextmanager
async def watching(harness: Harness, desk: Desk) -> AsyncIterator[None]:
    """The composition root's re-ping watcher, checking every 50 ms."""
    watcher = asyncio.create_task(
        watch_repings(desk, harness.bot.reping, platforms={"slack"}, every=0.05)
    )
    try:
        yield
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


@asynccontextmanager
async def serving(slack: FakeSlack, settings: Settings) -> AsyncIterator[tuple[Harness, Desk]]:
    """A runtime of its own and a bot over it, as ``serve`` builds them."""
    async with (
        open_runtime(settings) as runtime,
        running_bot(slack, runtime.engine, desk=runtime.desk) as harness,
    ):
        yield harness, runtime.desk


def dm(text: str, ts: str, *, channel: str = "D0DM") -> dict:
    return load_body("message_im", text=text, ts=ts, channel=channel, event_id=f"Ev{channel}{ts}")


def in_thread(text: str, ts: str, *, user: str = "U0CUSTOMER", **event: object) -> dict:
    body = load_body("message_channel_thread", text=text, ts=ts, user=user, **event)
    body["event_id"] = f"Ev{ts}"
    return body


def staff_reply(notification: Params, text: str, ts: str, *, user: str = "U0STAFF1") -> dict:
    return load_body(
        "message_staff_thread", text=text, ts=ts, user=user, thread_ts=notification["ts"]
    )


async def reminded(slack: FakeSlack, notification: Params) -> Params:
    """Wait for the first post in ``notification``'s thread: its re-ping."""
    found = await slack.wait_for(
        "chat.postMessage", lambda p: p.get("thread_ts") == notification["ts"]
    )
    return found[0]


async def escalate_and_await_reping(harness: Harness, desk: Desk, channel: str) -> Params:
    """A fresh DM escalation and its re-ping by a new watcher: proof that a sweep has run since
    all before it. The watcher starts once the notification is posted: with re-pings due after
    0.12 s, a busy machine could otherwise see the re-ping fall due mid-turn and post the
    notification itself, leaving no reminder to wait for."""
    await harness.deliver(dm(WANT_PERSON, "1700000009.000100", channel=channel))
    *_, notification = harness.notifications()
    async with watching(harness, desk):
        await reminded(harness.fake, notification)
    return notification


def buttons(message: Params) -> list[str]:
    return [
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]


def repings(harness: Harness, notification: Params) -> list[Params]:
    return [m for m in harness.thread(notification) if "still unclaimed" in m["text"]]


async def test_dm_escalation_notifies_staff_and_claim_updates_it_in_place(
    bot: Harness, desk: Desk, settings: Settings
) -> None:
    assert settings.persona is not None
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))

    [to_customer] = bot.posts("D0DM")
    assert to_customer["text"] == settings.persona.handoff
    assert TALK_TO_HUMAN not in str(to_customer["blocks"])
    [notice] = bot.notifications()
    assert notice["text"].startswith(f"{PING} Escalation #1 from <@U0CUSTOMER> (Slack DM)")
    assert "*Reason:* The customer asked for a person" in notice["text"]
    assert "https://fake.slack.test/archives/D0DM/p1700000001000100" in notice["text"]
    assert ":red_circle: *Open*" in notice["text"]
    assert buttons(notice) == [CLAIM, RESOLVE, HAND_BACK]
    view = await desk.get(1)
    assert view is not None and view.staff == StaffPost(STAFF, notice["ts"])

    assert await bot.press(notice, CLAIM, user="U0STAFF1") == 200
    [update] = bot.fake.calls_to("chat.update")
    assert (update["channel"], update["ts"]) == (STAFF, notice["ts"])
    assert ":large_yellow_circle: *Claimed* by <@U0STAFF1>" in update["text"]
    assert buttons(bot.fake.message(STAFF, notice["ts"])) == [RESOLVE, HAND_BACK]
    claimed = await desk.get(1)
    assert claimed is not None and claimed.state == "claimed" and claimed.claimed_by == "U0STAFF1"
    assert len(bot.notifications()) == 1


async def test_resolve_and_hand_back_close_the_notification(bot: Harness, desk: Desk) -> None:
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    await bot.deliver(dm(WANT_PERSON, "1700000002.000100", channel="D0DM2"))
    first, second = bot.notifications()

    await bot.press(first, RESOLVE, user="U0STAFF2")
    await bot.press(second, CLAIM, user="U0STAFF1")
    await bot.press(bot.fake.message(STAFF, second["ts"]), HAND_BACK, user="U0STAFF1")

    resolved = bot.fake.message(STAFF, first["ts"])
    assert ":white_check_mark: *Resolved* by <@U0STAFF2>" in resolved["text"]
    assert buttons(resolved) == []
    handed = bot.fake.message(STAFF, second["ts"])
    assert "*Handed back to the bot* by <@U0STAFF1>" in handed["text"]
    assert "(claimed by <@U0STAFF1>)" in handed["text"]
    assert buttons(handed) == []
    assert [v.state for v in (await desk.get(1), await desk.get(2)) if v] == [
        "resolved",
        "handed_back",
    ]


async def test_someone_outside_the_support_group_cannot_act(bot: Harness, desk: Desk) -> None:
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = bot.notifications()

    assert await bot.press(notice, CLAIM, user="U0INTERN") == 200
    assert bot.fake.calls_to("chat.postEphemeral") == [
        {"channel": STAFF, "user": "U0INTERN", "text": "Only the support team can do that."}
    ]
    assert bot.fake.calls_to("chat.update") == []
    view = await desk.get(1)
    assert view is not None and view.state == "open" and view.claimed_by is None


async def test_second_claim_is_told_who_was_first(http_bot: Harness, desk: Desk) -> None:
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = http_bot.notifications()
    seen_by_both = dict(notice)  # the second person still sees the Claim button
    await http_bot.press(notice, CLAIM, user="U0STAFF1")
    await http_bot.press(seen_by_both, CLAIM, user="U0STAFF2", action_ts="1700000520.000100")

    [whisper] = http_bot.fake.calls_to("chat.postEphemeral")
    assert whisper["user"] == "U0STAFF2"
    assert whisper["text"] == "<@U0STAFF1> has already claimed this escalation."
    view = await desk.get(1)
    assert view is not None and view.claimed_by == "U0STAFF1"


async def test_second_trigger_updates_the_notification_without_pinging_again(
    bot: Harness, fake_claude: FakeAnthropic
) -> None:
    await bot.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
    await bot.deliver(in_thread("Please, a real person!", "1700000150.000100"))

    first, second = bot.posts("C0SUPPORT")
    assert first["text"].endswith(f"\n\n{PING}")
    assert "subteam" not in second["text"]
    [notice] = bot.notifications()
    assert notice["text"].startswith("Support team Escalation #1")
    assert "subteam" not in str(bot.fake.calls_to("chat.postMessage")[1:])
    [update] = bot.fake.calls_to("chat.update")
    assert update["ts"] == notice["ts"]
    assert "The customer asked for a person; The customer asked for a person" in update["text"]


async def test_staff_in_the_thread_silences_the_bot_until_resolved(
    http_bot: Harness, fake_claude: FakeAnthropic
) -> None:
    await http_bot.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
    [notice] = http_bot.notifications()
    await http_bot.deliver(
        in_thread(
            "Hi, Dana here &amp; I'll sort it out",
            "1700000160.000100",
            user="U0STAFF1",
            user_profile={"display_name": "Dana"},
        )
    )
    asked = len(fake_claude.requests)
    await http_bot.deliver(in_thread("Thank you Dana!", "1700000170.000100"))
    assert len(http_bot.posts("C0SUPPORT")) == 1, "only the escalation reply"
    assert len(fake_claude.requests) == asked

    await http_bot.press(notice, RESOLVE, user="U0STAFF1")
    fake_claude.queue(text("Glad Dana could help. Anything else?"))
    await http_bot.deliver(in_thread("One more question about shipping", "1700000180.000100"))

    last = http_bot.posts("C0SUPPORT")[-1]
    assert last["text"] == "Glad Dana could help. Anything else?"
    assert TALK_TO_HUMAN in str(last["blocks"])
    said = [
        (m["role"], b["text"])
        for m in fake_claude.requests[-1].messages
        for b in m["content"]
        if b.get("type") == "text"
    ]
    assert ("assistant", "Dana (support team): Hi, Dana here & I'll sort it out") in said


async def test_dm_relay_both_ways_loses_and_doubles_nothing(
    bot: Harness, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = bot.notifications()
    fake_claude.queue(text("Thanks, I've added that for the team."))
    await bot.deliver(dm("It's order #123 & it's <late>", "1700000002.000100"))

    staff_reply_body = staff_reply(notice, "Hi, Dana here &amp; I'm on it", "1700000600.000100")
    await bot.deliver(staff_reply_body)
    await bot.deliver(staff_reply_body, retry=1)  # Slack delivers it again
    await bot.deliver(staff_reply(notice, "just a note", "1700000601.000100", user="U0INTERN"))
    asked = len(fake_claude.requests)
    await bot.deliver(dm("Thanks Dana!", "1700000003.000100"))

    assert [m["text"] for m in bot.thread(notice)] == [
        "<@U0CUSTOMER> wrote: It's order #123 &amp; it's &lt;late&gt;",
        "<@U0CUSTOMER> wrote: Thanks Dana!",
    ]
    assert [p["text"] for p in bot.posts("D0DM")][1:] == [
        "Thanks, I've added that for the team.",
        "*Dana* (support team): Hi, Dana here &amp; I'm on it",
    ]
    assert all("thread_ts" not in p for p in bot.posts("D0DM"))
    assert len(fake_claude.requests) == asked, "a person is talking: the bot stays quiet"

    await bot.press(notice, RESOLVE, user="U0STAFF1")
    await bot.deliver(staff_reply(notice, "Anything else?", "1700000602.000100"))
    [whisper] = bot.fake.calls_to("chat.postEphemeral")
    assert whisper["text"].startswith("This escalation is closed")
    assert whisper["thread_ts"] == notice["ts"]
    fake_claude.queue(text("You're welcome!"))
    await bot.deliver(dm("All good now", "1700000004.000100"))
    assert bot.posts("D0DM")[-1]["text"] == "You're welcome!"
    assert len(bot.thread(notice)) == 2


async def test_a_message_sent_while_staff_are_being_told_is_relayed_too(
    http_bot: Harness, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Customer wants a person about order #123."))
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"), wait=False)
    await http_bot.deliver(dm("It's order #123", "1700000002.000100"), wait=False)
    await http_bot.bot.drain()

    [notice] = http_bot.notifications()
    assert [m["text"] for m in http_bot.thread(notice)] == ["<@U0CUSTOMER> wrote: It's order #123"]


async def test_staff_thread_of_a_channel_escalation_stays_internal(
    http_bot: Harness, desk: Desk
) -> None:
    await http_bot.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
    [notice] = http_bot.notifications()
    await http_bot.deliver(staff_reply(notice, "I'll take this one", "1700000600.000100"))
    assert len(http_bot.posts("C0SUPPORT")) == 1
    assert http_bot.thread(notice) == []


async def test_staff_channel_messages_never_reach_the_port(
    http_bot: Harness, fake_claude: FakeAnthropic
) -> None:
    top = load_body("app_mention", channel=STAFF, text="<@U0BOT> what is our refund policy?")
    await http_bot.deliver(top)
    await http_bot.deliver(load_body("message_staff_thread"))  # a thread with no escalation
    assert http_bot.posts() == []
    assert fake_claude.requests == []


async def test_talk_to_a_human_button_escalates_the_conversation_it_is_under(
    bot: Harness, desk: Desk, settings: Settings
) -> None:
    assert settings.persona is not None
    await bot.deliver(dm("Where is my order?", "1700000001.000100"))
    [answer] = bot.fake.messages
    assert buttons(answer) == [TALK_TO_HUMAN]

    assert await bot.press(answer, TALK_TO_HUMAN, user="U0CUSTOMER") == 200
    _, handoff = bot.posts("D0DM")
    assert handoff["text"] == settings.persona.handoff
    assert "thread_ts" not in handoff and TALK_TO_HUMAN not in str(handoff["blocks"])
    [notice] = bot.notifications()
    assert notice["text"].startswith(f"{PING} Escalation #1 from <@U0CUSTOMER> (Slack DM)")
    [live] = await desk.live()
    assert live.reason == "The customer asked for a person"
    assert live.customer_message_id == "button:1700000510.000200"


async def test_off_hours_customer_is_told_when_and_staff_are_notified(
    slack: FakeSlack, database_url: str, fake_claude: FakeAnthropic
) -> None:
    settings = make_settings(database_url, fake_claude.base_url)
    assert settings.persona is not None
    closed_day = (datetime.now(UTC) + timedelta(days=3)).strftime("%a").lower()
    hours = SupportHours(timezone="UTC", days=[closed_day], start="09:00", end="17:00")
    persona = settings.persona.model_copy(update={"support_hours": hours})
    settings = settings.model_copy(update={"persona": persona})
    async with serving(slack, settings) as (harness, _):
        await harness.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [to_customer] = harness.posts("D0DM")
    assert to_customer["text"].startswith(persona.handoff)
    assert "Our support team is offline right now and will be back" in to_customer["text"]
    [notice] = harness.notifications()
    assert notice["text"].startswith(f"{PING} Escalation #1")


async def test_claimed_escalation_is_not_repinged_and_unclaimed_ones_once(
    slack: FakeSlack, quick_settings: Settings
) -> None:
    async with serving(slack, quick_settings) as (harness, desk):
        await harness.deliver(dm(WANT_PERSON, "1700000001.000100"))
        [claimed] = harness.notifications()
        await harness.press(claimed, CLAIM, user="U0STAFF1")
        # Claimed before the watcher starts, so its re-ping was due but never taken.
        await harness.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
        _, unclaimed = harness.notifications()
        async with watching(harness, desk):
            reminder = await reminded(slack, unclaimed)
        last = await escalate_and_await_reping(harness, desk, "D0DM2")
    assert reminder["text"].startswith(f"{PING} Escalation #2 from <@U0CUSTOMER>")
    assert "is still unclaimed after" in reminder["text"]
    assert "Open the customer's message>" in reminder["text"]
    assert repings(harness, claimed) == []
    assert len(repings(harness, unclaimed)) == 1
    assert len(repings(harness, last)) == 1


async def test_reping_survives_a_restart_and_fires_once(
    slack: FakeSlack, quick_settings: Settings
) -> None:
    async with serving(slack, quick_settings) as (first, _):
        await first.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [before] = first.notifications()
    assert repings(first, before) == []

    async with serving(slack, quick_settings) as (harness, desk):
        async with watching(harness, desk):
            await reminded(slack, before)
        after = await escalate_and_await_reping(harness, desk, "D0DM2")
    assert len(repings(harness, before)) == 1
    assert len(repings(harness, after)) == 1


async def test_reping_posts_the_notification_that_failed_earlier(
    slack: FakeSlack, http_bot: Harness, desk: Desk
) -> None:
    slack.fail("chat.postMessage", "not_in_channel", channel=STAFF)
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    assert http_bot.notifications() == []
    [unposted] = await desk.live()
    assert unposted.staff is None

    await http_bot.bot.reping(unposted)
    [notice] = http_bot.notifications()
    assert notice["text"].startswith(f"{PING} Escalation #1")
    assert buttons(notice) == [CLAIM, RESOLVE, HAND_BACK]
    view = await desk.get(1)
    assert view is not None and view.staff == StaffPost(STAFF, notice["ts"])


async def test_a_notice_whose_answer_was_lost_is_found_not_posted_again(
    slack: FakeSlack, http_bot: Harness, desk: Desk
) -> None:
    slack.fault_next("chat.postMessage", "made", channel=STAFF)  # made, then the line drops
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [unrecorded] = await desk.live()
    assert unrecorded.staff is None

    await http_bot.bot.reping(unrecorded)
    [notice] = http_bot.notifications()
    view = await desk.get(1)
    assert view is not None and view.staff == StaffPost(STAFF, notice["ts"])
    assert [p["channel"] for p in slack.calls_to("conversations.history")] == [STAFF]


async def test_a_reping_whose_answer_was_lost_is_found_not_posted_again(
    slack: FakeSlack, http_bot: Harness, desk: Desk
) -> None:
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = http_bot.notifications()
    [view] = await desk.live()
    slack.fault_next("chat.postMessage", "made", channel=STAFF)  # made, then the line drops

    await http_bot.bot.reping(view)  # not known to be posted: tried again
    await http_bot.bot.reping(view)

    assert len(repings(http_bot, notice)) == 1
    assert len(slack.calls_to("conversations.replies")) == 2, "looked for before each try"


async def test_without_team_settings_the_customer_still_gets_the_reply(
    slack: FakeSlack, engine: Engine, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bots.slack")
    unset = {"support_group_id": None, "staff_channel": None}
    async with running_bot(slack, engine, desk=desk, **unset) as harness:
        await harness.deliver(dm(WANT_PERSON, "1700000001.000100"))
        await harness.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
        await harness.bot.reping((await desk.live())[0])
    assert [p["channel"] for p in harness.posts()] == ["D0DM", "C0SUPPORT"]
    assert all("subteam" not in p["text"] for p in harness.posts())
    assert "SLACK_STAFF_CHANNEL unset" in caplog.text
    assert "SLACK_SUPPORT_GROUP_ID unset" in caplog.text


async def test_staff_who_mention_the_bot_in_a_customer_thread_are_answered(
    http_bot: Harness, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    # The rule for both platforms: staff addressing the bot get an answer like anyone else;
    # only their posts without a mention take the conversation over.
    await http_bot.deliver(load_body("app_mention", text=f"<@U0BOT> {WANT_PERSON}"))
    staff_mention = load_body(
        "app_mention_in_thread",
        text="<@U0BOT> what is our refund window?",
        user="U0STAFF1",
        ts="1700000160.000100",
        thread_ts=MENTION_TS,
        event_id="Ev0STAFFMENTION",
    )
    fake_claude.queue(text("Refunds are accepted within 30 days."), text("You're welcome!"))
    await http_bot.deliver(staff_mention)
    await http_bot.deliver(in_thread("Thanks!", "1700000170.000100"))

    answers = [p["text"] for p in http_bot.posts("C0SUPPORT")][1:]
    assert answers == ["Refunds are accepted within 30 days.", "You're welcome!"]
    assert fake_claude.requests[-2].last_user_text.endswith("what is our refund window?")
    [live] = await desk.live()
    assert live.state == "open", "the bot still has the conversation"


async def test_staff_reply_without_a_profile_is_relayed_under_their_slack_name(
    bot: Harness,
) -> None:
    await bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = bot.notifications()
    for n, words in enumerate(["Hello, I'm on it", "Found your order"]):
        body = staff_reply(notice, words, f"170000060{n}.000100")
        del body["event"]["user_profile"]
        await bot.deliver(body)

    assert [p["text"] for p in bot.posts("D0DM")][1:] == [
        "*name-U0STAFF1* (support team): Hello, I'm on it",
        "*name-U0STAFF1* (support team): Found your order",
    ]
    assert bot.fake.calls_to("users.info") == [{"user": "U0STAFF1"}]


async def test_staff_replies_are_relayed_one_at_a_time_in_order(
    http_bot: Harness, desk: Desk
) -> None:
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = http_bot.notifications()
    long = "\n".join(f"Step {i}: check the thing." for i in range(1200))
    first = staff_reply(notice, long, "1700000600.000100")
    second = staff_reply(notice, "That's all.", "1700000601.000100")
    second["event_id"] = "Ev0STAFF2"
    await http_bot.deliver(first, wait=False)
    await http_bot.deliver(second, wait=False)
    await http_bot.bot.drain()

    relayed = [p["text"] for p in http_bot.posts("D0DM")][1:]
    assert len(relayed) > 2, "the long reply takes several messages"
    assert relayed[-1] == "*Dana* (support team): That's all."
    assert "\n".join(relayed[:-1]) == "*Dana* (support team): " + long


async def test_reping_of_an_escalation_claimed_since_it_fell_due_is_dropped(
    http_bot: Harness, desk: Desk
) -> None:
    await http_bot.deliver(dm(WANT_PERSON, "1700000001.000100"))
    [notice] = http_bot.notifications()
    due = await desk.get(1)
    assert due is not None and due.state == "open"
    await http_bot.press(notice, CLAIM, user="U0STAFF1")

    await http_bot.bot.reping(due)
    assert http_bot.thread(notice) == []
    assert len(http_bot.notifications()) == 1
