"""Engine overhead benchmark: everything a turn costs except Claude itself.

Drives the real engine and store (SQLite file by default, or ``--database-url``) with an
in-process Claude that answers instantly, and prints:

- turns per second and p50/p99 overhead per turn across many concurrent conversations;
- overhead around turn 10 and around turn 1,000 of one long conversation;
- estimated input tokens sent per turn over a 200-turn conversation, against what sending the
  full history every turn would cost.

Run: ``.venv/bin/python -m bench.engine_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from core import tokens
from core.config import load_settings
from core.engine import Engine, Limits
from core.ports import LLMResult
from core.stream import ClaudeEvents
from core.types import ConversationKey, IncomingMessage, Usage
from storage.database import create_engine, upgrade
from storage.repository import SqlStore

QUESTION = "My order HG-{n} was supposed to arrive on Monday and the sofa is still not here."
ANSWER = "Sorry about the wait. Standard delivery takes 5–7 business days; could you send the "
ANSWER += "order number so our team can check the courier's tracking for you?"


class InstantClaude:
    """A zero-latency Claude that records how much history each request carried."""

    def __init__(self) -> None:
        self.sent_tokens: list[int] = []
        self.seconds = 0.0

    async def respond(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[Any],
        events: ClaudeEvents | None = None,
    ) -> LLMResult:
        started = time.perf_counter()
        self.sent_tokens.append(sum(tokens.estimate(m["content"]) for m in messages))
        result = LLMResult(
            content=[{"type": "text", "text": ANSWER}], stop_reason="end_turn", usage=Usage()
        )
        self.seconds += time.perf_counter() - started
        return result


def message(conversation: int, turn: int) -> IncomingMessage:
    return IncomingMessage(
        key=ConversationKey("bench", "T", f"C{conversation}", "-"),
        author_id=f"U{conversation}",
        text=QUESTION.format(n=turn),
        message_id=f"{conversation}-{turn}",
    )


async def timed_turn(engine: Engine, llm: InstantClaude, message: IncomingMessage) -> float:
    before = llm.seconds
    started = time.perf_counter()
    await engine.handle(message)
    return time.perf_counter() - started - (llm.seconds - before)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def main(database_url: str, conversations: int, turns: int, budget: int) -> None:
    settings = load_settings(database_url=database_url)
    assert settings.persona is not None
    database = create_engine(database_url)
    await upgrade(database)
    llm = InstantClaude()
    limits = Limits(token_budget=budget, idle_timeout=timedelta(hours=24), max_input_chars=8000)
    engine = Engine(
        store=SqlStore(engine=database), llm=llm, persona=settings.persona, limits=limits
    )

    async def conversation(c: int) -> list[float]:
        return [await timed_turn(engine, llm, message(c, t)) for t in range(turns)]

    started = time.perf_counter()
    per_turn = [
        x for xs in await asyncio.gather(*map(conversation, range(conversations))) for x in xs
    ]
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(per_turn, n=100)
    print(f"database: {database.dialect.name}; token budget {budget}")
    print(f"{conversations} concurrent conversations x {turns} turns: {len(per_turn)} turns")
    print(f"  throughput: {len(per_turn) / elapsed:.0f} turns/s")
    print(
        f"  latency per turn, queueing included: p50 {_ms(quantiles[49])}, p99 {_ms(quantiles[98])}"
    )

    long_key = conversations + 1
    llm.sent_tokens.clear()
    overhead = [await timed_turn(engine, llm, message(long_key, t)) for t in range(1000)]
    print("one conversation, 1,000 turns (median overhead of ten turns):")
    for first in (1, 491, 991):
        window = overhead[first - 1 : first + 9]
        print(f"  turns {first}-{first + 9}: {_ms(statistics.median(window))}")

    sent = llm.sent_tokens[:200]
    question = tokens.estimate([{"type": "text", "text": message(0, 100).text}])
    answer = tokens.estimate([{"type": "text", "text": ANSWER}])
    full = [t * (question + answer) + question for t in range(200)]
    print("input tokens sent per turn over 200 turns (estimated):")
    print(f"  windowed: max {max(sent)}, mean {statistics.mean(sent):.0f}, total {sum(sent)}")
    print(f"  full history: max {max(full)}, mean {statistics.mean(full):.0f}, total {sum(full)}")
    print(f"  saved: {100 * (1 - sum(sent) / sum(full)):.0f}% of input tokens")
    await database.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--budget", type=int, default=12000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(main(url, args.conversations, args.turns, args.budget))
