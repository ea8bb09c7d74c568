"""Confirm and Cancel on Slack and Discord, on the wire: the fake platforms, the real adapters,
engine, store and MCP client, the demo shop served in-process, fake Claude."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bots.app import Runtime, open_runtime
from bots.slack.render import CANCEL, CONFIRM
from core import engine as engine_module
from core.actions import ServerConfig
from tests.action_helpers import MAYA, Shop, serving_shop, shop_runtime, with_servers
from tests.discord_helpers import running_bot as discord_bot
from tests.discord_helpers import say
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, text, tool_use
from tests.fakes.discord_api import FakeDiscord, user
from tests.fakes.slack_api import FakeSlack, Params
from tests.slack_helpers import GROUP, STAFF, Harness, load_body
from tests.slack_helpers import running_bot as slack_bot

CANCEL_IT = f"Please cancel order W1001, my email is {MAYA}"


shop = pytest.fixture(serving_shop)
runtime = pytest.fixture(shop_runtime)


@pytest.fixture
async def approving(
    database_url: str, fake_claude: FakeAnthropic, shop: Shop
) -> AsyncIterator[Runtime]:
    """The shop with cancel_order for the support team to approve."""
    config = ServerConfig(url=shop.url, staff_approval=["cancel_order"])
    async with open_runtime(with_servers(database_url, fake_claude, {"shop": config})) as opened:
        yield opened


def slack_dm(text: str, ts: str) -> dict:
    return load_body("message_im", text=text, ts=ts, channel="D0DM", event_id=f"EvD0DM{ts}")


def claude_cancels(fake_claude: FakeAnthropic, then: str = "Done: W1001 is cancelled.") -> None:
    """Claude proposes cancelling W1001, and says ``then`` once it hears the outcome."""
    fake_claude.queue(
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}), text(then)
    )


@asynccontextmanager
async def on_slack(runtime: Runtime) -> AsyncIterator[Harness]:
    """The Slack adapter on a fake Slack, over ``runtime``'s engine."""
    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
        yield bot


async def asked_to_wait(bot: Harness, body: dict) -> tuple[Params, Params]:
    """Deliver ``body``; the customer's answer (told the team decides, with no buttons) and the
    team's approval request in the staff channel."""
    await bot.deliver(body)
    [told] = [m for m in bot.fake.messages if m["channel"] != STAFF]
    assert engine_module.STAFF_PROPOSED in told["text"] and "W1001" in told["text"]
    assert slack_buttons(told) == [], "the customer cannot approve: no buttons for them"
    [request] = bot.notifications()
    return told, request


def note_saying(request: RecordedRequest, word: str) -> str:
    """The support-system note in the request's last message that says ``word``."""
    [note] = [
        b["source"]["data"]
        for b in request.messages[-1]["content"]
        if b.get("type") == "document" and word in b["source"]["data"]
    ]
    return note


def slack_buttons(message: Params) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


