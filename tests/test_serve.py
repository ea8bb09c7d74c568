"""The composition root as ``supportbot run`` uses it: adapters plus the re-ping watcher."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from bots.app import serve
from core.ports import StaffPending, Unanswered, Undelivered
from core.types import EscalationView
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import STAFF, load_body, slack_settings


async def test_serve_answers_on_slack_and_repings_unclaimed_escalations(
    tmp_path: Path, fake_claude: FakeAnthropic
) -> None:
    # Re-ping after 0.6 s: sooner, a busy machine can make it due before the notification it
    # threads under is posted, and it is then posted afresh instead.
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", fake_claude.base_url, reping_minutes=0.01
    )
    fake_claude.queue(text("Standard shipping takes 5–7 business days."))
    async with FakeSlack() as slack:
        chosen = {"slack": slack_settings(slack, mode="socket")}
        running = asyncio.create_task(serve(settings, chosen))
        try:
            question = load_body("message_im", text="How long is shipping?", ts="1700000001.1")
            await slack.send_envelope(question)
            [answer] = await slack.wait_for("chat.postMessage", lambda p: p["channel"] == "D0DM")

            wants = load_body("message_im", text="Can I talk to a human?", ts="1700000002.1")
            await slack.send_envelope(wants)
            await slack.wait_for("chat.postMessage", lambda p: p["channel"] == STAFF)
            [notice] = [m for m in slack.messages if m["channel"] == STAFF]
            [reping] = await slack.wait_for(
                "chat.postMessage", lambda p: p.get("thread_ts") == notice["ts"]
            )
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    assert "5–7 business days" in answer["text"]
    assert "still unclaimed" in reping["text"]
    assert slack.disconnects >= 1  # cancelling serve closed the Socket Mode connection


class FakeAdapter:
    """An adapter whose connection lasts until cancelled, or ends in ``failure`` at once."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def wait(self) -> None:
        if self.failure is not None:
            raise self.failure
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.events.append("cancelled")
            raise

    async def connected(self) -> bool:
        return self.failure is None

    async def close(self, *, grace: float | None = None) -> None:
        self.events.append("close")

    async def reping(self, view: EscalationView) -> None:
        self.events.append(f"reping {view.id}")

    def recover(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        self.events.append(f"recover {unanswered.message_id}")

    def redeliver(self, undelivered: Undelivered) -> None:
        self.events.append(f"redeliver {undelivered.id}")

    def resend(self, pending: StaffPending) -> None:
        self.events.append(f"resend {pending.id}")


async def test_one_adapter_failing_stops_the_others_and_the_watcher_first(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    broken = FakeAdapter(ConnectionError("gateway closed for good"))
    healthy = FakeAdapter()
    adapters = {"discord": broken, "slack": healthy}

    with pytest.raises(ExceptionGroup) as raised:
        await serve(
            settings, dict.fromkeys(adapters), make_adapter=lambda name, _, __: adapters[name]
        )

    assert raised.group_contains(ConnectionError, match="gateway closed for good")
    assert healthy.events == ["start", "cancelled", "close"]
    assert broken.events == ["start", "close"]
    watchers = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "watch_repings"]
    assert watchers == []
