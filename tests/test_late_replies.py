"""Replies posted late, and replies given up (issue 9).

A reply the outbox delivers after its turn (the turn's process died before posting it, here
the engine's turn run without its adapter; or its post failed past the turn's tries) reads and
works like an on-time one: 👍/👎 and "Talk to a human" under an answer, Confirm and Cancel under
a proposal still waiting, the team's ping under a hand-off. A reply that can never be delivered
(the channel deleted, the customer's DMs closed) is given up at the platform's first refusal for
good, and one older than the limit is given up by the outbox watcher: logged once, counted, and
never tried again. The real SDKs against the fake platforms; both databases.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from bots.app import Runtime
from bots.discord.buttons import TALK_ID
from bots.slack.render import CANCEL, CONFIRM, FEEDBACK, TALK_TO_HUMAN
from core.clock import utcnow
from core.ports import Outbound, TurnWrites, Undelivered, new_outbox_id
from core.recovery import watch_undelivered
from core.types import ConversationKey, IncomingMessage
from tests.action_helpers import MAYA, Shop, serving_shop, shop_runtime
from tests.discord_helpers import fake_discord_installed, running_bot, say
from tests.fakes.anthropic_api import FakeAnthropic, text, tool_use
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack, Params
from tests.slack_helpers import GROUP, load_body
from tests.slack_helpers import running_bot as slack_bot
from tests.test_recovery import ANSWER, customer_turn

shop = pytest.fixture(serving_shop)
runtime = pytest.fixture(shop_runtime)
MINUTE = timedelta(minutes=1)
HELP = "C0HELP"
CANCEL_IT = f"Please cancel order W1001, my email is {MAYA}"


def given_up() -> float:
    return REGISTRY.get_sample_value("supportbot_replies_given_up_total") or 0.0


async def unposted(
    runtime: Runtime, key: ConversationKey, asked_id: str, said: str, *, by: str = "U0CUSTOMER"
) -> Undelivered:
    """The engine's turn for ``said`` (asked by ``by``), its reply stored and never posted (its
    process died before the post): what the outbox watcher finds."""
    message = IncomingMessage(key=key, author_id=by, text=said, message_id=asked_id)
    reply = await runtime.engine.handle(message)
    assert reply is not None and reply.outbox is not None
    return await waiting(runtime, reply.outbox, key.platform)


async def waiting(runtime: Runtime, outbox_id: str, platform: str) -> Undelivered:
    found = await runtime.store.undelivered(platforms={platform}, before=utcnow() + MINUTE)
    [undelivered] = [u for u in found if u.id == outbox_id]
    return undelivered


def discord_thread(fake: FakeDiscord) -> ConversationKey:
    """A customer's thread in the support channel (its id: the question's, as on Discord)."""
    w = fake.world
    thread = fake.add_thread(w.support_channel_id)
    return ConversationKey("discord", str(w.guild_id), str(w.support_channel_id), str(thread))


def casey(fake: FakeDiscord) -> str:
    """The fake's customer."""
    return str(fake.world.customer_id)


def slack_thread(ts: str) -> ConversationKey:
    return ConversationKey("slack", "T0TEAM", HELP, ts)


def slack_buttons(message: Params) -> list[tuple[str, str]]:
    """Each button's action and value (👍's for the 👍/👎 pair)."""
    return [
        (e["action_id"], e.get("value") or e["positive_button"]["value"])
        for b in message["blocks"]
        if b["type"] in ("actions", "context_actions")
        for e in b["elements"]
    ]


# Late replies read like on-time ones.


