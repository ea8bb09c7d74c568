"""A start imports what it uses: neither Alembic on a database at head nor the anthropic SDK
before the bot is ready (its import is most of a second), and the SDK once Claude is asked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import migrate
from tests.fakes.anthropic_api import FakeAnthropic, text

# Run in a fresh interpreter: this one has imported everything already.
PROBE = textwrap.dedent(
    """
    import asyncio, sys
    from bots.app import open_runtime
    from core.config import load_settings

    async def main(url, claude_url):
        settings = load_settings(
            database_url=url, claude={"api_key": "test", "base_url": claude_url}
        )
        async with open_runtime(settings) as runtime:
            print("started", "alembic" in sys.modules, "anthropic" in sys.modules)
            result = await runtime.llm.respond(
                system=[], messages=[{"role": "user", "content": "hi"}], tools=[]
            )
            print("asked", "anthropic" in sys.modules, result.content[0]["text"])

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_start_on_a_current_schema_imports_neither_alembic_nor_the_sdk(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await migrate(url)
    fake_claude.queue(text("Hello from Claude"))

    probe = await _run(PROBE, url, fake_claude.base_url)

    assert probe.splitlines() == ["started False False", "asked True Hello from Claude"]


async def _run(code: str, *args: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