async def test_slack_confirm_buttons_work_for_the_customer_only(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    claude_cancels(fake_claude)
    async with on_slack(runtime) as bot:
        await bot.deliver(load_body("app_mention", text=f"<@U0BOT> {CANCEL_IT}"))
        asked = copy.deepcopy(bot.fake.messages[0])  # as posted; the fake applies updates
        assert "Shall I go ahead with this?" in asked["text"] and "W1001" in asked["text"]
        assert slack_buttons(asked) == [(CONFIRM, "1"), (CANCEL, "1")]

        assert await bot.press(asked, CONFIRM, user="U0INTERN") == 200
        assert bot.fake.calls_to("chat.postEphemeral") == [
            {
                "channel": asked["channel"],
                "user": "U0INTERN",
                "text": engine_module.NOT_YOURS,
                "thread_ts": asked["thread_ts"],
            }
        ]
        assert shop.status("W1001") == "pending"
        assert slack_buttons(bot.fake.messages[0]), "still there for the customer"

        assert await bot.press(asked, CONFIRM, user="U0CUSTOMER") == 200
        assert shop.status("W1001") == "cancelled"
        decided = bot.fake.messages[0]
        assert decided["ts"] == asked["ts"] and slack_buttons(decided) == []
        assert decided["text"] == asked["text"]
        done = bot.posts(asked["channel"])[-1]
        assert done["text"] == "Done: W1001 is cancelled."
        assert done.get("thread_ts") == asked["thread_ts"]

        # The same press delivered again: nothing runs, the customer alone is told.
        assert await bot.press(asked, CONFIRM, user="U0CUSTOMER") == 200
        note = bot.fake.calls_to("chat.postEphemeral")[-1]
        assert (note["user"], note["text"]) == ("U0CUSTOMER", "This was already confirmed.")
    assert len(fake_claude.requests) == 2


async def test_discord_confirm_buttons_work_for_the_customer_only(
    runtime: Runtime, fake_claude: FakeAnthropic, fake_discord: FakeDiscord, shop: Shop
) -> None:
    claude_cancels(fake_claude)
    w = fake_discord.world
    async with discord_bot(fake_discord, runtime.engine, runtime.desk):
        await say(fake_discord, w.dm_channel_id, CANCEL_IT)
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.dm_channel_id)) == 1)
        [asked] = fake_discord.posts_in(w.dm_channel_id)
        assert "Shall I go ahead with this?" in asked.content
        assert asked.buttons == ["supportbot:act:confirm:1", "supportbot:act:cancel:1"]

        stranger = user(w.customer_id + 1000, "mallory")
        pressed = await fake_discord.click(asked.id, "supportbot:act:confirm:1", by=stranger)
        await fake_discord.wait_for(lambda: bool(fake_discord.followed_up(pressed)))
        [note] = fake_discord.followed_up(pressed)
        assert note.content == engine_module.NOT_YOURS
        assert note.data["flags"] & 64  # ephemeral: only the presser sees it
        assert shop.status("W1001") == "pending"
        assert fake_discord.edits == []

        await fake_discord.click(asked.id, "supportbot:act:confirm:1", by=fake_discord.customer)
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.dm_channel_id)) == 2)
        [edit] = fake_discord.edits
        assert edit.id == asked.id and edit.buttons == []
        done = fake_discord.posts_in(w.dm_channel_id)[-1]
        assert done.content == "Done: W1001 is cancelled."
        assert shop.status("W1001") == "cancelled"
    assert len(fake_claude.requests) == 2


