"""Confirm and Cancel on Slack and Discord, on the wire: the fake platforms, the real adapters,
engine, store and MCP client, the demo shop served in-process, fake Claude."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest

from bots.app import Runtime
from bots.slack.render import CANCEL, CONFIRM
from core import engine as engine_module
from tests.action_helpers import MAYA, Shop, serving_shop, shop_runtime
from tests.discord_helpers import fake_discord_installed, say
from tests.discord_helpers import running_bot as discord_bot
from tests.fakes.anthropic_api import FakeAnthropic, text, tool_use
from tests.fakes.discord_api import FakeDiscord, user
from tests.fakes.slack_api import FakeSlack, Params
from tests.slack_helpers import load_body
from tests.slack_helpers import running_bot as slack_bot

CANCEL_IT = f"Please cancel order W1001, my email is {MAYA}"


shop = pytest.fixture(serving_shop)
runtime = pytest.fixture(shop_runtime)


def claude_cancels(fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}),
        text("Done: W1001 is cancelled."),
    )


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
    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
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


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with fake_discord_installed() as fake:
        yield fake


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
