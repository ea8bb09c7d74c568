"""Logs carry ids, keys, causes and codes: never a secret, never what a customer wrote.

Every record is rendered as a handler would write it (message, arguments, traceback with its
chained exceptions), at DEBUG, so library lines count too.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from pydantic import SecretStr
from sqlalchemy import text as sql

from core import logs
from core.config import Settings
from core.engine import Engine
from storage.database import create_engine
from tests.conftest import make_settings
from tests.engine_helpers import message
from tests.fakes.anthropic_api import FakeAnthropic, FakeResponse, echo_error, error, text

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


@pytest.mark.parametrize(
    "said", [f"Bearer {API_KEY} expired", f"bad key {API_KEY}", f"authorization={API_KEY}; retry"]
)
def test_an_excerpt_holds_no_key(said: str) -> None:
    kept = logs.excerpt(said)
    assert "Zq9kLm2Xv8" not in kept and logs.REDACTED in kept


def test_an_excerpt_is_bounded() -> None:
    assert len(logs.excerpt("overloaded " * 50, limit=40)) == 40


async def refuse_marker(database_url: str, table: str, column: str) -> None:
    """Make the database refuse rows of ``table`` whose ``column`` holds the marker.

    PostgreSQL: a CHECK constraint (its error's DETAIL quotes the failing row) or, for
    ``messages``, a trigger whose error is not an integrity error, with the row as DETAIL.
    SQLite: a trigger (its errors never quote values, but its driver's DEBUG lines do).
    """
    if database_url.startswith("sqlite"):
        ddl = [
            f"CREATE TRIGGER refuses_marker BEFORE INSERT ON {table} "
            f"WHEN NEW.{column} LIKE '%{MARKER}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
    elif table == "messages":
        ddl = [
            "CREATE FUNCTION refuse_marker() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.{column}::text LIKE '%{MARKER}%' THEN RAISE EXCEPTION 'refused' "
            f"USING ERRCODE = '22023', DETAIL = NEW.{column}::text; END IF; RETURN NEW; END $$",
            f"CREATE TRIGGER refuses_marker BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_marker()",
        ]
    else:
        ddl = [
            f"ALTER TABLE {table} ADD CONSTRAINT refuses_marker "
            f"CHECK ({column}::text NOT LIKE '%{MARKER}%')"
        ]
    database = create_engine(database_url)
    try:
        async with database.begin() as connection:
            for statement in ddl:
                await connection.execute(sql(statement))
    finally:
        await database.dispose()


async def test_a_refused_customer_turn_is_logged_without_its_text(
    engine: Engine, settings: Settings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.persona is not None
    await refuse_marker(database_url, "messages", "content")
    caplog.set_level(logging.DEBUG)
    reply = await engine.handle(message(f"My order {MARKER} is late"))

    assert reply is not None and reply.text == settings.persona.fallbacks.unknown
    logged = rendered(caplog)
    assert MARKER not in logged
    assert f"storing the customer's turn failed in {KEY_TEXT}" in logged
    if database_url.startswith("postgresql"):
        assert (
            "StoreError: begin_turn: DBAPIError (InvalidParameterValueError, SQLSTATE 22023)"
            in logged
        )
    assert MARKER not in logged


async def test_a_refused_hand_off_is_logged_without_its_summary(
    engine: Engine,
    settings: Settings,
    fake_claude: FakeAnthropic,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.persona is not None
    await refuse_marker(database_url, "escalations", "summary")
    fake_claude.queue(text(f"The customer says order {MARKER} is late."))  # the summary
    caplog.set_level(logging.DEBUG)
    reply = await engine.handle(replace(message(f"My order {MARKER} is late"), wants_person=True))

    # The hand-off and then the fallback's own hand-off (the turn verbatim) were refused.
    assert reply is not None and reply.text == settings.persona.fallbacks.unknown
    logged = rendered(caplog)
    assert MARKER not in logged
    assert f"storing the fallback failed in {KEY_TEXT}" in logged
    cause = (
        "IntegrityError (IntegrityError, SQLSTATE SQLITE_CONSTRAINT_TRIGGER)"
        if database_url.startswith("sqlite")
        else "IntegrityError (CheckViolationError, SQLSTATE 23514, "
        "constraint refuses_marker on escalations)"
    )
    assert f"StoreError: finish_turn: {cause}" in logged