async def test_slack_staff_approve_a_dm_customers_change_in_the_staff_channel(
    approving: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    claude_cancels(fake_claude, "The team approved it: W1001 is cancelled.")
    async with on_slack(approving) as bot:
        _, request = await asked_to_wait(bot, slack_dm(CANCEL_IT, "1700000001.000100"))
        assert request["text"].startswith(
            f"<!subteam^{GROUP}> Approval needed: <@U0CUSTOMER> (Slack DM)"
        )
        assert "W1001" in request["text"] and MAYA in request["text"]
        assert slack_buttons(request) == [(CONFIRM, "1"), (CANCEL, "1")]
        asked = copy.deepcopy(request)

        await bot.press(asked, CONFIRM, user="U0INTERN")  # in the channel, not on the team
        [refused] = bot.fake.calls_to("chat.postEphemeral")
        assert (refused["user"], refused["text"]) == ("U0INTERN", engine_module.STAFF_DECIDES)
        assert shop.status("W1001") == "pending" and len(bot.posts("D0DM")) == 1

        await bot.press(asked, CONFIRM, user="U0STAFF1")
        assert shop.status("W1001") == "cancelled"
        done = bot.posts("D0DM")[-1]
        assert done["text"] == "The team approved it: W1001 is cancelled."
        [decided] = bot.notifications()
        assert slack_buttons(decided) == []
        line = decided["blocks"][-1]["elements"][0]["text"]
        assert line.startswith("<@U0STAFF1> confirmed Cancel an order: it ran. Result:")

        await bot.press(asked, CONFIRM, user="U0STAFF2")  # a second member, too late
        note = bot.fake.calls_to("chat.postEphemeral")[-1]
        assert (note["user"], note["text"]) == ("U0STAFF2", "This was already confirmed.")
    assert len(fake_claude.requests) == 2
    note = note_saying(fake_claude.requests[1], "approved")
    assert note.startswith("The support team approved it and Cancel an order ran.")


async def test_slack_a_confirm_while_staff_have_the_dm_tells_the_customer_and_the_team(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    claude_cancels(fake_claude)
    fake_claude.queue(text("Customer wants W1001 cancelled and asked for a person."))
    async with on_slack(runtime) as bot:
        await bot.deliver(slack_dm(CANCEL_IT, "1700000001.000100"))
        asked = copy.deepcopy(bot.fake.messages[0])
        await bot.deliver(slack_dm("Actually, can I talk to a human?", "1700000002.000100"))
        [notice] = bot.notifications()
        await bot.press(notice, "escalation_claim", user="U0STAFF1")
        asked_claude = len(fake_claude.requests)

        await bot.press(asked, CONFIRM, user="U0CUSTOMER")

        assert shop.status("W1001") == "cancelled"
        assert len(fake_claude.requests) == asked_claude, "staff have it: Claude stays out"
        assert bot.posts("D0DM")[-1]["text"] == "Done: Cancel an order."
        staff_thread = [m["text"] for m in bot.thread(notice)]
        assert staff_thread[-1].startswith(
            "<@U0CUSTOMER> confirmed Cancel an order: it ran. Result:"
        )
        assert slack_buttons(bot.fake.messages[0]) == []


async def test_discord_staff_approve_a_dm_customers_change_in_the_staff_channel(
    approving: Runtime, fake_claude: FakeAnthropic, fake_discord: FakeDiscord, shop: Shop
) -> None:
    claude_cancels(fake_claude, "The team approved it: W1001 is cancelled.")
    w = fake_discord.world
    async with discord_bot(fake_discord, approving.engine, approving.desk):
        await say(fake_discord, w.dm_channel_id, CANCEL_IT)
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.staff_channel_id)) == 1)
        [told] = fake_discord.posts_in(w.dm_channel_id)
        assert engine_module.STAFF_PROPOSED in told.content and told.buttons == []
        [request] = fake_discord.posts_in(w.staff_channel_id)
        assert request.content.startswith(f"<@&{w.support_role_id}> **Approval needed**")
        assert f"<@{w.customer_id}>" in request.content and "W1001" in request.content
        assert request.buttons == ["supportbot:act:confirm:1", "supportbot:act:cancel:1"]
        assert request.allowed_mentions == {"parse": [], "roles": [w.support_role_id]}

        # Not on the team: refused, privately.
        pressed = await fake_discord.click(request.id, "supportbot:act:confirm:1")
        await fake_discord.wait_for(lambda: bool(fake_discord.followed_up(pressed)))
        [note] = fake_discord.followed_up(pressed)
        assert note.content == engine_module.STAFF_DECIDES and note.data["flags"] & 64
        assert shop.status("W1001") == "pending"

        await fake_discord.click(
            request.id,
            "supportbot:act:confirm:1",
            by=fake_discord.staff,
            roles=[w.support_role_id],
        )
        await fake_discord.wait_for(lambda: len(fake_discord.posts_in(w.dm_channel_id)) == 2)
        assert shop.status("W1001") == "cancelled"
        done = fake_discord.posts_in(w.dm_channel_id)[-1]
        assert done.content == "The team approved it: W1001 is cancelled."
        [edit] = fake_discord.edits
        assert edit.id == request.id and edit.buttons == []
        assert f"<@{w.staff_user_id}> confirmed Cancel an order: it ran." in edit.content
    assert len(fake_claude.requests) == 2


async def test_slack_staff_approve_a_channel_thread_change_and_the_answer_lands_there(
    approving: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    claude_cancels(fake_claude, "The team declined it, so W1001 stays as it is.")
    async with on_slack(approving) as bot:
        told, request = await asked_to_wait(
            bot, load_body("app_mention", text=f"<@U0BOT> {CANCEL_IT}")
        )
        assert "Open the conversation" in request["text"]

        await bot.press(copy.deepcopy(request), CANCEL, user="U0STAFF1")

        answer = bot.posts(told["channel"])[-1]
        assert answer["text"] == "The team declined it, so W1001 stays as it is."
        assert answer.get("thread_ts") == told["thread_ts"]
        line = bot.notifications()[0]["blocks"][-1]["elements"][0]["text"]
        assert line == "<@U0STAFF1> cancelled Cancel an order: nothing was run."
    assert shop.status("W1001") == "pending"
    note = note_saying(fake_claude.requests[1], "declined")
    assert note.startswith("The support team declined it: shop__cancel_order was not run")
