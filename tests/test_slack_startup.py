"""``supportbot run slack`` with a refused bot token, in-process: one sentence, exit code 1.

The CLI runs its own event loop (``asyncio.run``), so this test is synchronous and FakeSlack
runs on an event loop of its own in a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bots.cli import app
from tests.fakes.slack_api import FakeSlack


async def _started() -> FakeSlack:
    return await FakeSlack().start()


@pytest.fixture
def threaded_slack() -> Iterator[FakeSlack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-slack")
    thread.start()
    try:
        fake = asyncio.run_coroutine_threadsafe(_started(), loop).result(timeout=5)
        yield fake
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result(timeout=5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_run_with_a_refused_bot_token_says_so_in_one_line(
    threaded_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout
    env = {
        "SUPPORTBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "SUPPORTBOT_HEALTH_PORT": "0",
        "SLACK_BOT_TOKEN": "xoxb-revoked",
        "SLACK_APP_TOKEN": threaded_slack.app_token,
        "SLACK_API_URL": threaded_slack.api_url,
        "ANTHROPIC_API_KEY": None,
    }
    result = CliRunner().invoke(app, ["run", "slack"], env=env)

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), "no traceback: the CLI handled it"
    assert result.stderr.splitlines() == [
        "Could not start:",
        "SLACK_BOT_TOKEN was refused by Slack (invalid_auth): set it to the app's current Bot "
        "User OAuth Token (xoxb-…), and reinstall the app if it was removed.",
    ]
    assert "xoxb-revoked" not in result.output
    assert [method for method, _ in threaded_slack.calls] == ["auth.test"]
