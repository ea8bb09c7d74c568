"""Support hours: whether the human team is in, and when it is back."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SupportHours(BaseModel):
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

    def back_at(self, now: datetime) -> datetime | None:
        """``None`` while the team is in; otherwise the next opening, in the team's zone.

        ``now`` is naive UTC, the engine's clock.
        """
        local = now.replace(tzinfo=UTC).astimezone(ZoneInfo(self.timezone))
        if self._open_on(local) and self.start <= local.time() < self.end:
            return None
        for ahead in range(8):
            day = local + timedelta(days=ahead)
            opening = datetime.combine(day.date(), self.start, tzinfo=local.tzinfo)
            if self._open_on(day) and opening > local:
                return opening
        return None

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
