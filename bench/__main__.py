"""Every figure of the cost-and-speed table, each beside its reference measured in the same run.

- prompt cache: ``bench.cache_bench`` (its own fake Messages API with the cache-billing model)
  with the settings' TTLs, against the naive request (the full history, uncached);
- turns per second with an instant Claude, 20 conversations at once: the real engine and store
  against the same durable work on raw ``sqlite3`` / ``asyncpg`` (``bench.reference``);
- p99 per turn at 10 turns/s offered on SQLite (queueing included), against raw ``sqlite3``'s
  p99 doing that turn's durable work;
- the first visible sign (Slack's loading status) when 50 customers write in the same second
  and Claude takes 2 s, through the real Slack adapter against the fake Slack, against the
  Socket Mode acknowledgement of the same events (the transport's floor);
- ``supportbot run slack`` from start to Socket Mode connected, on a database at head, and
  ``import bots.cli``, against a bare interpreter's start.

Time figures are the median of ``--runs`` runs with their spread (min–max); ratios are taken
within one run. Run: ``.venv/bin/python -m bench [--postgres-url URL] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import cache_bench, reference
from bench.databases import fresh_postgres
from bench.engine_bench import InstantClaude, message, timed_turn
from core.config import load_settings
from core.engine import Engine, Limits
from storage.database import create_engine, upgrade
from storage.repository import SqlStore

CONVERSATIONS, TURNS = 20, 25
OFFERED = 10.0  # turns per second
BURST = 50
CLAUDE_SECONDS = 2.0


@dataclass
class Row:
    figure: str
    measured: str
    reference: str
    ratio: str
    target: str


def _spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    """The median and, over several runs, the min–max."""
    low, mid, high = (v * scale for v in (min(values), statistics.median(values), max(values)))
    shown = f"{_number(mid)} {unit}"
    return shown if len(values) == 1 else f"{shown} ({_number(low)}–{_number(high)})"


def _number(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


async def _engine(url: str) -> tuple[Engine, InstantClaude, AsyncEngine]:
    settings = load_settings(database_url=url)
    assert settings.persona is not None
    database = create_engine(url)
    await upgrade(database)
    llm = InstantClaude()
    limits = Limits(token_budget=12000, idle_timeout=timedelta(hours=24), max_input_chars=8000)
    engine = Engine(
        store=SqlStore(engine=database), llm=llm, persona=settings.persona, limits=limits
    )
    return engine, llm, database


async def engine_turns(url: str) -> float:
    """Turns per second of the engine: ``CONVERSATIONS`` at once, ``TURNS`` turns each."""
    engine, _, database = await _engine(url)

    async def conversation(c: int) -> None:
        for t in range(TURNS):
            await engine.handle(message(c, t))

    started = time.perf_counter()
    await asyncio.gather(*map(conversation, range(CONVERSATIONS)))
    elapsed = time.perf_counter() - started
    await database.dispose()
    return CONVERSATIONS * TURNS / elapsed


async def offered_p99(url: str, *, seconds: float) -> float:
    """p99 from a turn's arrival to its reply at ``OFFERED`` turns/s over 10 conversations."""
    engine, llm, database = await _engine(url)
    for c in range(10):  # a running bot has compiled its statements and opened its conversations
        await engine.handle(message(c, -1))
    count = int(seconds * OFFERED)
    start = time.perf_counter()

    async def arrival(n: int) -> float:
        due = start + n / OFFERED
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await timed_turn(engine, llm, message(n % 10, n // 10))
        return time.perf_counter() - due

    latencies = await asyncio.gather(*map(arrival, range(count)))
    await database.dispose()
    return statistics.quantiles(latencies, n=100)[98]


async def throughput(tmp: Path, postgres: str | None, run: int) -> dict[str, float]:
    """One run of every throughput figure: engine and raw driver, side by side."""
    found: dict[str, float] = {}
    engine_file, raw_file = tmp / f"engine{run}.db", tmp / f"raw{run}.db"
    found["sqlite"] = await engine_turns(f"sqlite+aiosqlite:///{engine_file}")
    await _migrated(f"sqlite+aiosqlite:///{raw_file}")
    took = reference.sqlite_turns(str(raw_file), conversations=CONVERSATIONS, turns=TURNS)
    found["sqlite3"] = len(took) / sum(took)
    found["sqlite3 p99"] = statistics.quantiles(took, n=100)[98]
    if postgres is not None:
        found["postgresql"] = await engine_turns(
            await fresh_postgres(postgres, f"bench_engine_{run}")
        )
        raw = await fresh_postgres(postgres, f"bench_raw_{run}")
        await _migrated(raw)
        found["asyncpg"] = await reference.asyncpg_turns(
            make_url(raw).set(drivername="postgresql").render_as_string(hide_password=False),
            conversations=CONVERSATIONS,
            turns=TURNS,
        )
    return found


async def _migrated(url: str) -> None:
    database = create_engine(url)
    await upgrade(database)
    await database.dispose()


async def burst(folder: Path) -> tuple[list[float], list[float]]:
    """Seconds from each of ``BURST`` customers' messages, sent at once, to its loading status
    and to its Socket Mode acknowledgement."""
    from bots.app import serve
    from tests.conftest import make_settings
    from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, text
    from tests.fakes.slack_api import FakeSlack
    from tests.slack_helpers import load_body, slack_settings

    class Slow(FakeResponse):
        async def serve(self, ctx: Any) -> Any:
            await asyncio.sleep(CLAUDE_SECONDS)
            return await text("Standard shipping takes 5–7 business days.").serve(ctx)

    async with FakeAnthropic() as claude, FakeSlack() as slack:
        claude.default = lambda body: Slow()
        # The default cap on concurrent Claude calls queues the burst: 50 × 2 s in 8 lanes.
        settings = make_settings(
            f"sqlite+aiosqlite:///{folder / 'burst.db'}",
            claude.base_url,
            claude={"timeout_seconds": 60.0, "max_retries": 0},
        )
        running = asyncio.create_task(
            serve(settings, {"slack": slack_settings(slack, mode="socket")})
        )
        try:
            await slack.send_envelope(load_body("message_im", text="hi", ts="1.1"))
            await slack.wait_for("chat.postMessage", timeout=30)

            async def customer(n: int) -> tuple[float, float]:
                ts = f"1700000{n:03d}.000100"
                body = load_body(
                    "message_im", text="Where is my order?", ts=ts, user=f"U{n}", channel=f"D{n}"
                )
                started = time.perf_counter()
                await slack.send_envelope(body)
                acked = time.perf_counter() - started
                await slack.wait_for(
                    "assistant.threads.setStatus",
                    lambda p: p.get("thread_ts") == ts,
                    timeout=30,
                )
                return time.perf_counter() - started, acked

            found = await asyncio.gather(*map(customer, range(BURST)))
            await slack.wait_for("chat.postMessage", count=BURST + 1, timeout=60)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    return [sign for sign, _ in found], [ack for _, ack in found]


async def start_to_ready(tmp: Path) -> float:
    """Seconds from starting ``supportbot run slack`` to its Socket Mode connection."""
    from tests.fakes.anthropic_api import FakeAnthropic
    from tests.fakes.slack_api import FakeSlack

    url = f"sqlite+aiosqlite:///{tmp / 'start.db'}"
    await _migrated(url)
    async with FakeSlack() as slack, FakeAnthropic() as claude:
        env = os.environ | {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_API_URL": slack.api_url,
            "SLACK_MODE": "socket",
            "SUPPORTBOT_DATABASE_URL": url,
            "ANTHROPIC_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": claude.base_url,
        }
        started = time.perf_counter()
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from bots.cli import main; sys.argv[0] = 'supportbot'; main()",
            "run",
            "slack",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert bot.stdout is not None
        try:
            while b"Socket Mode connected" not in await bot.stdout.readline():
                if bot.returncode is not None:
                    raise RuntimeError("supportbot run slack exited before it was ready")
            return time.perf_counter() - started
        finally:
            bot.terminate()
            await bot.wait()


async def python(code: str) -> float:
    """Seconds a fresh interpreter takes to run ``code``."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    await process.wait()
    return time.perf_counter() - started


async def _runs(runs: int, measure: Callable[[], Awaitable[float]]) -> list[float]:
    return [await measure() for _ in range(runs)]


async def main(postgres: str | None, runs: int, offered_seconds: float) -> None:
    rows: list[Row] = []
    settings = load_settings()
    print(f"runs: {runs}; Python {sys.version.split()[0]}; {os.cpu_count()} cores", flush=True)

    figures = {
        gap: await cache_bench.run(
            gap=gap,
            prefix_ttl=settings.claude.cache_ttl_prefix,
            conversation_ttl=settings.claude.cache_ttl_conversation,
            min_tokens=1024,
        )
        for gap in (60.0, 360.0)
    }
    naive = "1.00 (naive)"
    rows += [
        Row("billed input at turn 50 ÷ naive", f"{figures[60].last:.2f}", naive, "", "≤ 0.20"),
        Row("same, cumulative", f"{figures[60].cumulative:.2f}", naive, "", "≤ 0.25"),
        Row("turns reading the previous prefix", f"{figures[60].hits:.0%}", "0%", "", "≥ 90 %"),
        Row(
            "6 min between messages, cumulative",
            f"{figures[360].cumulative:.2f}",
            naive,
            "",
            "≤ 0.5",
        ),
    ]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        measured = [await throughput(tmp, postgres, run) for run in range(runs)]
        for ours, raw, target in (
            ("sqlite", "sqlite3", "≥ 10 %"),
            ("postgresql", "asyncpg", "≥ 25 %"),
        ):
            if ours not in measured[0]:
                continue
            ratios = [m[ours] / m[raw] for m in measured]
            rows.append(
                Row(
                    f"engine turns/s, instant Claude ({ours} ÷ raw {raw})",
                    _spread([m[ours] for m in measured], "/s"),
                    _spread([m[raw] for m in measured], "/s"),
                    _spread(ratios, "%", 100),
                    target,
                )
            )
        p99 = [
            await offered_p99(f"sqlite+aiosqlite:///{tmp / f'o{r}.db'}", seconds=offered_seconds)
            for r in range(runs)
        ]
        rows.append(
            Row(
                f"p99 per turn at {OFFERED:g} turns/s offered (SQLite)",
                _spread(p99, "ms", 1000),
                _spread([m["sqlite3 p99"] for m in measured], "ms", 1000) + " raw sqlite3",
                "",
                "≤ 25 ms",
            )
        )
        signs, acks = [], []
        for run in range(runs):
            (tmp / f"burst{run}").mkdir()
            sign, ack = await burst(tmp / f"burst{run}")
            signs.append(sign)
            acks.append(ack)
        rows.append(
            Row(
                f"first sign, {BURST} customers at once (Claude {CLAUDE_SECONDS:g} s): p50",
                _spread([statistics.median(s) for s in signs], "ms", 1000),
                _spread([statistics.median(a) for a in acks], "ms", 1000) + " ack",
                "",
                "≤ 300 ms",
            )
        )
        rows.append(
            Row(
                "… max",
                _spread([max(s) for s in signs], "ms", 1000),
                _spread([max(a) for a in acks], "ms", 1000) + " ack",
                "",
                "≤ 300 ms",
            )
        )
        ready = await _runs(runs, lambda: start_to_ready(tmp))
        imported = await _runs(runs, lambda: python("import bots.cli"))
        bare = await _runs(runs, lambda: python("pass"))
        bare_python = _spread(bare, "ms", 1000) + " bare python"
        rows += [
            Row(
                "supportbot run slack: start to ready",
                _spread(ready, "ms", 1000),
                bare_python,
                "",
                "≤ 2 s",
            ),
            Row("import bots.cli", _spread(imported, "ms", 1000), bare_python, "", ""),
        ]
    _print(rows)


def _print(rows: list[Row]) -> None:
    header = Row("figure", "measured", "reference, same run", "ratio", "target")
    table = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in Row.__dataclass_fields__]
    for row in table:
        cells = [
            getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)
        ]
        print(" | ".join(cells).rstrip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server to compare against asyncpg")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--offered-seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.postgres_url, args.runs, args.offered_seconds))
