"""The shop's MCP tools: two reads, three writes, over a :class:`ShopStore`.

- ``lookup_customer(email, zip_code?)`` — read;
- ``get_order_status(order_number)`` — read;
- ``cancel_order(order_number, email)`` — write, destructive;
- ``change_shipping_address(order_number, email, street, city, state, zip_code)`` — write,
  destructive;
- ``start_return(order_number, email, reason, skus?)`` — write, additive.

A refusal (unknown order, wrong state, return window passed) comes back as a tool error
(``isError``) whose text the model can relay. Writes take the email on the order, so an
order number alone changes nothing. The bot names the conversation's customer in each
request's ``_meta`` under :data:`PLATFORM_META_KEY` and :data:`CUSTOMER_META_KEY`; writes
record them in the shop's ``actions`` table and nothing else reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from bots.demo_shop.models import (
    AddressChange,
    Caller,
    Cancellation,
    CustomerAccount,
    OrderStatus,
    ReturnStarted,
    ShopError,
)
from bots.demo_shop.store import ShopStore

PLATFORM_META_KEY = "supportbot/platform"
CUSTOMER_META_KEY = "supportbot/customer"

INSTRUCTIONS = (
    "ShopNova's order system. Order numbers look like W1001. Look orders up freely; to "
    "cancel, re-address or return an order, ask the customer for the email on the order "
    "first. When a tool refuses, tell the customer its reason plainly."
)

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# A repeated write leaves the shop as the first one did (the same address again, or a
# refusal), so all are idempotent; cancelling and re-addressing overwrite, so destructive.
_OVERWRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)
_ADD = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

OrderNumber = Annotated[str, Field(description="The order number, e.g. W1001.")]
Email = Annotated[str, Field(description="The email address on the customer's account.")]


def caller_from_meta(meta: Mapping[str, Any] | None) -> Caller:
    """Who the bot says is asking, from a request's ``_meta``; absent or non-text → ``None``."""

    def text(key: str) -> str | None:
        value = (meta or {}).get(key)
        # Capped: the value is only a label in the audit, whatever a client sends.
        return value[:200] if isinstance(value, str) and value else None

    return Caller(platform=text(PLATFORM_META_KEY), customer=text(CUSTOMER_META_KEY))


@contextmanager
def _relayed() -> Iterator[None]:
    # A ToolError's text reaches the model; any other exception would be masked as a crash.
    try:
        yield
    except ShopError as exc:
        raise ToolError(str(exc)) from exc


def _caller(ctx: Context) -> Caller:
    return caller_from_meta(ctx.request_context.meta)


def open_server(db: Path, *, today: date | None = None) -> MCPServer:
    """The shop's server over the SQLite file ``db``, created and seeded if missing.

    ``today`` pins the day used for seeding a new file and for the return window; without
    it the server follows the calendar. This is what ``python -m bots.demo_shop`` serves
    over stdio, and what tests connect to in-process.
    """
    store = ShopStore.open(db, today=date.today if today is None else (lambda: today))
    return build_server(store)


def build_server(store: ShopStore) -> MCPServer:
    """An MCP server whose tools read and change the orders in ``store``."""
    # WARNING: the SDK logs each refusal at INFO, and refusals quote customers' input.
    server: MCPServer = MCPServer(
        "shopnova-orders", title="ShopNova orders", instructions=INSTRUCTIONS, log_level="WARNING"
    )

    @server.tool(annotations=_READ.model_copy(update={"title": "Look up a customer"}))
    def lookup_customer(
        email: Email,
        zip_code: Annotated[
            str | None, Field(description="The account's ZIP code, to confirm it's theirs.")
        ] = None,
    ) -> CustomerAccount:
        """Find a customer's account by email. With the account's ZIP code it also lists
        their orders (newest first); without it, it only confirms the account and its name,
        since anyone can type an email address. A wrong ZIP code is refused."""
        with _relayed():
            return store.find_customer(email, zip_code)

    @server.tool(annotations=_READ.model_copy(update={"title": "Order status and tracking"}))
    def get_order_status(order_number: OrderNumber) -> OrderStatus:
        """An order's status, items, shipping method and time, carrier and tracking number,
        the link where the customer can track it, and when its return window ends."""
        with _relayed():
            return store.order_status(order_number)

    @server.tool(annotations=_OVERWRITE.model_copy(update={"title": "Cancel an order"}))
    def cancel_order(order_number: OrderNumber, email: Email, ctx: Context) -> Cancellation:
        """Cancel an order that hasn't shipped yet (status pending); the payment goes back to
        the original payment method. Shipped or delivered orders can't be cancelled."""
        with _relayed():
            return store.cancel_order(order_number, email, caller=_caller(ctx))

    @server.tool(annotations=_OVERWRITE.model_copy(update={"title": "Change the shipping address"}))
    def change_shipping_address(
        order_number: OrderNumber,
        email: Email,
        street: Annotated[str, Field(description="Street and number, with any apartment.")],
        city: str,
        state: Annotated[str, Field(description="Two-letter state code, e.g. CA.")],
        zip_code: Annotated[str, Field(description="5-digit ZIP code.")],
        ctx: Context,
    ) -> AddressChange:
        """Send an order that hasn't shipped yet (status pending) to a new address."""
        with _relayed():
            return store.change_address(
                order_number, email, street=street, city=city, state=state,
                zip_code=zip_code, caller=_caller(ctx),
            )  # fmt: skip

    @server.tool(annotations=_ADD.model_copy(update={"title": "Start a return"}))
    def start_return(
        order_number: OrderNumber,
        email: Email,
        reason: Annotated[str, Field(description="Why the customer is returning it.")],
        ctx: Context,
        skus: Annotated[
            list[str] | None,
            Field(description="SKUs of the items to return (from the order); all if omitted."),
        ] = None,
    ) -> ReturnStarted:
        """Start a return of a delivered order's items, within 30 days of delivery. Items
        must be unused and in their original packaging. Answers with the return id, what
        the customer does next, and the refund: to the original payment method, 5–7
        business days after we receive the items."""
        with _relayed():
            return store.start_return(
                order_number, email, reason=reason, skus=skus, caller=_caller(ctx)
            )

    return server
