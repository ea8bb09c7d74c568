"""The terminal chat: its conversation keys, and the text it shows."""

from __future__ import annotations

import pytest

from bots.console import console_key, terminal_safe
from core.types import ConversationKey

ESCAPES = (
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned\x07"  # window title
    "\x1b[31mred\x1b[0m "  # colour
    "\x1b]8;;https://evil.example\x1b\\click here\x1b]8;;\x1b\\ "  # OSC 8 hyperlink
    "\x9b2J\x9d0;c1 title\x9c"  # the 8-bit (C1) forms of CSI and OSC
    "\x1bP+q\x1b\\\x1bc\x07\x08\r"  # DCS query, terminal reset, bell, backspace, CR
)


@pytest.mark.parametrize("name", ["default", "a:b", "::", "50%", "50%3A", "lamp order: HG-1"])
def test_every_console_name_round_trips_through_its_key_text(name: str) -> None:
    key = console_key(name)
    assert ConversationKey.parse(str(key)) == key


def test_distinct_names_get_distinct_keys() -> None:
    names = ["a:b", "a%3Ab", "a%b", "a%25b"]
    assert len({str(console_key(n)) for n in names}) == len(names)


def test_plain_names_keep_their_old_keys() -> None:
    assert str(console_key("lamp order 7")) == "console:local:lamp order 7:-"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (ESCAPES, "red click here "),
        ("line one\r\n\tline two", "line one\n\tline two"),
        ("half \x1b]0;no terminator", "half 0;no terminator"),
        ("bad \ud800 pair \udcff", "bad \ufffd pair \ufffd"),
        ("null\x00 del\x7f next\x85 esc\x1b", "null del next esc"),
        ("Ünïcödé — “quotes” 🛋️ stay", "Ünïcödé — “quotes” 🛋️ stay"),
    ],
)
def test_terminal_safe_keeps_the_text_and_drops_the_control(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown
