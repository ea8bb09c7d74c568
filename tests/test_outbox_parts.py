"""Finding a reply on the platform exactly before posting it again (issue 9).

A reply posted as several messages is finished with only the parts that are missing; a long
streamed answer that shows in full is not posted again, whatever its own split; and the bot's
answer to the customer's next message, reading the same (the same fallback twice), does not
stand in for a reply that never got through. Real slack_sdk and discord.py over the fakes.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bots.app import Runtime
from bots.common.lookup import Match, find_reply
from bots.discord.render import reply_messages
from bots.slack.render import escape, render_reply
from core.clock import utcnow
from core.desk import Desk
from core.engine import Engine
from core.types import ConversationKey, Reply
from tests.discord_helpers import fake_discord_installed, running_bot
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import load_body, unescape
from tests.slack_helpers import running_bot as running_slack_bot
from tests.test_fault_storm import outbox_watched
from tests.test_outbox import MINUTE, stored_answer

FALLBACK = "Sorry, something went wrong on our side. Please try again in a moment."


def long_answer(paragraphs: int) -> str:
    """An answer of ``paragraphs`` paragraphs of about 700 characters, each its own words."""
    return "\n\n".join(
        f"Step {n}: " + " ".join(f"word{n}x{i}" for i in range(80)) + "." for n in range(paragraphs)
    )


async def delivered(runtime: Runtime, outbox: str) -> bool:
    await runtime.engine.settle()
    return not await runtime.store.is_undelivered(outbox)


async def test_slack_posts_only_the_part_of_a_long_reply_whose_post_failed(
    slack: FakeSlack, engine: Engine, desk: Desk, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    answer = long_answer(8)
    parts = [m.text for m in render_reply(answer)]
    assert len(parts) == 2
    slack.fail("chat.postMessage", "internal_error", after=1)  # the second part's post
    fake_claude.queue(text(answer))
    async with running_slack_bot(slack, engine, desk=desk) as bot:
        await bot.deliver(load_body("message_im"))  # a DM's top level: posted, not streamed

    posted = bot.posts("D0DM")
    assert [m["text"] for m in posted] == parts, "the first part once, then the second"
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert len(slack.calls_to("conversations.history")) == 1, "Slack was asked first"
    assert [b["type"] for b in posted[-1]["blocks"][1:]] == ["actions", "context_actions"]
    await runtime.engine.settle()
    assert await runtime.store.undelivered(platforms={"slack"}, before=utcnow() + MINUTE) == []


async def test_slack_a_long_streamed_answer_that_shows_in_full_is_not_posted_again(
    slack: FakeSlack, engine: Engine, desk: Desk, runtime: Runtime
) -> None:
    answer = long_answer(18)
    assert len(render_reply(answer)) == 5, "rendered, it would be five messages"
    channel, thread = "C0SUPPORT", "1700000100.000100"
    waiting = await stored_answer(
        runtime,
        ConversationKey("slack", "T0TEAM", channel, thread),
        f"{channel}:{thread}",
        answer=answer,
        customer="U0CUSTOMER",
    )
    # A process killed once it had streamed all of it, in two messages split where the
    # stream split them, the last still streaming.
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    streams = []
    for said in (answer[:9000], answer[9000:]):
        started = await client.chat_startStream(
            channel=channel,
            thread_ts=thread,
            recipient_user_id="U0CUSTOMER",
            recipient_team_id="T0TEAM",
            markdown_text=escape(said),
        )
        streams.append(started["ts"])
    await client.chat_stopStream(channel=channel, ts=streams[0])
    async with running_slack_bot(slack, engine, desk=desk) as bot:
        bot.bot.redeliver(waiting)
        await bot.bot.drain()

    shown = bot.posts(channel)
    assert [m["ts"] for m in shown] == streams, "nothing posted again"
    assert unescape("".join(m["text"] for m in shown)) == answer
    assert not shown[-1]["streaming"], "the stream the dead process left is stopped"
    assert slack.calls_to("chat.postMessage") == slack.calls_to("chat.update") == []
    assert len(slack.calls_to("conversations.replies")) == 1
    assert await delivered(runtime, waiting.id)


async def test_slack_the_same_fallback_to_the_next_message_does_not_stand_in(
    slack: FakeSlack, engine: Engine, desk: Desk, runtime: Runtime
) -> None:
    channel, customer = "D0SAME", "U0SAME"
    first = slack.said(channel, customer, "Where is my order?")
    waiting = await stored_answer(
        runtime,
        ConversationKey("slack", "T0TEAM", channel, "-"),
        f"{channel}:{first}",
        answer=FALLBACK,
        customer=customer,
    )
    slack.said(channel, customer, "Hello?")
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    await client.chat_postMessage(channel=channel, text=FALLBACK)  # the answer to "Hello?"
    async with running_slack_bot(slack, engine, desk=desk) as bot:
        bot.bot.redeliver(waiting)
        await bot.bot.drain()

    assert [m["text"] for m in bot.posts(channel)] == [FALLBACK, FALLBACK]
    [looked] = slack.calls_to("conversations.history")
    assert looked["channel"] == channel
    assert await delivered(runtime, waiting.id)


async def test_discord_finishes_a_long_reply_with_only_its_missing_parts(
    runtime: Runtime,
) -> None:
    answer = long_answer(5)
    parts = [out.content for out in reply_messages(Reply(answer))]
    assert len(parts) == 3
    async with fake_discord_installed() as fake:
        w = fake.world
        channel = str(w.support_channel_id)
        cut, failed = fake.add_thread(w.support_channel_id), fake.add_thread(w.support_channel_id)
        # A dead process streamed the first part and half of the second.
        fake.left_by_a_dead_process(cut, parts[0])
        half = fake.left_by_a_dead_process(cut, parts[1][:300])
        streamed = await stored_answer(
            runtime,
            ConversationKey("discord", str(w.guild_id), channel, str(cut)),
            str(cut),
            answer=answer,
        )
        # Here the first part was posted and the second part's post fails once.
        fake.fail("POST", f"/channels/{failed}/messages", status=503, code=0, after=1)
        posted = await stored_answer(
            runtime,
            ConversationKey("discord", str(w.guild_id), channel, str(failed)),
            str(failed),
            answer=answer,
        )
        async with (
            running_bot(fake, runtime.engine, runtime.desk) as bot,
            outbox_watched(runtime, bot.redeliver, "discord"),
        ):
            await fake.wait_for(lambda: len(fake.posts_in(failed)) == 3, within=30)
            await fake.wait_for(lambda: len(fake.posts_in(cut)) == 1, within=30)
            await bot.drain()
        first, *rest = fake.posts_in(failed)

    assert [p.content for p in [first, *rest]] == parts, "no part twice, none missing"
    assert "message_reference" in first.payload, "the first part answers the customer's message"
    assert not any("message_reference" in p.payload for p in rest)
    [finished] = [e for e in fake.edits if e.id == half]
    assert finished.content == parts[1], "the half-written part is written out in place"
    assert [p.content for p in fake.posts_in(cut)] == [parts[2]]
    assert await delivered(runtime, streamed.id)
    assert await delivered(runtime, posted.id)


async def test_discord_the_same_fallback_to_the_next_message_does_not_stand_in(
    runtime: Runtime,
) -> None:
    async with fake_discord_installed() as fake:
        w = fake.world
        thread = fake.add_thread(w.support_channel_id)
        first = fake.said(thread, "Where is my order?")
        key = ConversationKey("discord", str(w.guild_id), str(w.support_channel_id), str(thread))
        waiting = await stored_answer(
            runtime, key, str(first), answer=FALLBACK, customer=str(w.customer_id)
        )
        fake.said(thread, "Hello?")
        fake.left_by_a_dead_process(thread, FALLBACK)  # the answer to "Hello?"
        async with running_bot(fake, runtime.engine, runtime.desk) as bot:
            bot.redeliver(waiting)
            await bot.drain()

    [posted] = fake.posts_in(thread)
    assert posted.content == FALLBACK
    assert await delivered(runtime, waiting.id)


def test_a_reply_split_inside_a_code_block_reads_as_one_text() -> None:
    code = "```python\n" + "\n".join(f"total_{i} = {i} * price" for i in range(150)) + "\n```"
    answer = f"Run this:\n\n{code}\n\nThen restart the shop."
    parts = [out.content for out in reply_messages(Reply(answer))]
    assert len(parts) == 2 and parts[1].startswith("```python\n"), "the split reopens the block"
    streamed = [answer[:2500], answer[2500:]]  # a stream's own split, mid-block
    ping = "<@&42>"

    assert find_reply(["Hello!", *streamed, ping], parts) == Match(1, 3, whole=True, stale=())
    assert find_reply(["Hello!", *parts[:-1], f"{parts[-1]}\n\n{ping}"], parts) == Match(
        1, 3, whole=True, stale=()
    )
    assert find_reply([parts[0], parts[1][:40]], parts) == Match(0, 2, whole=False, stale=(1,))
    assert find_reply([streamed[0][:1000]], parts) == Match(0, 1, whole=False, stale=(0,))
    assert find_reply([parts[1]], parts) is None, "a later part alone is not the reply"


async def test_slack_a_reply_that_landed_after_the_customer_wrote_again_is_found_in_its_turn(
    slack: FakeSlack, engine: Engine, desk: Desk, fake_claude: FakeAnthropic, runtime: Runtime
) -> None:
    # The turn holds its conversation until the reply is posted, so no later answer can be
    # there yet: the look within the turn reads past the customer's next message.
    slack.said("D0DM", "U0CUSTOMER", "Hello?")  # sent while the answer was on its way
    slack.flaky("chat.postMessage", every=1, faults=("made",))  # posted, then the line drops
    fake_claude.queue(text("Refunds take 5–7 business days."))
    async with running_slack_bot(slack, engine, desk=desk) as bot:
        await bot.deliver(load_body("message_im"))

    assert [m["text"] for m in bot.posts("D0DM")] == ["Refunds take 5–7 business days."]
    assert len(slack.calls_to("conversations.history")) == 1, "Slack was asked first"
    await runtime.engine.settle()
    assert await runtime.store.undelivered(platforms={"slack"}, before=utcnow() + MINUTE) == []
