"""Support hours: whether the human team is in, and when it is back."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationInfo, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SupportHours(BaseModel):
    """When the human team works, in its own time zone.

    Each listed day has one shift from ``start`` to ``end``. An ``end`` earlier than ``start``
    is an overnight shift: it starts on the listed day and ends the next morning, so
    ``days = ["fri"]``, 22:00–06:00 covers Friday night into Saturday.
    """

    timezone: str
    days: list[Day]
    start: time
    end: time

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("days")
    @classmethod
    def _some_day(cls, days: list[Day]) -> list[Day]:
        if not days:
            raise ValueError('name at least one day, e.g. ["mon", "tue"]')
        return days

    @field_validator("end")
    @classmethod
    def _not_start(cls, end: time, info: ValidationInfo) -> time:
        if end == info.data.get("start"):
            raise ValueError("must differ from start (for a night shift, end before start)")
        return end

    def back_at(self, now: datetime) -> datetime | None:
        """``None`` while the team is in; otherwise the next opening, in the team's zone.

        ``now`` is naive UTC, the engine's clock.
        """
        local = now.replace(tzinfo=UTC).astimezone(ZoneInfo(self.timezone))
        if self._in_shift(local):
            return None
        for ahead in range(8):
            day = local + timedelta(days=ahead)
            opening = datetime.combine(day.date(), self.start, tzinfo=local.tzinfo)
            if self._open_on(day) and opening > local:
                return opening
        return None

    def _in_shift(self, local: datetime) -> bool:
        clock = local.time()
        if self.start < self.end:
            return self._open_on(local) and self.start <= clock < self.end
        # Overnight: the evening part of today's shift, or the morning part of yesterday's.
        if clock >= self.start:
            return self._open_on(local)
        return clock < self.end and self._open_on(local - timedelta(days=1))

    def _open_on(self, moment: datetime) -> bool:
        return _DAYS[moment.weekday()] in self.days


def describe(moment: datetime, *, now: datetime) -> str:
    """'today at 09:00', 'tomorrow at 09:00' or 'Monday at 09:00', with the zone.

    ``now`` is naive UTC; ``moment`` is in the team's zone (from ``back_at``).
    """
    today = now.replace(tzinfo=UTC).astimezone(moment.tzinfo).date()
    days = (moment.date() - today).days
    day = {0: "today", 1: "tomorrow"}.get(days, f"{moment:%A}")
    return f"{day} at {moment:%H:%M} ({moment.tzinfo})"
