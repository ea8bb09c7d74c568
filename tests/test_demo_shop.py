"""The demo shop's MCP server, driven by the real MCP client.

Most tests connect a :class:`ClientSession` to the server object in-process, over the SDK's
in-memory streams: the same JSON-RPC session loop, handshakes and request ``_meta`` as over
stdio, without paying for a process (and its ~2 s import of ``mcp``) per test. The tests at
the end spawn ``python -m bots.demo_shop`` and talk to it over stdio, end to end.

Every test gets a fresh database with "today" pinned, so the seeded dates (and with them
the 30-day return window) are the same on every run.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client._memory import InMemoryTransport
from mcp_types import CallToolResult, TextContent

from bots.demo_shop.server import CUSTOMER_META_KEY, PLATFORM_META_KEY, open_server

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 3, 10)
MAYA = "maya.patel@example.com"
DANIEL = "daniel.okafor@example.com"
SOFIA = "sofia.lindqvist@example.com"
SLACK_U123 = {PLATFORM_META_KEY: "slack", CUSTOMER_META_KEY: "U123"}
TOOLS = {"lookup_customer", "get_order_status", "cancel_order", "change_shipping_address",
         "start_return"}  # fmt: skip


@asynccontextmanager
async def shop(tmp_path: Path, *, handshake: str = "discover") -> AsyncIterator[ClientSession]:
    """A session with an in-process shop server on ``tmp_path/shop.db``, connected with
    ``handshake``: ``discover`` (protocol 2026-07-28) or ``initialize`` (the earlier one)."""
    server = open_server(tmp_path / "shop.db", today=TODAY)
    async with (
        InMemoryTransport(server) as (read, write),
        ClientSession(read, write) as session,
    ):
        await getattr(session, handshake)()
        yield session


@asynccontextmanager
async def stdio_shop(tmp_path: Path) -> AsyncIterator[ClientSession]:
    """A session with ``python -m bots.demo_shop`` on ``tmp_path/shop.db``, over stdio."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bots.demo_shop", "--db", str(tmp_path / "shop.db"), "--today", str(TODAY)],
        cwd=REPO,
    )
    with (tmp_path / "server.log").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.discover()
            yield session


async def ok(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments, meta=SLACK_U123)
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments, meta=SLACK_U123)
    assert result.is_error, result.structured_content
    return _text(result)


