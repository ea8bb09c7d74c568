"""Replies that are never lost and never sent twice: the outbox (issue 9).

The real ``supportbot run slack`` and ``supportbot run discord`` processes are killed after
they stored their answer, with the post held by the fake platform (never made) or made and
never answered (an unknown outcome); started again, each delivers the answer exactly once,
asking the platform first. The Discord look's details are tested in process.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bots.app import Runtime
from core.clock import utcnow
from core.ports import Outbound, TurnWrites, Undelivered, new_outbox_id
from core.types import ConversationKey, IncomingMessage, Kind, Turn
from tests.discord_helpers import fake_discord_installed, running_bot
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack
from tests.process_helpers import DiscordProcess
from tests.slack_helpers import load_body
from tests.test_recovery import (
    ANSWER,
    customer_turn,
    killed_and_restarted,
    on_discord,
    restarted_after_a_kill,
)

CUSTOMER = "4242"
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    "made", [False, True], ids=["killed-before-the-post", "killed-during-the-post"]
)
async def test_an_answer_stored_when_the_process_was_killed_is_posted_once_after_restart(
    tmp_path: Path, fake_claude: FakeAnthropic, made: bool
) -> None:
    question = load_body("message_im", text="How long does a refund take?")
    channel = question["event"]["channel"]

    async def posting(slack: FakeSlack, _: FakeAnthropic) -> None:
        await slack.wait_for("chat.postMessage", lambda p: p["channel"] == channel, timeout=30)

    async with FakeSlack() as slack:
        slack.hang("chat.postMessage", record=made)
        async with restarted_after_a_kill(
            tmp_path,
            fake_claude,
            slack,
            question,
            first=text(ANSWER),
            killed=posting,
            SUPPORTBOT_RECOVER_AFTER_SECONDS="1",
        ) as second:
            await second.read_until("delivered late")
            looked = slack.calls_to("conversations.history")

    assert [m["text"] for m in slack.messages if m["channel"] == channel] == [ANSWER]
    assert len(fake_claude.requests) == 1, "the stored answer is sent, Claude is not asked again"
    assert [p["channel"] for p in looked] == [channel], "Slack was asked before posting again"
    assert len(slack.calls_to("chat.postMessage")) == (1 if made else 2)
    assert slack.statuses == {}, "no loading status is left behind"


@pytest.mark.parametrize(
    "made", [False, True], ids=["killed-before-the-post", "killed-during-the-post"]
)
async def test_discord_an_answer_stored_when_the_process_was_killed_is_posted_once_after_restart(
    tmp_path: Path, fake_claude: FakeAnthropic, made: bool
) -> None:
    async with FakeDiscord() as fake:
        dm = fake.world.dm_channel_id
        messages = f"/channels/{dm}/messages"
        question = fake.message(dm, "How long does a refund take?")

        def sent() -> bool:
            return any(r.method == "POST" and r.path == messages for r in fake.requests)

        async def stored(first: DiscordProcess) -> None:
            # The answer streams: its first message is sent while Claude writes, so the kill
            # waits for that send (held) and for the turn's end (the answer stored).
            await fake.wait_for(sent, within=30)
            await first.read_until(f"message {question['id']}: answered in")

        fake.hang("POST", f"^{messages}$", made=made)
        bot = on_discord(tmp_path, fake_claude, fake)
        async with killed_and_restarted(
            bot, fake_claude, question, stored, first=text(ANSWER)
        ) as second:
            await second.read_until("delivered late")
            calls = [(r.method, r.query.get("after")) for r in fake.requests if r.path == messages]

    [posted] = fake.posts_in(dm)
    assert fake.messages[posted.id]["content"] == ANSWER, "one message, reading the answer"
    assert len(fake_claude.requests) == 1, "the stored answer is sent, Claude is not asked again"
    posted_again = [] if made else [("POST", None)]
    assert calls == [("POST", None), ("GET", question["id"]), *posted_again], (
        "Discord's history after the question was read before posting again"
    )


async def stored_answer(
    runtime: Runtime,
    key: ConversationKey,
    asked_id: str,
    *,
    answer: str = ANSWER,
    customer: str = CUSTOMER,
) -> Undelivered:
    """A customer's question and the ``answer`` to it, stored; the answer never delivered."""
    store, now = runtime.store, utcnow()
    asked = IncomingMessage(key=key, author_id=customer, text="Refunds?", message_id=asked_id)
    begun = await store.begin_turn(
        asked, customer_turn(asked.text, asked_id), now=now, idle_after=None, restart=False
    )
    assert begun is not None
    said = Turn(role="assistant", content=[{"type": "text", "text": answer}], kind=Kind.MODEL)
    reply = Outbound(new_outbox_id(), answer, reply_to=asked_id)
    await store.finish_turn(begun.id, TurnWrites(turns=(said,), reply=reply), now=now)
    [waiting] = [
        u
        for u in await store.undelivered(platforms={key.platform}, before=utcnow() + MINUTE)
        if u.id == reply.id
    ]
    return waiting


async def test_discord_looks_for_the_reply_before_posting_it_again(runtime: Runtime) -> None:
    async with fake_discord_installed() as fake:
        w = fake.world
        channel = str(w.support_channel_id)
        half, lost = fake.add_thread(w.support_channel_id), fake.add_thread(w.support_channel_id)
        cut_short = fake.left_by_a_dead_process(half, ANSWER[:12])
        found = await stored_answer(
            runtime, ConversationKey("discord", str(w.guild_id), channel, str(half)), str(half)
        )
        missing = await stored_answer(
            runtime, ConversationKey("discord", str(w.guild_id), channel, str(lost)), str(lost)
        )
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.redeliver(found)
            bot.redeliver(missing)
            await bot.drain()
            bot.redeliver(missing)  # delivered now: not posted again
            await bot.drain()
        looked = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/messages")]
    await runtime.engine.settle()

    assert fake.posts_in(half) == [], "the reply the dead process posted is kept, not repeated"
    [finished] = [e for e in fake.edits if e.id == cut_short]
    assert finished.content == ANSWER, "and its cut-short text is written out in full"
    [posted] = fake.posts_in(lost)
    assert posted.content == ANSWER
    assert posted.allowed_mentions == {"parse": []}
    assert {r.path for r in looked} == {f"/channels/{half}/messages", f"/channels/{lost}/messages"}
    assert not await runtime.store.is_undelivered(found.id)
    assert not await runtime.store.is_undelivered(missing.id)
