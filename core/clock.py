"""The clock every stored timestamp is read from."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC, the form every stored timestamp takes (SQLite keeps no time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)
