"""ShopNova's order system over its own SQLite file: each write's rules, and its audit.

Every write checks the order's state inside the transaction that changes it and records the
attempt — accepted or refused — in ``actions`` in that same transaction. A refusal raises
:class:`ShopError` with a message meant for the customer.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bots.demo_shop.models import (
    AddressChange,
    Caller,
    Cancellation,
    CustomerAccount,
    OrderLine,
    OrderStatus,
    OrderSummary,
    ReturnStarted,
    ShopError,
)
from bots.demo_shop.seed import seed

RETURN_WINDOW_DAYS = 30
TRACK_URL = "https://shopnova.com/track"
SHIPPING_TIME = {"standard": "5–7 business days", "express": "2–3 business days"}
REFUND_TIMING = "Refund 5–7 business days after we receive it, to the original payment method."

T = TypeVar("T")


def normalize_order_number(text: str) -> str:
    """``" #w1001 "`` → ``"W1001"``: customers type order numbers every which way."""
    return text.strip().lstrip("#").strip().upper()


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _check_address(address: dict[str, str]) -> None:
    checks = {
        "a street": bool(address["street"]),
        "a city": bool(address["city"]),
        "a two-letter state code": re.fullmatch(r"[A-Z]{2}", address["state"]) is not None,
        "a 5-digit ZIP code": re.fullmatch(r"\d{5}(-\d{4})?", address["zip"]) is not None,
    }
    missing = [what for what, ok in checks.items() if not ok]
    if missing:
        raise ShopError(f"The new address needs {' and '.join(missing)}.")


def _return_id(row_id: int) -> str:
    return f"R{5000 + row_id}"


class ShopStore:
    """The shop's customers, orders and returns in the SQLite file at ``path``.

    ``today`` is asked on every call, so a long-running server moves with the calendar and
    tests can pin it. Each call opens its own connection: the MCP SDK runs plain functions
    on worker threads, and a sqlite3 connection must stay on one thread.
    """

    def __init__(self, path: Path, *, today: Callable[[], date]) -> None:
        self._path = path
        self._today = today

    @classmethod
    def open(cls, path: Path, *, today: Callable[[], date]) -> ShopStore:
        """The store at ``path``, created and seeded (relative to ``today()``) if missing."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Seed beside it and move it into place, so an existing file is always complete.
            partial = path.with_name(f".{path.name}.seeding")
            partial.unlink(missing_ok=True)
            with closing(sqlite3.connect(partial)) as db:
                seed(db, today())
                db.commit()
            os.replace(partial, path)
        return cls(path, today=today)

    # -- reads ---------------------------------------------------------------------------

    def find_customer(self, email: str, zip_code: str | None = None) -> CustomerAccount:
        """The account for ``email``; its orders only when ``zip_code`` is given and matches."""
        with self._reading() as db:
            customer = db.execute(
                "SELECT * FROM customers WHERE email = ?", (email.strip(),)
            ).fetchone()
            if customer is None:
                raise ShopError("There's no ShopNova account with that email address.")
            if zip_code is not None and zip_code.strip() != customer["zip"]:
                raise ShopError("That ZIP code doesn't match the account for that email address.")
            verified = zip_code is not None
            # Only a matching ZIP code lists the orders: anyone can type an email address.
            numbers = (
                db.execute(
                    "SELECT number FROM orders WHERE customer_id = ? ORDER BY placed_on DESC",
                    (customer["id"],),
                ).fetchall()
                if verified
                else []
            )
            orders = [self._status(db, number) for (number,) in numbers]
        return CustomerAccount(
            name=customer["name"],
            email=customer["email"],
            zip_verified=verified,
            orders=[
                OrderSummary(
                    order_number=o.order_number, status=o.status, placed_on=o.placed_on,
                    total=o.total,
                )
                for o in orders
            ],
        )  # fmt: skip

    def order_status(self, order_number: str) -> OrderStatus:
        """Where order ``order_number`` is: items, shipping, tracking, return window."""
        with self._reading() as db:
            return self._status(db, normalize_order_number(order_number))

    # -- writes --------------------------------------------------------------------------

    def cancel_order(self, order_number: str, email: str, *, caller: Caller) -> Cancellation:
        """Cancel a pending order; the payment goes back to the original payment method."""
        number = normalize_order_number(order_number)

        def change(db: sqlite3.Connection) -> tuple[Cancellation, str]:
            order = self._owned(db, number, email)
            refusal = {
                "shipped": f"Order {number} has already shipped, so it can't be cancelled. "
                f"Once it arrives it can be returned within {RETURN_WINDOW_DAYS} days.",
                "delivered": f"Order {number} has already been delivered, so it can't be "
                f"cancelled. Delivered items can be returned within {RETURN_WINDOW_DAYS} "
                "days of delivery.",
                "cancelled": f"Order {number} is already cancelled.",
            }.get(order["status"])
            if refusal:
                raise ShopError(refusal)
            db.execute(
                "UPDATE orders SET status = 'cancelled', cancelled_on = ? WHERE number = ?",
                (self._today().isoformat(), number),
            )
            amount, paid_with = _money(self._total_cents(db, number)), order["payment_method"]
            return Cancellation(
                order_number=number,
                refund=f"{amount} to {paid_with}",
                message=f"Order {number} is cancelled and won't ship; {amount} goes back to "
                f"{paid_with}, the original payment method.",
            ), "cancelled"

        return self._audited(
            "cancel_order", caller, {"order_number": number, "email": email}, change
        )

    def change_address(
        self,
        order_number: str,
        email: str,
        *,
        street: str,
        city: str,
        state: str,
        zip_code: str,
        caller: Caller,
    ) -> AddressChange:
        """Send a pending order to a new address."""
        number = normalize_order_number(order_number)
        address = {"street": street.strip(), "city": city.strip(),
                   "state": state.strip().upper(), "zip": zip_code.strip()}  # fmt: skip

        def change(db: sqlite3.Connection) -> tuple[AddressChange, str]:
            order = self._owned(db, number, email)
            if order["status"] != "pending":
                reason = {"shipped": "it has already shipped", "delivered": "it was delivered",
                          "cancelled": "it was cancelled"}[order["status"]]  # fmt: skip
                raise ShopError(f"Order {number}'s address can't be changed: {reason}.")
            _check_address(address)
            db.execute(
                "UPDATE orders SET street = :street, city = :city, state = :state, zip = :zip"
                " WHERE number = :number",
                {**address, "number": number},
            )
            ships_to = (
                f"{address['street']}, {address['city']}, {address['state']} {address['zip']}"
            )
            return AddressChange(
                order_number=number,
                ships_to=ships_to,
                message=f"Order {number} will now ship to {ships_to}.",
            ), "address changed"

        return self._audited(
            "change_shipping_address",
            caller,
            {"order_number": number, "email": email, **address},
            change,
        )

    def start_return(
        self,
        order_number: str,
        email: str,
        *,
        reason: str,
        skus: list[str] | None,
        caller: Caller,
    ) -> ReturnStarted:
        """Open a return for a delivered order's items (all not yet returned, or ``skus``)."""
        number = normalize_order_number(order_number)
        wanted = None if skus is None else [sku.strip().upper() for sku in skus]

        def change(db: sqlite3.Connection) -> tuple[ReturnStarted, str]:
            order = self._owned(db, number, email)
            self._check_returnable(number, order)
            lines = self._lines(db, number)
            chosen = self._choose_lines(number, lines, wanted)
            refund_cents = sum(line["quantity"] * line["unit_price_cents"] for line in chosen)
            row_id = db.execute(
                "INSERT INTO returns (order_number, created_on, reason, refund_cents)"
                " VALUES (?, ?, ?, ?)",
                (number, self._today().isoformat(), reason.strip(), refund_cents),
            ).lastrowid
            assert row_id is not None  # typed optional; an INSERT always sets it
            db.executemany(
                "UPDATE order_items SET return_id = ? WHERE order_number = ? AND sku = ?",
                [(row_id, number, line["sku"]) for line in chosen],
            )
            return_id = _return_id(row_id)
            return ReturnStarted(
                return_id=return_id,
                order_number=number,
                items=[line["name"] for line in chosen],
                refund_amount=_money(refund_cents),
                refund_to=order["payment_method"],
                next_steps=(
                    "We've emailed the return instructions to the address on the account. "
                    "Pack the items unused, in their original packaging, and write the "
                    f"return id {return_id} on the parcel."
                ),
                refund_timing=REFUND_TIMING,
            ), f"return {return_id}"

        return self._audited(
            "start_return",
            caller,
            {"order_number": number, "email": email, "reason": reason, "skus": wanted},
            change,
        )

    # -- rules ---------------------------------------------------------------------------

    def _check_returnable(self, number: str, order: sqlite3.Row) -> None:
        status = order["status"]
        if status == "cancelled":
            raise ShopError(f"Order {number} was cancelled, so there's nothing to return.")
        if status != "delivered":
            raise ShopError(
                f"Order {number} hasn't been delivered yet, so it can't be returned; it can "
                f"be returned within {RETURN_WINDOW_DAYS} days of delivery."
            )
        delivered = date.fromisoformat(order["delivered_on"])
        window_ends = delivered + timedelta(days=RETURN_WINDOW_DAYS)
        if self._today() > window_ends:
            raise ShopError(
                f"Order {number} was delivered on {delivered.isoformat()}, more than "
                f"{RETURN_WINDOW_DAYS} days ago: the return window ended on "
                f"{window_ends.isoformat()}, so it can't be returned."
            )

    @staticmethod
    def _choose_lines(
        number: str, lines: list[sqlite3.Row], wanted: list[str] | None
    ) -> list[sqlite3.Row]:
        by_sku = {line["sku"]: line for line in lines}
        unknown = [sku for sku in wanted or [] if sku not in by_sku]
        if unknown:
            raise ShopError(
                f"Order {number} has no item {', '.join(unknown)}; "
                f"its items are {', '.join(by_sku)}."
            )
        chosen = [by_sku[sku] for sku in dict.fromkeys(wanted)] if wanted else lines
        taken = [line for line in chosen if line["return_id"] is not None]
        if wanted and taken:
            raise ShopError(
                "Already being returned: "
                + ", ".join(f"{line['name']} ({_return_id(line['return_id'])})" for line in taken)
                + "."
            )
        chosen = [line for line in chosen if line["return_id"] is None]
        if not chosen:
            raise ShopError(f"Everything on order {number} is already being returned.")
        return chosen

    # -- plumbing ------------------------------------------------------------------------

    def _status(self, db: sqlite3.Connection, number: str) -> OrderStatus:
        order = db.execute("SELECT * FROM orders WHERE number = ?", (number,)).fetchone()
        if order is None:
            raise ShopError(f"There's no order {number}. Order numbers look like W1001.")
        lines = self._lines(db, number)
        delivered = _day(order["delivered_on"])
        return OrderStatus(
            order_number=number,
            status=order["status"],
            placed_on=date.fromisoformat(order["placed_on"]),
            items=[
                OrderLine(
                    sku=line["sku"],
                    name=line["name"],
                    quantity=line["quantity"],
                    unit_price=_money(line["unit_price_cents"]),
                    return_id=None if line["return_id"] is None else _return_id(line["return_id"]),
                )
                for line in lines
            ],
            total=_money(sum(line["quantity"] * line["unit_price_cents"] for line in lines)),
            shipping_method=order["shipping_method"],
            shipping_time=SHIPPING_TIME[order["shipping_method"]],
            # The street stays out: anyone can type an order number.
            ships_to=f"{order['city']}, {order['state']} {order['zip']}",
            carrier=order["carrier"],
            tracking_number=order["tracking_number"],
            tracking_url=f"{TRACK_URL}?order={number}",
            shipped_on=_day(order["shipped_on"]),
            delivered_on=delivered,
            cancelled_on=_day(order["cancelled_on"]),
            return_window_ends=(
                None if delivered is None else delivered + timedelta(days=RETURN_WINDOW_DAYS)
            ),
        )

    @staticmethod
    def _lines(db: sqlite3.Connection, number: str) -> list[sqlite3.Row]:
        return db.execute(
            "SELECT i.*, p.name FROM order_items i JOIN products p USING (sku)"
            " WHERE i.order_number = ? ORDER BY p.name",
            (number,),
        ).fetchall()

    @staticmethod
    def _total_cents(db: sqlite3.Connection, number: str) -> int:
        (total,) = db.execute(
            "SELECT SUM(quantity * unit_price_cents) FROM order_items WHERE order_number = ?",
            (number,),
        ).fetchone()
        return int(total)

    @staticmethod
    def _owned(db: sqlite3.Connection, number: str, email: str) -> sqlite3.Row:
        """The order, if it exists and belongs to ``email``: writes need both, so knowing an
        order number alone changes nothing."""
        order = db.execute(
            "SELECT o.*, c.email FROM orders o JOIN customers c ON c.id = o.customer_id"
            " WHERE o.number = ?",
            (number,),
        ).fetchone()
        if order is None:
            raise ShopError(f"There's no order {number}. Order numbers look like W1001.")
        if order["email"].lower() != email.strip().lower():
            raise ShopError(f"Order {number} isn't on the account for that email address.")
        return order

    def _audited(
        self,
        tool: str,
        caller: Caller,
        arguments: dict[str, Any],
        change: Callable[[sqlite3.Connection], tuple[T, str]],
    ) -> T:
        """Run ``change`` and record the attempt in ``actions``, in one transaction.

        A refusal rolls back whatever ``change`` did, keeps the audit row, and re-raises.
        """
        with self._writing() as db:
            db.execute("SAVEPOINT attempt")
            try:
                result, detail = change(db)
            except ShopError as exc:
                db.execute("ROLLBACK TO attempt")
                refusal = exc
                self._record(db, caller, tool, arguments, "refused", str(exc))
            else:
                self._record(db, caller, tool, arguments, "ok", detail)
                return result
        raise refusal

    @staticmethod
    def _record(
        db: sqlite3.Connection,
        caller: Caller,
        tool: str,
        arguments: dict[str, Any],
        outcome: str,
        detail: str,
    ) -> None:
        db.execute(
            "INSERT INTO actions (at, platform, customer, tool, arguments, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                # Wall-clock time, even when `today` is pinned: this is when it happened.
                datetime.now(UTC).isoformat(timespec="seconds"),
                caller.platform,
                caller.customer,
                tool,
                json.dumps(arguments, ensure_ascii=False),
                outcome,
                detail,
            ),
        )

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are the explicit BEGIN/COMMIT in `_writing`.
        db = sqlite3.connect(self._path, isolation_level=None, timeout=10)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db:
            yield db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before the state check, so a concurrent write
        # cannot slip between the check and the change it allows.
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