async def test_discord_late_answer_has_its_buttons_and_a_late_hand_off_pings(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    async with fake_discord_installed() as fake:
        asked, handed = discord_thread(fake), discord_thread(fake)
        answer = await unposted(runtime, asked, asked.thread_id, "Refunds?", by=casey(fake))
        hand_off = await unposted(runtime, handed, handed.thread_id, "Real person!", by=casey(fake))
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.redeliver(answer)
            bot.redeliver(hand_off)
            await bot.drain()
        role = fake.world.support_role_id
    await runtime.engine.settle()

    [posted] = fake.posts_in(int(asked.thread_id))
    assert posted.content == ANSWER
    rated = answer.answer_id
    assert rated is not None
    assert posted.buttons == [TALK_ID, f"supportbot:fb:up:{rated}", f"supportbot:fb:down:{rated}"]
    [pinged] = fake.posts_in(int(handed.thread_id))
    assert pinged.content.endswith(f"<@&{role}>"), "the team is pinged in the thread"
    assert pinged.allowed_mentions == {"parse": [], "roles": [role]}
    assert pinged.buttons == [], "no Talk to a human under a hand-off"
    assert await runtime.store.undelivered(platforms={"discord"}, before=utcnow() + MINUTE) == []


async def test_discord_late_proposal_has_confirm_and_cancel_that_work(
    runtime: Runtime, fake_claude: FakeAnthropic, shop: Shop
) -> None:
    fake_claude.queue(
        tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}),
        text("Done: W1001 is cancelled."),
    )
    async with fake_discord_installed() as fake:
        key = discord_thread(fake)
        thread = int(key.thread_id)
        proposal = await unposted(runtime, key, key.thread_id, CANCEL_IT, by=casey(fake))
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.redeliver(proposal)
            await bot.drain()
            [asked] = fake.posts_in(thread)
            assert "Shall I go ahead with this?" in asked.content
            assert asked.buttons == ["supportbot:act:confirm:1", "supportbot:act:cancel:1"]

            await fake.click(asked.id, "supportbot:act:confirm:1", by=fake.customer)
            await fake.wait_for(lambda: len(fake.posts_in(thread)) == 2)
            await bot.drain()

    assert shop.status("W1001") == "cancelled"
    assert fake.posts_in(thread)[-1].content == "Done: W1001 is cancelled."
    assert await runtime.engine.pending(1) is None, "decided: its buttons are not redrawn"


