"""What the shop's tools answer, who asked, and the one error they refuse with.

The answer models double as the tools' MCP output schemas, so their field names are what the
model reads: plain words, money already formatted, dates as ``YYYY-MM-DD``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel

OrderState = Literal["pending", "shipped", "delivered", "cancelled"]
ShippingMethod = Literal["standard", "express"]


class ShopError(Exception):
    """A request the shop refuses (unknown order, wrong state, window passed).

    The message is written to be relayed to the customer as it is.
    """


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked for a write: the chat platform and that platform's customer id, if sent."""

    platform: str | None = None
    customer: str | None = None


class OrderSummary(BaseModel):
    order_number: str
    status: OrderState
    placed_on: date
    total: str


class CustomerAccount(BaseModel):
    name: str
    email: str
    zip_verified: bool
    orders: list[OrderSummary]


class OrderLine(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: str
    return_id: str | None = None


class OrderStatus(BaseModel):
    order_number: str
    status: OrderState
    placed_on: date
    items: list[OrderLine]
    total: str
    shipping_method: ShippingMethod
    shipping_time: str
    ships_to: str
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str
    shipped_on: date | None = None
    delivered_on: date | None = None
    cancelled_on: date | None = None
    return_window_ends: date | None = None


class Cancellation(BaseModel):
    order_number: str
    status: Literal["cancelled"] = "cancelled"
    refund: str
    message: str


class AddressChange(BaseModel):
    order_number: str
    ships_to: str
    message: str


class ReturnStarted(BaseModel):
    return_id: str
    order_number: str
    items: list[str]
    refund_amount: str
    refund_to: str
    next_steps: str
    refund_timing: str