def _text(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


def actions(tmp_path: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM actions ORDER BY id").fetchall()


async def test_tools_are_listed_with_their_annotations(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        tools = {tool.name: tool.annotations for tool in (await session.list_tools()).tools}

    assert set(tools) == TOOLS
    hints = {
        name: (a.read_only_hint, a.destructive_hint) for name, a in tools.items() if a is not None
    }
    assert hints == {
        "lookup_customer": (True, None),
        "get_order_status": (True, None),
        "cancel_order": (False, True),
        "change_shipping_address": (False, True),
        "start_return": (False, False),
    }


async def test_lookup_finds_the_account_and_its_orders(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        account = await ok(session, "lookup_customer", email="Maya.Patel@Example.com")
        verified = await ok(session, "lookup_customer", email=MAYA, zip_code="94110")
        wrong_zip = await refused(session, "lookup_customer", email=MAYA, zip_code="10027")
        unknown = await refused(session, "lookup_customer", email="nobody@example.com")

    assert (account["name"], account["zip_verified"], account["orders"]) == (
        "Maya Patel",
        False,
        [],
    )
    assert verified["zip_verified"]
    assert [o["order_number"] for o in verified["orders"]] == ["W1001", "W1002"]
    assert "ZIP code doesn't match" in wrong_zip
    assert "no ShopNova account" in unknown


async def test_order_status_has_tracking(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        order = await ok(session, "get_order_status", order_number="#w1002")

    assert order["order_number"] == "W1002"
    assert order["status"] == "shipped"
    assert [item["name"] for item in order["items"]] == ["Oak coffee table"]
    assert (order["shipping_method"], order["shipping_time"]) == ("express", "2–3 business days")
    assert (order["carrier"], order["tracking_number"]) == ("UPS", "1Z999AA10123456784")
    assert order["tracking_url"] == "https://shopnova.com/track?order=W1002"
    assert order["shipped_on"] == str(TODAY - timedelta(days=2))


async def test_an_unknown_order_is_a_tool_error(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        messages = [
            await refused(session, "get_order_status", order_number="W9999"),
            await refused(session, "cancel_order", order_number="W9999", email=MAYA),
            await refused(
                session, "start_return", order_number="W9999", email=MAYA, reason="too big"
            ),
        ]

    assert all("There's no order W9999" in message for message in messages), messages


async def test_cancel_a_pending_order(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        cancelled = await ok(session, "cancel_order", order_number="W1001", email=MAYA)
        order = await ok(session, "get_order_status", order_number="W1001")

    assert cancelled["refund"] == "$237.00 to Visa ending 4242"
    assert (order["status"], order["cancelled_on"]) == ("cancelled", str(TODAY))


async def test_cancelling_a_delivered_order_is_refused(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        message = await refused(session, "cancel_order", order_number="W1003", email=DANIEL)
        order = await ok(session, "get_order_status", order_number="W1003")

    assert "already been delivered, so it can't be cancelled" in message
    assert order["status"] == "delivered"


async def test_a_write_needs_the_email_on_the_order(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        message = await refused(session, "cancel_order", order_number="W1001", email=DANIEL)
        order = await ok(session, "get_order_status", order_number="W1001")

    assert "isn't on the account for that email" in message
    assert order["status"] == "pending"


async def test_change_the_address_of_a_pending_order(tmp_path: Path) -> None:
    new_address = {"street": "1 Davis St", "city": "Evanston", "state": "il", "zip_code": "60201"}
    async with shop(tmp_path) as session:
        changed = await ok(
            session, "change_shipping_address", order_number="W1006", email=SOFIA, **new_address
        )
        order = await ok(session, "get_order_status", order_number="W1006")

    assert changed["ships_to"] == "1 Davis St, Evanston, IL 60201"
    assert order["ships_to"] == "Evanston, IL 60201"


async def test_changing_the_address_of_a_shipped_order_is_refused(tmp_path: Path) -> None:
    new_address = {"street": "1 Davis St", "city": "Evanston", "state": "IL", "zip_code": "60201"}
    async with shop(tmp_path) as session:
        message = await refused(
            session, "change_shipping_address", order_number="W1002", email=MAYA, **new_address
        )
        order = await ok(session, "get_order_status", order_number="W1002")

    assert "can't be changed: it has already shipped" in message
    assert order["ships_to"] == "San Francisco, CA 94110"


async def test_return_within_30_days_of_delivery(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        started = await ok(
            session, "start_return", order_number="W1003", email=DANIEL, reason="too big"
        )
        order = await ok(session, "get_order_status", order_number="W1003")
        # Delivered exactly 30 days ago: the window's last day.
        last_day = await ok(
            session, "start_return", order_number="W1007", email=SOFIA, reason="too big"
        )

    assert started["refund_amount"] == "$325.00"
    assert started["refund_to"] == "Mastercard ending 5100"
    assert "original packaging" in started["next_steps"]
    assert "5–7 business days after we receive it" in started["refund_timing"]
    assert {item["return_id"] for item in order["items"]} == {started["return_id"]}
    assert last_day["return_id"] not in ("", started["return_id"])


async def test_return_of_chosen_items_only(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        started = await ok(
            session, "start_return", order_number="W1003", email=DANIEL, reason="wrong colour",
            skus=["rug-wol-58"],
        )  # fmt: skip
        again = await refused(
            session, "start_return", order_number="W1003", email=DANIEL, reason="wrong colour",
            skus=["RUG-WOL-58"],
        )  # fmt: skip

    assert (started["items"], started["refund_amount"]) == (["Wool area rug, 5×8 ft"], "$289.00")
    assert f"Already being returned: Wool area rug, 5×8 ft ({started['return_id']})" in again


async def test_return_after_30_days_is_refused(tmp_path: Path) -> None:
    async with shop(tmp_path) as session:
        message = await refused(
            session, "start_return", order_number="W1004", email=DANIEL, reason="too big"
        )
        pending = await refused(
            session, "start_return", order_number="W1001", email=MAYA, reason="too big"
        )

    window_ended = TODAY - timedelta(days=45) + timedelta(days=30)
    assert f"the return window ended on {window_ended}" in message
    assert "hasn't been delivered yet" in pending


@pytest.mark.parametrize("handshake", ["discover", "initialize"])
async def test_writes_record_who_asked_from_the_request_meta(
    tmp_path: Path, handshake: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    async with shop(tmp_path, handshake=handshake) as session:
        cancelled = await session.call_tool(
            "cancel_order", {"order_number": "W1001", "email": MAYA}, meta=SLACK_U123
        )
        await session.call_tool(
            "cancel_order",
            {"order_number": "W1003", "email": DANIEL},
            meta={PLATFORM_META_KEY: "discord", CUSTOMER_META_KEY: "4711"},
        )
        await session.call_tool("cancel_order", {"order_number": "W1002", "email": MAYA})
        await session.call_tool("get_order_status", {"order_number": "W1001"}, meta=SLACK_U123)

    rows = [(r["platform"], r["customer"], r["tool"], r["outcome"]) for r in actions(tmp_path)]
    assert rows == [
        ("slack", "U123", "cancel_order", "ok"),
        ("discord", "4711", "cancel_order", "refused"),
        (None, None, "cancel_order", "refused"),
    ]
    first = actions(tmp_path)[0]
    assert json.loads(first["arguments"]) == {"order_number": "W1001", "email": MAYA}
    assert before <= datetime.fromisoformat(first["at"]) <= datetime.now(UTC)
    assert "U123" not in cancelled.model_dump_json()


async def test_the_database_survives_a_restart(tmp_path: Path) -> None:
    # Each `shop` builds a new server and store over the same file, as a restart would.
    async with shop(tmp_path) as session:
        await ok(session, "cancel_order", order_number="W1001", email=MAYA)
    async with shop(tmp_path) as session:
        order = await ok(session, "get_order_status", order_number="W1001")

    assert order["status"] == "cancelled"


# -- over stdio: the process, its command line and the stdio transport, end to end ----------


async def test_over_stdio_a_write_is_served_and_audited(tmp_path: Path) -> None:
    async with stdio_shop(tmp_path) as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        cancelled = await ok(session, "cancel_order", order_number="W1001", email=MAYA)
        shipped = await ok(session, "get_order_status", order_number="W1002")

    assert tools == TOOLS
    assert cancelled["refund"] == "$237.00 to Visa ending 4242"
    # --today reached the seeding: W1002 shipped two days before the pinned day.
    assert shipped["shipped_on"] == str(TODAY - timedelta(days=2))
    rows = [(r["platform"], r["customer"], r["tool"], r["outcome"]) for r in actions(tmp_path)]
    assert rows == [("slack", "U123", "cancel_order", "ok")]