async def test_slack_late_replies_have_their_buttons_and_ping_but_not_a_decided_proposals(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    answered, handed, proposed = (slack_thread(f"1700000{n}00.000100") for n in range(1, 4))
    fake_claude.queue(text(ANSWER))
    answer = await unposted(runtime, answered, f"{HELP}:{answered.thread_id}", "Refunds?")
    hand_off = await unposted(runtime, handed, f"{HELP}:{handed.thread_id}", "A real person!")
    fake_claude.queue(tool_use("shop__cancel_order", {"order_number": "W1001", "email": MAYA}))
    proposal = await unposted(runtime, proposed, f"{HELP}:{proposed.thread_id}", CANCEL_IT)
    assert proposal.proposal is not None
    # Cancelled before its late post: Confirm and Cancel would do nothing now.
    decision = await runtime.engine.decide(
        proposal.proposal, user_id="U0CUSTOMER", confirm=False, is_staff=_no
    )
    assert decision.reply is not None

    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
        for late in (answer, hand_off, proposal):
            bot.bot.redeliver(late)
        await bot.bot.drain()

        def posted(key: ConversationKey) -> Params:
            [message] = [m for m in bot.posts(HELP) if m.get("thread_ts") == key.thread_id]
            return message

        rated = answer.answer_id
        assert posted(answered)["text"] == ANSWER
        assert slack_buttons(posted(answered)) == [
            (TALK_TO_HUMAN, TALK_TO_HUMAN),
            (FEEDBACK, f"up:{rated}"),
        ]
        assert f"<!subteam^{GROUP}>" in posted(handed)["text"], "the team is pinged in the thread"
        assert slack_buttons(posted(handed)) == []
        assert "W1001" in posted(proposed)["text"]
        buttons = {a for a, _ in slack_buttons(posted(proposed))}
        assert not buttons & {CONFIRM, CANCEL, TALK_TO_HUMAN}


async def _no() -> bool:
    return False


# Replies that can never be delivered are given up.


async def test_slack_reply_to_a_deleted_channel_is_given_up_at_the_refusal(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    before = given_up()
    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
        slack.delete_channel(HELP)
        ts = "1700000500.000100"
        body = load_body("app_mention", text="<@U0BOT> Refunds?", channel=HELP, ts=ts)
        with caplog.at_level(logging.INFO):
            await bot.deliver(body)
        posts = [p for p in slack.calls_to("chat.postMessage") if p.get("channel") == HELP]

    assert await runtime.store.undelivered(platforms={"slack"}, before=utcnow() + MINUTE) == []
    assert given_up() == before + 1
    assert len(posts) == 1, "not tried again after Slack said channel_not_found"
    [said] = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert said.endswith(f"in slack:T0TEAM:{HELP}:{ts} given up: channel_not_found")


async def test_discord_reply_to_a_closed_dm_is_given_up_at_the_refusal(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    before = given_up()
    async with fake_discord_installed() as fake:
        dm = fake.world.dm_channel_id
        fake.fail("POST", f"/channels/{dm}/messages", status=403, code=50007, times=100)

        def tries() -> list[Any]:
            posting = ("POST", f"/channels/{dm}/messages")
            return [r for r in fake.requests if (r.method, r.path) == posting]

        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            await say(fake, dm, "How long do refunds take?")
            await fake.wait_for(lambda: bool(tries()))
            await bot.drain()

    assert await runtime.store.undelivered(platforms={"discord"}, before=utcnow() + MINUTE) == []
    assert given_up() == before + 1
    # A streamed first message (if the stream got that far), then the reply: never again
    # (the turn's own tries would make five).
    assert 1 <= len(tries()) <= 2


async def test_discord_late_reply_to_a_deleted_thread_is_given_up(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text(ANSWER))
    before = given_up()
    async with fake_discord_installed() as fake:
        key = discord_thread(fake)
        late = await unposted(runtime, key, key.thread_id, "Refunds?", by=casey(fake))
        del fake.channels[int(key.thread_id)]
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.redeliver(late)
            await bot.drain()
            bot.redeliver(late)  # offered again (a watcher read the outbox before): counted once
            await bot.drain()
        looked = [r for r in fake.requests if r.path == f"/channels/{key.thread_id}"]

    assert not await runtime.store.is_undelivered(late.id)
    assert given_up() == before + 1
    assert len(looked) == 2, "each offer looks for the thread, and neither posts"
    assert fake.posts_in(int(key.thread_id)) == []


async def test_slack_late_reply_to_a_deleted_channel_is_given_up_at_the_look(
    runtime: Runtime,
) -> None:
    before = given_up()
    late, _ = await stored(runtime, slack_thread("1700000800.000100"), at=utcnow() - MINUTE)
    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
        slack.delete_channel(HELP)
        bot.bot.redeliver(await waiting(runtime, late, "slack"))
        await bot.bot.drain()
        looked = slack.calls_to("conversations.replies")

    assert len(looked) == 1 and slack.calls_to("chat.postMessage") == []
    assert not await runtime.store.is_undelivered(late)
    assert given_up() == before + 1


async def test_a_reply_past_the_age_limit_is_given_up_and_never_posted(runtime: Runtime) -> None:
    before = given_up()
    now = utcnow()
    old = await stored(runtime, slack_thread("1700000600.000100"), at=now - 61 * MINUTE)
    young = await stored(runtime, slack_thread("1700000700.000100"), at=now - MINUTE)
    async with FakeSlack() as slack, slack_bot(slack, runtime.engine, desk=runtime.desk) as bot:
        watcher = asyncio.create_task(
            watch_undelivered(
                runtime.store,
                bot.bot.redeliver,
                platforms={"slack"},
                after=timedelta(seconds=1),
                every=0.2,
                give_up_after=60 * MINUTE,
            )
        )
        try:
            await slack.wait_for("chat.postMessage", lambda p: p.get("thread_ts") == young[1])
            await bot.bot.drain()
        finally:
            watcher.cancel()
        posted = [m.get("thread_ts") for m in bot.posts(HELP)]

    assert posted == [young[1]], "the young one is delivered, the old one never posted"
    assert not await runtime.store.is_undelivered(old[0])
    assert given_up() == before + 1


async def stored(runtime: Runtime, key: ConversationKey, *, at: datetime) -> tuple[str, str]:
    """A customer's question in ``key``'s thread and an answer to it written at ``at``, never
    delivered: its outbox id and thread."""
    store, asked_id = runtime.store, f"{HELP}:{key.thread_id}"
    asked = IncomingMessage(key=key, author_id="U0CUSTOMER", text="Refunds?", message_id=asked_id)
    begun = await store.begin_turn(
        asked, customer_turn(asked.text, asked_id), now=at, idle_after=None, restart=False
    )
    assert begun is not None
    reply = Outbound(new_outbox_id(), ANSWER, reply_to=asked_id, at=at)
    await store.finish_turn(begun.id, TurnWrites(reply=reply), now=at)
    return reply.id, key.thread_id
