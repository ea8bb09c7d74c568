"""``/healthz``, ``/readyz`` and ``/metrics`` as ``supportbot run`` serves them, over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bots.app import serve
from bots.health import Health
from tests.conftest import free_port, make_settings
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import load_body, slack_settings

WITHIN = 15.0


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def until_status(port: int, path: str, status: int) -> str:
    """Ask ``path`` until it answers ``status`` (the server is polled as a prober would)."""
    async with asyncio.timeout(WITHIN):
        while True:
            try:
                got, body = await get(port, path)
            except aiohttp.ClientConnectionError:
                got, body = 0, ""
            if got == status:
                return body
            await asyncio.sleep(0.05)


def _samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def test_ready_once_connected_counts_the_turn_and_not_ready_when_slack_is_gone(
    tmp_path: Path, fake_claude: FakeAnthropic, slack: FakeSlack
) -> None:
    port = free_port()
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        fake_claude.base_url,
        health_host="127.0.0.1",
        health_port=port,
    )
    fake_claude.queue(text("Standard shipping takes 5–7 business days."))
    running = asyncio.create_task(serve(settings, {"slack": slack_settings(slack, mode="socket")}))
    try:
        assert await until_status(port, "/readyz", 200) == '{"status": "ready"}'
        assert await get(port, "/healthz") == (200, '{"status": "ok"}')
        before = _samples((await get(port, "/metrics"))[1])

        await slack.send_envelope(load_body("message_im", text="How long is shipping?"))
        await slack.wait_for("chat.postMessage", lambda p: p["channel"] == "D0DM")
        after = _samples((await get(port, "/metrics"))[1])

        await slack.close()  # the platform connection is gone, and stays gone
        not_ready = await until_status(port, "/readyz", 503)
        alive = await get(port, "/healthz")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("supportbot_turns_total", outcome="answered") == 1
    assert grew("supportbot_claude_request_seconds_count", outcome="ok") == 1
    assert grew("supportbot_claude_tokens_total", kind="output") > 0
    assert grew("supportbot_turn_seconds_count") == 1
    assert not_ready == '{"status": "not ready", "failing": ["slack"]}'
    assert alive[0] == 200


async def test_a_failing_or_hanging_check_makes_it_not_ready_and_draining_too() -> None:
    async def up() -> bool:
        return True

    async def broken() -> bool:
        raise ConnectionError("database gone")

    async def hanging() -> bool:
        await asyncio.Event().wait()
        return True

    health = Health({"database": broken, "slack": up, "discord": hanging})
    await health.start("127.0.0.1", 0)
    try:
        assert health.port is not None
        status, body = await get(health.port, "/readyz")
        health.draining()
        draining = await get(health.port, "/readyz")
    finally:
        await health.close()

    assert status == 503
    assert body == '{"status": "not ready", "failing": ["database", "discord"]}'
    assert draining == (
        503,
        '{"status": "not ready", "failing": ["draining", "database", "discord"]}',
    )


async def test_a_port_in_use_is_a_start_error_naming_the_setting() -> None:
    first = Health({})
    await first.start("127.0.0.1", 0)
    try:
        assert first.port is not None
        with pytest.raises(Exception, match=r"SUPPORTBOT_HEALTH_PORT: cannot listen on"):
            await Health({}).start("127.0.0.1", first.port)
    finally:
        await first.close()
