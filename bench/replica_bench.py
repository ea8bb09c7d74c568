"""Replicas under faults: every customer message answered exactly once, in order?

Starts a fake Messages API that fails a share of calls (429, 529, 500, dropped connections,
overloads after HTTP 200, stalls past the timeout) and otherwise answers after a moment, a fake
Slack that fails a share of the bot's posts (a 500, a dropped connection, or the message posted
and then the connection dropped: an unknown outcome), and N real ``supportbot run slack``
processes in HTTP mode on one PostgreSQL database.
Each of the conversations (one DM each) sends its messages one after another, the next as soon
as the previous one is answered, and every event is delivered to every replica (the first one
alternating), as a load balancer retrying on another replica would. Prints: messages sent,
those with no reply within a minute, those lost (no reply once the outbox has emptied, or
after three more minutes), answered twice, conversations whose stored history is out of
order, and the time from sending a message to its reply, p50 and p99.

Run (PostgreSQL as in the README's test command):
``.venv/bin/python -m bench.replica_bench --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.databases import fresh_postgres
from core.types import ConversationKey
from storage.database import create_engine, open_database
from storage.repository import SqlStore
from tests.fakes.anthropic_api import (
    FakeAnthropic,
    FakeResponse,
    drop,
    error,
    hang,
    overloaded,
    rate_limited,
    stream_error,
    text,
)
from tests.fakes.slack_api import FakeSlack, Params, post_event
from tests.process_helpers import SlackProcess
from tests.slack_helpers import SECRET, dm_body

REPLY_WITHIN = 60.0
"""A message with no reply after this long counts as late; the customer writes the next one."""
DRAIN_WITHIN = 180.0
"""How long the outbox is given to empty once every message is answered."""


class _Observed(FakeSlack):
    """The fake Slack, counting the replies posted in each channel as they arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, tuple[int, asyncio.Future[None]]] = {}

    def _post_message(self, params: Params) -> Params:
        answer = super()._post_message(params)
        channel = str(params.get("channel"))
        self.replies[channel] += 1
        count, waiter = self._waiting.get(channel, (0, None))
        if waiter is not None and self.replies[channel] >= count and not waiter.done():
            waiter.set_result(None)
        return answer

    async def wait_replies(self, channel: str, count: int) -> bool:
        """Whether ``channel`` has ``count`` replies within ``REPLY_WITHIN`` seconds."""
        if self.replies[channel] >= count:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[channel] = (count, waiter)
        try:
            async with asyncio.timeout(REPLY_WITHIN):
                await waiter
        except TimeoutError:
            return False
        finally:
            del self._waiting[channel]
        return True


class _Thinking(FakeResponse):
    """An answer naming the customer's last line, after ``think`` seconds."""

    def __init__(self, think: float) -> None:
        self._think = think

    async def serve(self, ctx: Any) -> Any:
        last = ctx.body["messages"][-1]["content"][-1].get("text", "").splitlines()[-1:]
        await asyncio.sleep(self._think)
        return await text(f"Answer to {' '.join(last)}").serve(ctx)


def _claude(rng: random.Random, failures: float, think: float) -> FakeResponse:
    if rng.random() >= failures:
        return _Thinking(think)
    fault = rng.choice(
        [rate_limited, overloaded, lambda: error(500, "api_error"), drop, stream_error, hang]
    )
    return fault()


