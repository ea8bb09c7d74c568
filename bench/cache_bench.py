"""Prompt-cache benchmark: what a 50-turn shop conversation is billed, against no caching.

Starts its own fake Messages API (tests/fakes/anthropic_api.py) with a billing model of
Anthropic's prompt cache (``PromptCache``: per-prefix entries with a TTL refreshed on a hit;
writes 1.25× the input price for 5 minutes, 2× for an hour, reads 0.1×; a minimum cacheable
prefix, ``--min-tokens``; tokens estimated as JSON characters / 4), and drives the real engine,
SQLite store and ``ClaudeClient`` (through the real SDK) with a scripted conversation that
switches topic (a late order, a new couch, a return, billing, …) on a simulated clock: one
run with a minute between messages, one with six (every 5-minute entry has expired).

The reference is the naive request: the same full history, sent uncached (cost 1.0 a token).
The 50-turn window never trims at the default 12,000-token budget; the bench checks that.

Run: ``.venv/bin/python -m bench.cache_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.claude import ClaudeClient
from core.config import ClaudeSettings, load_settings
from core.engine import Engine, Limits
from core.types import ConversationKey, IncomingMessage
from storage.database import create_engine, upgrade
from storage.repository import SqlStore
from tests.fakes.anthropic_api import READ_PRICE, WRITE_PRICE, FakeAnthropic, PromptCache, text

_EPOCH = datetime(2026, 12, 2, 10, 0)
# What the customer writes; 50 turns, the topic moving on seven times, the last turn included.
SCRIPT = [
    *[f"My order HG-{n} is late, where is it? The tracking page has not moved." for n in range(8)],
    *[f"Different thing: I want a new couch, is the {c} sofa in stock?" for c in "ABCDEFGH"],
    *[f"The lamp I got is broken, how do I return it? Attempt {n}." for n in range(8)],
    *[
        f"I was charged twice on my card for invoice INV-{n}, is that a billing error?"
        for n in range(8)
    ],
    *[f"Back to my late order HG-{n}: which courier has the package?" for n in range(6)],
    *[f"When will the refund for the lamp reach me? Asking again ({n})." for n in range(6)],
    *[f"Does express delivery ship to Leeds? I need the rug by Friday ({n})." for n in range(5)],
    "One last thing: my card was charged for the express fee twice, can you check the invoice?",
]
ANSWER = (
    "Thanks for the details. Here is what I can tell you from our policies: standard delivery "
    "takes 5-7 business days, returns are accepted within 30 days if unused, and refunds reach "
    "the original payment method within 5-7 business days of the item reaching us. Turn {n}."
)


@dataclass(frozen=True)
class Figures:
    last: float  # turn 50: billed cost / naive cost
    cumulative: float  # all turns: billed / naive
    hits: float  # share of turns 2-50 reading the previous turn's whole cached prefix


async def run(*, gap: float, prefix_ttl: str, conversation_ttl: str, min_tokens: int) -> Figures:
    now = [0.0]
    cache = PromptCache(min_tokens=min_tokens, clock=lambda: now[0])
    settings = load_settings()
    assert settings.persona is not None
    with tempfile.TemporaryDirectory() as tmp:
        database = create_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(database)
        async with FakeAnthropic(cache=cache) as fake:
            turn = [0]
            fake.default = lambda body: text(ANSWER.format(n=turn[0]))
            llm = ClaudeClient(
                settings=ClaudeSettings(api_key="bench", base_url=fake.base_url, max_retries=0)
            )
            limits = Limits(
                token_budget=settings.claude.token_budget,
                idle_timeout=timedelta(hours=24),
                max_input_chars=8000,
                cache_ttl_prefix=prefix_ttl,
                cache_ttl_conversation=conversation_ttl,
            )
            engine = Engine(
                store=SqlStore(engine=database),
                llm=llm,
                persona=settings.persona,
                limits=limits,
                clock=lambda: _EPOCH + timedelta(seconds=now[0]),
            )
            try:
                for n, said in enumerate(SCRIPT):
                    turn[0] = n
                    await engine.handle(
                        IncomingMessage(
                            key=ConversationKey("bench", "T", "C", "1"),
                            author_id="U1",
                            text=said,
                            message_id=f"m{n}",
                        )
                    )
                    now[0] += gap
            finally:
                await llm.aclose()
            windows = [len(r.messages) for r in fake.requests]
        await database.dispose()
    assert windows == list(range(1, 2 * len(SCRIPT), 2)), "the window trimmed: not full history"
    bills = cache.bills
    hits = sum(
        1
        for before, after in itertools.pairwise(bills)
        if after.read >= before.read + sum(before.written.values()) > 0
    )
    return Figures(
        last=bills[-1].cost / bills[-1].total,
        cumulative=sum(b.cost for b in bills) / sum(b.total for b in bills),
        hits=hits / (len(bills) - 1),
    )


async def main(min_tokens: int) -> None:
    print(
        f"cost model: uncached 1.0, cache write {WRITE_PRICE['5m']} (5m) / {WRITE_PRICE['1h']} "
        f"(1h), read {READ_PRICE}; min cacheable prefix {min_tokens} tokens (≈ chars/4)"
    )
    print(f"{len(SCRIPT)}-turn conversation; reference = the same full history sent uncached")
    print("gap   TTL prefix/conversation  turn 50 ÷ naive  cumulative ÷ naive  prefix hits")
    for gap in (60.0, 360.0):
        for prefix_ttl, conversation_ttl in (("1h", "5m"), ("1h", "1h"), ("5m", "5m")):
            figures = await run(
                gap=gap,
                prefix_ttl=prefix_ttl,
                conversation_ttl=conversation_ttl,
                min_tokens=min_tokens,
            )
            print(
                f"{gap / 60:.0f} min {prefix_ttl:>6} / {conversation_ttl:<16} "
                f"{figures.last:>15.2f} {figures.cumulative:>19.2f} {figures.hits:>12.0%}"
            )
    print("naive reference: 1.00 (every figure), 0% hits")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-tokens", type=int, default=1024)
    args = parser.parse_args()
    asyncio.run(main(args.min_tokens))
