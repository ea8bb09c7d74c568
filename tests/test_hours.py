"""Support hours: day shifts, overnight shifts, and the checks made when the persona loads."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.config import DEMO_PERSONA, ConfigError, Persona
from core.hours import SupportHours, describe

# 2026-03-02 is a Monday. The engine's clock is naive UTC; these zones are UTC in winter.
NIGHTS = SupportHours(timezone="Europe/London", days=["mon", "tue"], start="22:00", end="06:00")


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 3, 2, 22, 0),  # Monday's shift starts
        datetime(2026, 3, 2, 23, 0),
        datetime(2026, 3, 3, 3, 0),  # Monday's shift, after midnight
        datetime(2026, 3, 4, 5, 59),  # Tuesday's shift runs into Wednesday, an unlisted day
    ],
)
def test_an_overnight_shift_is_open_past_midnight(now: datetime) -> None:
    assert NIGHTS.back_at(now) is None


def test_an_overnight_shift_is_closed_between_shifts_and_names_the_next_one() -> None:
    morning = datetime(2026, 3, 2, 7, 0)  # Monday; Sunday night had no shift
    assert describe(NIGHTS.back_at(morning), now=morning) == "today at 22:00 (Europe/London)"

    after_last = datetime(2026, 3, 4, 6, 0)  # Wednesday, when Tuesday's shift has just ended
    back = NIGHTS.back_at(after_last)
    assert back is not None and describe(back, now=after_last) == "Monday at 22:00 (Europe/London)"
    assert back.date().isoformat() == "2026-03-09"


def test_a_day_shift_is_open_only_inside_its_hours() -> None:
    days = SupportHours(timezone="UTC", days=["mon"], start="09:00", end="17:00")
    assert days.back_at(datetime(2026, 3, 2, 9, 0)) is None
    assert days.back_at(datetime(2026, 3, 2, 16, 59)) is None
    evening = datetime(2026, 3, 2, 17, 0)
    assert describe(days.back_at(evening), now=evening) == "Monday at 09:00 (UTC)"


def _persona_with_hours(tmp_path: Path, hours: str) -> Path:
    demo = DEMO_PERSONA.read_text(encoding="utf-8")
    table = demo.index("[support_hours]")
    rest = demo.index("[fallbacks]")
    path = tmp_path / "persona.toml"
    path.write_text(demo[:table] + "[support_hours]\n" + hours + "\n" + demo[rest:])
    return path


@pytest.mark.parametrize(
    ("hours", "named"),
    [
        (
            'timezone = "UTC"\ndays = []\nstart = "09:00"\nend = "17:00"',
            "support_hours.days: Value error, name at least one day",
        ),
        (
            'timezone = "UTC"\ndays = ["mon"]\nstart = "09:00"\nend = "09:00"',
            "support_hours.end: Value error, must differ from start",
        ),
    ],
)
def test_impossible_hours_are_refused_at_load_naming_the_field(
    tmp_path: Path, hours: str, named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Persona.load(_persona_with_hours(tmp_path, hours))
    assert named in str(raised.value)


def test_an_overnight_shift_loads(tmp_path: Path) -> None:
    hours = 'timezone = "America/New_York"\ndays = ["fri"]\nstart = "22:00"\nend = "06:00"'
    persona = Persona.load(_persona_with_hours(tmp_path, hours))
    assert persona.support_hours is not None and persona.support_hours.end.hour == 6