async def _summed(replicas: list[SlackProcess], name: str) -> float:
    """The sample ``name`` of the replicas' metrics, added up: ``supportbot_turns_total`` is
    customer messages they have finished with (answered or found answered),
    ``supportbot_outbox_depth`` replies stored and not delivered yet."""
    from aiohttp import ClientSession
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    async with ClientSession() as session:
        for replica in replicas:
            async with session.get(f"http://127.0.0.1:{replica.health}/metrics") as response:
                exposition = await response.text()
            for family in text_string_to_metric_families(exposition):
                total += sum(s.value for s in family.samples if s.name == name)
    return total


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    database = await fresh_postgres(args.database_url, "bench_replicas")
    await (await open_database(database)).dispose()  # migrated before the replicas start
    names = [f"C{n:03d}" for n in range(args.conversations)]
    latencies: list[float] = []
    lost = 0
    async with FakeAnthropic() as claude, _Observed() as slack:
        claude.default = lambda body: _claude(rng, args.claude_failures, args.think)
        if args.post_failures:
            slack.flaky("chat.postMessage", every=round(1 / args.post_failures))
        with tempfile.TemporaryDirectory() as directory:
            replicas = [
                SlackProcess(
                    Path(directory),
                    SUPPORTBOT_DATABASE_URL=database,
                    claude_url=claude.base_url,
                    slack=slack,
                    ANTHROPIC_TIMEOUT_SECONDS="2",
                    ANTHROPIC_MAX_RETRIES="1",
                )
                for _ in range(args.replicas)
            ]

            async def customer(name: str) -> None:
                nonlocal lost
                for n in range(args.messages):
                    # In Slack's history, at the time it is sent: the look before a repost
                    # reads the bot's messages after it, and up to the customer's next one.
                    ts = slack.said(f"D0{name}", f"U0{name}", f"{name} message {n}")
                    body = dm_body(name, n, ts=ts)
                    began = time.monotonic()
                    order = replicas[n % len(replicas) :] + replicas[: n % len(replicas)]
                    for replica in order:
                        await post_event(replica.events_url, body, secret=SECRET)
                    if await slack.wait_replies(f"D0{name}", n + 1):
                        latencies.append(time.monotonic() - began)
                    else:
                        lost += 1

            sent = len(names) * args.messages
            followers: list[asyncio.Task[None]] = []
            try:
                await asyncio.gather(*(replica.start() for replica in replicas))
                followers += [asyncio.create_task(replica.follow()) for replica in replicas]
                started = time.monotonic()
                await asyncio.gather(*(customer(name) for name in names))
                took = time.monotonic() - started
                async with asyncio.timeout(REPLY_WITHIN):
                    # Every delivery ends as answered or as a duplicate on some replica.
                    while (  # noqa: ASYNC110
                        await _summed(replicas, "supportbot_turns_total") < len(replicas) * sent
                    ):
                        await asyncio.sleep(0.2)
                # A reply whose posts kept failing waits for the watcher's next try (backing
                # off up to a minute): what is still undelivered after that is lost.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(DRAIN_WITHIN):
                        while await _summed(replicas, "supportbot_outbox_depth") > 0:  # noqa: ASYNC110
                            await asyncio.sleep(0.5)
            finally:
                for follower in followers:
                    follower.cancel()
                await asyncio.gather(*(replica.stop() for replica in replicas))
        out_of_order = await _out_of_order(database, names, args.messages)
    doubles = sum(max(0, slack.replies[f"D0{name}"] - args.messages) for name in names)
    missing = sum(max(0, args.messages - slack.replies[f"D0{name}"]) for name in names)
    _report(args, sent, (lost, missing), doubles, out_of_order, latencies, took)


async def _out_of_order(database: str, names: list[str], messages: int) -> int:
    engine = create_engine(database)
    store = SqlStore(engine=engine)
    wrong = 0
    try:
        for name in names:
            turns = await store.history(ConversationKey("slack", "T0TEAM", f"D0{name}"))
            said = [t.text for t in turns if t.role == "user" and t.text.startswith(name)]
            wrong += said != [f"{name} message {n}" for n in range(messages)]
    finally:
        await store.close()
        await engine.dispose()
    return wrong


def _report(
    args: argparse.Namespace,
    sent: int,
    lost: tuple[int, int],
    doubles: int,
    out_of_order: int,
    latencies: list[float],
    took: float,
) -> None:
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(
        f"{args.replicas} replicas, {args.conversations} conversations × {args.messages} "
        f"messages, every event to every replica; Claude fails {args.claude_failures:.0%} of "
        f"calls, answers in {args.think:g} s otherwise; {args.post_failures:.0%} of posts fail"
    )
    print(f"messages sent                 {sent}")
    late, missing = lost
    print(f"no reply within {REPLY_WITHIN:g} s         {late}")
    print(f"lost (no reply at the end)    {missing}")
    print(f"answered twice                {doubles}")
    print(f"histories out of order        {out_of_order}")
    print(f"time to reply p50 / p99       {cuts[49]:.2f} s / {cuts[98]:.2f} s")
    print(f"wall time                     {took:.1f} s ({sent / took:.1f} messages/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://… (admin)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--claude-failures", type=float, default=0.3)
    parser.add_argument("--think", type=float, default=0.2, help="Claude's answer time, s")
    parser.add_argument(
        "--post-failures", type=float, default=0.2, help="share of Slack posts that fail"
    )
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
