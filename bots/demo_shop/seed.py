"""The shop database's schema and its demo data.

Dates are seeded relative to the seeding day, so the demo always has an order still inside
the 30-day return window and one past it, whichever day it is first run.
"""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from typing import NamedTuple

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    zip TEXT NOT NULL
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL
);
CREATE TABLE orders (
    number TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled')),
    placed_on TEXT NOT NULL,
    shipping_method TEXT NOT NULL CHECK (shipping_method IN ('standard', 'express')),
    street TEXT NOT NULL,
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    zip TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    carrier TEXT,
    tracking_number TEXT,
    shipped_on TEXT,
    delivered_on TEXT,
    cancelled_on TEXT
);
CREATE TABLE returns (
    id INTEGER PRIMARY KEY,
    order_number TEXT NOT NULL REFERENCES orders(number),
    created_on TEXT NOT NULL,
    reason TEXT NOT NULL,
    refund_cents INTEGER NOT NULL
);
CREATE TABLE order_items (
    order_number TEXT NOT NULL REFERENCES orders(number),
    sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    return_id INTEGER REFERENCES returns(id),
    PRIMARY KEY (order_number, sku)
);
-- Every write a tool attempted, refused ones included: who (from the request's _meta),
-- which tool, its arguments as JSON, and how it ended.
CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    platform TEXT,
    customer TEXT,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
    detail TEXT NOT NULL
);
"""

# id, name, email, ZIP; then where each customer's orders ship and how they pay.
CUSTOMERS = [
    (1, "Maya Patel", "maya.patel@example.com", "94110"),
    (2, "Daniel Okafor", "daniel.okafor@example.com", "10027"),
    (3, "Sofia Lindqvist", "sofia.lindqvist@example.com", "60614"),
]
_HOME = {
    1: ("214 Valencia St", "San Francisco", "CA", "94110", "Visa ending 4242"),
    2: ("88 Morningside Ave", "New York", "NY", "10027", "Mastercard ending 5100"),
    3: ("1520 N Clark St", "Chicago", "IL", "60614", "PayPal"),
}

PRODUCTS = [
    ("TBL-OAK-01", "Oak coffee table", 24900),
    ("SOF-LIN-3S", "Linen three-seat sofa", 119900),
    ("LMP-BRS-01", "Brass floor lamp", 13900),
    ("RUG-WOL-58", "Wool area rug, 5×8 ft", 28900),
    ("CSH-VEL-02", "Velvet cushions, set of 2", 4900),
    ("MUG-STN-04", "Stoneware mugs, set of 4", 3600),
    ("SHF-WAL-01", "Walnut wall shelf", 8900),
]


class _Order(NamedTuple):
    """A demo order; the day fields count days before the seeding day."""

    number: str
    customer: int
    status: str
    items: list[tuple[str, int]]
    placed: int
    shipped: int | None = None
    delivered: int | None = None
    cancelled: int | None = None
    method: str = "standard"
    carrier: str | None = None
    tracking: str | None = None


ORDERS = [
    _Order("W1001", 1, "pending", [("LMP-BRS-01", 1), ("CSH-VEL-02", 2)], placed=1),
    _Order("W1002", 1, "shipped", [("TBL-OAK-01", 1)], placed=4, shipped=2, method="express",
           carrier="UPS", tracking="1Z999AA10123456784"),
    _Order("W1003", 2, "delivered", [("RUG-WOL-58", 1), ("MUG-STN-04", 1)], placed=18,
           shipped=15, delivered=10, carrier="FedEx", tracking="794644790132"),
    _Order("W1004", 2, "delivered", [("SHF-WAL-01", 2)], placed=52, shipped=50, delivered=45,
           carrier="FedEx", tracking="794644790218"),
    _Order("W1005", 3, "cancelled", [("LMP-BRS-01", 1)], placed=20, cancelled=19,
           method="express"),
    _Order("W1006", 3, "pending", [("SOF-LIN-3S", 1)], placed=2),
    # Delivered exactly 30 days ago: the last day it can still be returned.
    _Order("W1007", 3, "delivered", [("CSH-VEL-02", 1)], placed=37, shipped=34, delivered=30,
           carrier="USPS", tracking="9400111899223100012345"),
]  # fmt: skip


def seed(db: sqlite3.Connection, today: date) -> None:
    """Create the schema and the demo customers, products and orders in an empty database."""
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", CUSTOMERS)
    db.executemany("INSERT INTO products VALUES (?, ?, ?)", PRODUCTS)
    prices = {sku: cents for sku, _, cents in PRODUCTS}

    def day(days_ago: int | None) -> str | None:
        return None if days_ago is None else (today - timedelta(days=days_ago)).isoformat()

    for order in ORDERS:
        street, city, state, zip_code, payment = _HOME[order.customer]
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order.number, order.customer, order.status, day(order.placed), order.method,
             street, city, state, zip_code, payment, order.carrier, order.tracking,
             day(order.shipped), day(order.delivered), day(order.cancelled)),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO order_items VALUES (?, ?, ?, ?, NULL)",
            [(order.number, sku, quantity, prices[sku]) for sku, quantity in order.items],
        )
