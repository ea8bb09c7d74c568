"""A fault storm: Claude fails 30 % of its calls and the platform 20 % of the bot's posts, and
every customer message still ends with exactly one reply, a real answer or the fallback.

Claude's faults are 429, 529, 500, dropped connections, errors after HTTP 200 (with words
already streamed), streams that break or stall, and calls that never answer (past the timeout);
the platform's are 5xx answers, dropped connections and posts made and then dropped (an unknown
outcome). Claude's are drawn from a fixed seed and each call's customer line and attempt, not
from timing, and every fifth post fails, so a run is reproducible. The outbox watcher runs as
in ``supportbot run``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from bots.app import Runtime, open_runtime
from bots.slack.bot import EVENTS_PATH, SlackBot
from core.clock import utcnow
from core.recovery import watch_undelivered
from tests.conftest import make_settings
from tests.discord_helpers import fake_discord_installed, running_bot, say
from tests.fakes.anthropic_api import (
    FakeAnthropic,
    FakeResponse,
    drop,
    drop_mid_stream,
    error,
    hang,
    overloaded,
    rate_limited,
    stall_mid_stream,
    stream_error,
    text,
)
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack, post_event
from tests.slack_helpers import SECRET, dm_body, slack_settings

SEED = 20261202
CUSTOMERS, MESSAGES = 6, 4
CLAUDE_FAILS, EVERY_POST = 0.3, 5
WITHIN = 30.0
CLAUDE_FAULTS: list[Callable[[], FakeResponse]] = [
    rate_limited,
    overloaded,
    lambda: error(500, "api_error"),
    drop,
    stream_error,
    drop_mid_stream,
    stall_mid_stream,
    hang,
]


def stormy_claude(seed: int) -> Callable[[dict[str, Any]], FakeResponse]:
    """Claude's answer to each request: "Answer to <the customer's line>", or one of
    ``CLAUDE_FAULTS`` for a share ``CLAUDE_FAILS`` of them."""
    attempts: Counter[str] = Counter()

    def answer(body: dict[str, Any]) -> FakeResponse:
        asked = re.findall(r"C\d+ message \d+", json.dumps(body["messages"][-1]))
        said = asked[-1] if asked else ""
        attempts[said] += 1
        draw = random.Random(f"{seed}:{said}:{attempts[said]}")
        if draw.random() >= CLAUDE_FAILS:
            return text(f"Answer to {said}")
        return draw.choice(CLAUDE_FAULTS)()

    return answer


@pytest.fixture
async def storm_runtime(database_url: str, fake_claude: FakeAnthropic) -> AsyncIterator[Runtime]:
    """The runtime with Claude's timeout short, so calls that stall fail fast."""
    fake_claude.default = stormy_claude(SEED)
    settings = make_settings(database_url, fake_claude.base_url, claude={"timeout_seconds": 1.0})
    async with open_runtime(settings) as runtime:
        yield runtime


@asynccontextmanager
async def outbox_watched(runtime: Runtime, redeliver: Callable[..., None], platform: str):
    """The outbox watcher of ``supportbot run``, looking every 0.3 s."""
    watcher = asyncio.create_task(
        watch_undelivered(
            runtime.store,
            redeliver,
            platforms={platform},
            after=timedelta(seconds=1),
            every=0.3,
            give_up_after=timedelta(minutes=60),
        )
    )
    try:
        yield
    finally:
        watcher.cancel()


async def storm(customer: Callable[[str, int], Awaitable[None]]) -> None:
    """Each customer sends their messages one after another, each once the last is answered."""

    async def one(name: str) -> None:
        for n in range(MESSAGES):
            await customer(name, n)

    await asyncio.gather(*(one(f"C{c:02d}") for c in range(CUSTOMERS)))


def check(replies: dict[str, list[str]], fallbacks: set[str]) -> None:
    """Exactly one reply per message, in order: its answer, or a fallback."""
    for name, said in replies.items():
        assert len(said) == MESSAGES, f"{name}: {said}"
        for n, reply in enumerate(said):
            answered = f"Answer to {name} message {n}" in reply
            assert answered or any(f in reply for f in fallbacks), f"{name} #{n}: {reply!r}"


async def test_slack_answers_every_message_once_through_a_fault_storm(
    storm_runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    runtime = storm_runtime
    async with FakeSlack() as slack:
        slack.flaky("chat.postMessage", every=EVERY_POST)
        bot = SlackBot(settings=slack_settings(slack), port=runtime.engine, desk=runtime.desk)
        await bot.start()
        url = f"http://127.0.0.1:{bot.http_port}{EVENTS_PATH}"

        async def customer(name: str, n: int) -> None:
            # Sent now: Slack's history orders it before the answers to it.
            body = dm_body(name, n, ts=f"{time.time():.6f}")
            assert await post_event(url, body, secret=SECRET) == 200
            await slack.wait_messages(f"D0{name}", n + 1, timeout=WITHIN)

        try:
            async with outbox_watched(runtime, bot.redeliver, "slack"):
                await storm(customer)
                await bot.drain()
        finally:
            await bot.close()
        replies = {
            f"C{c:02d}": [m["text"] for m in slack.messages if m["channel"] == f"D0C{c:02d}"]
            for c in range(CUSTOMERS)
        }

    check(replies, fallbacks(runtime))
    await runtime.engine.settle()
    assert await runtime.store.undelivered(platforms={"slack"}, before=utcnow()) == []
    assert {f for _, f in slack.faults} == {"error", "drop", "made"}, "the platform failed"
    assert len(fake_claude.requests) > CUSTOMERS * MESSAGES, "and so did Claude"


async def test_discord_answers_every_message_once_through_a_fault_storm(
    storm_runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    runtime = storm_runtime
    async with fake_discord_installed() as fake:
        fake.flaky(every=EVERY_POST)
        support = fake.world.support_channel_id
        threads: dict[str, int] = {}

        async def customer(name: str, n: int) -> None:
            said = f"{name} message {n}"
            if n == 0:
                threads[name] = int((await say(fake, support, said))["id"])
            else:
                await say(fake, threads[name], said)
            thread = threads[name]
            await fake.wait_for(lambda: len(answers(fake, thread)) > n, within=WITHIN)

        async with (
            running_bot(fake, runtime.engine, runtime.desk) as bot,
            outbox_watched(runtime, bot.redeliver, "discord"),
        ):
            await storm(customer)
            await bot.drain()
        replies = {name: answers(fake, thread) for name, thread in threads.items()}

    check(replies, fallbacks(runtime))
    await runtime.engine.settle()
    assert await runtime.store.undelivered(platforms={"discord"}, before=utcnow()) == []
    assert set(fake.faults) == {"error", "drop", "made"}, "the platform failed"
    assert len(fake_claude.requests) > CUSTOMERS * MESSAGES, "and so did Claude"


def answers(fake: FakeDiscord, thread: int) -> list[str]:
    """What the bot's messages in ``thread`` read now, the team's ping (a message of its own
    after a streamed hand-off) aside."""
    ping = f"<@&{fake.world.support_role_id}>"
    shown = [fake.messages[p.id]["content"] for p in fake.posts_in(thread)]
    return [s for s in shown if s != ping]


def fallbacks(runtime: Runtime) -> set[str]:
    persona = runtime.settings.persona
    assert persona is not None
    return {str(t) for t in persona.fallbacks.model_dump().values()}
