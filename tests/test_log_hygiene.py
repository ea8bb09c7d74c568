"""Logs carry ids, keys, causes and codes: never a secret, never what a customer wrote.

Every record is rendered as a handler would write it (message, arguments, traceback with its
chained exceptions), at DEBUG, so library lines count too.
"""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from core.config import Settings
from core.engine import Engine
from tests.conftest import make_settings
from tests.engine_helpers import message
from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, echo_error, error

MARKER = "Pineapple7Q"  # a word only the customer writes
API_KEY = "sk-ant-api03-Zq9kLm2Xv8TestOnly-AbCdEf"
KEY_TEXT = "test:T1:C1:1700000000.000100"


@pytest.fixture
def settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    made = make_settings(database_url, fake_claude.base_url)
    claude = made.claude.model_copy(update={"api_key": SecretStr(API_KEY)})
    return made.model_copy(update={"claude": claude})


def rendered(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.mark.parametrize(
    ("failure", "shown"),
    [
        pytest.param(echo_error(500), ["HTTP 500", "api_error", "'gateway rejected'"], id="json"),
        pytest.param(
            echo_error(502, as_json=False), ["HTTP 502", "non-JSON body"], id="plain-text"
        ),
        pytest.param(
            error(500, "api_error", f"key x-api-key: {API_KEY} refused for {MARKER} order"),
            ["HTTP 500", "api_error", "'key *** refused for *** order'"],
            id="unquoted",
        ),
    ],
)
async def test_an_upstream_error_is_logged_without_the_key_or_the_conversation(
    engine: Engine,
    fake_claude: FakeAnthropic,
    caplog: pytest.LogCaptureFixture,
    failure: FakeResponse,
    shown: list[str],
) -> None:
    fake_claude.queue(failure, failure)  # the first attempt and its retry
    caplog.set_level(logging.DEBUG)
    reply = await engine.handle(message(f"Can you match the shade of my curtains? {MARKER}"))

    assert reply is not None and reply.escalation is not None
    assert API_KEY in str(fake_claude.requests[-1].headers)  # sent, so the gateway echoes it
    logged = rendered(caplog)
    warning = next(r.getMessage() for r in caplog.records if "claude failed" in r.getMessage())
    for part in [KEY_TEXT, "server_error", "request-id req_fake_2", *shown]:
        assert part in warning
    assert API_KEY not in logged and "Zq9kLm2Xv8" not in logged
    assert MARKER not in logged
