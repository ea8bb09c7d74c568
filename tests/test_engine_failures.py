"""Every way Claude can fail ends in a configured next step, an escalation, and valid history."""

from __future__ import annotations

import logging

import pytest

from bots.app import open_runtime
from core.config import Settings
from core.engine import Engine
from tests.conftest import make_settings
from tests.engine_helpers import message, texts
from tests.fakes.anthropic_api import (
    FakeAnthropic,
    FakeResponse,
    drop,
    drop_mid_stream,
    error,
    hang,
    overloaded,
    rate_limited,
    spend_limited,
    stall_mid_stream,
    stream_error,
    text,
)

# Nothing in the demo knowledge base answers this, so every failure must escalate.
UNANSWERABLE = "Can your designers match the exact shade of my grandmother's curtains?"

FAILURES = [
    # (id, responses the fake gives, fallback cause, requests the turn makes)
    ("rate-limit", [rate_limited(), rate_limited()], "rate_limited", 2),
    ("overloaded-529", [overloaded(), overloaded()], "overloaded", 2),
    ("overloaded-mid-stream", [stream_error(), stream_error()], "overloaded", 2),
    ("server-error", [error(500, "api_error"), error(500, "api_error")], "server_error", 2),
    ("timeout", [hang(), hang()], "timeout", 2),
    ("connection", [drop(), drop()], "connection", 2),
    ("dropped-mid-stream", [drop_mid_stream(), drop_mid_stream()], "connection", 2),
    ("stalled-mid-stream", [stall_mid_stream(), stall_mid_stream()], "timeout", 2),
    ("spend-limit", [spend_limited()], "spend_limit", 1),
    ("bad-key", [error(401, "authentication_error")], "auth", 1),
    (
        "refusal",
        [text("I can't.", stop_reason="refusal", stop_details={"type": "refusal"})],
        "refusal",
        1,
    ),
    ("truncated", [text("The answer is", stop_reason="max_tokens")], "truncated", 1),
]


@pytest.fixture
def settings(database_url: str, fake_claude: FakeAnthropic) -> Settings:
    # Short per-attempt timeout so the hang case finishes quickly.
    return make_settings(database_url, fake_claude.base_url, claude={"timeout_seconds": 0.5})


@pytest.mark.parametrize(
    ("responses", "cause", "attempts"),
    [pytest.param(r, c, a, id=i) for i, r, c, a in FAILURES],
)
async def test_failure_gets_its_fallback_and_history_stays_valid(
    engine: Engine,
    fake_claude: FakeAnthropic,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    responses: list[FakeResponse],
    cause: str,
    attempts: int,
) -> None:
    assert settings.persona is not None
    fake_claude.queue(*responses, text("A designer can help with that."))
    with caplog.at_level(logging.WARNING, logger="supportbot.engine"):
        reply = await engine.handle(message(UNANSWERABLE))

    assert reply is not None
    assert reply.text == getattr(settings.persona.fallbacks, cause)
    assert reply.escalation is not None and cause in reply.escalation.reason
    assert len(fake_claude.requests) == attempts
    assert cause in caplog.text and "test:T1:C1:" in caplog.text
    assert "Traceback" not in reply.text

    # The next turn sends both customer messages as one user turn, and nothing of the failure;
    # except that a refused message is never sent again (as Anthropic requires: it would be
    # refused again, and every turn after it).
    after = await engine.handle(message("Hello again?"))
    assert after is not None and after.text == "A designer can help with that."
    resent = "" if cause == "refusal" else f"{UNANSWERABLE} | "
    assert texts(fake_claude.requests[-1].body["messages"]) == [("user", f"{resent}Hello again?")]


async def test_retry_after_beyond_the_cap_is_not_waited_for(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(error(429, "rate_limit_error", headers={"retry-after": "120"}))
    reply = await engine.handle(message(UNANSWERABLE))

    assert reply is not None and reply.text == settings.persona.fallbacks.rate_limited
    assert len(fake_claude.requests) == 1


async def test_transient_failure_then_success_is_invisible(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(overloaded(), text("Standard shipping takes 5–7 business days."))
    reply = await engine.handle(message("How long is shipping?"))

    assert reply is not None and reply.escalation is None
    assert reply.text == "Standard shipping takes 5–7 business days."
    assert len(fake_claude.requests) == 2


async def test_failure_on_a_known_question_answers_from_the_knowledge_base(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(overloaded(), overloaded())
    reply = await engine.handle(message("How long does a refund take?"))

    assert reply is not None and reply.escalation is None
    assert reply.text.startswith(settings.persona.limited_mode)
    assert "5–7 business days" in reply.text


async def test_without_a_key_the_bot_runs_in_limited_mode(database_url: str) -> None:
    settings = make_settings(database_url, None)
    assert settings.persona is not None
    async with open_runtime(settings) as runtime:
        known = await runtime.engine.handle(message("Is shipping free?"))
        unknown = await runtime.engine.handle(message(UNANSWERABLE))

    assert known is not None and known.escalation is None
    assert known.text.startswith(settings.persona.limited_mode) and "$75" in known.text
    assert unknown is not None and unknown.escalation is not None
    assert settings.persona.dont_know in unknown.text
    assert settings.persona.limited_mode in unknown.text
