"""The terminal chat's conversation keys."""

from __future__ import annotations

import pytest

from bots.console import console_key
from core.types import ConversationKey


@pytest.mark.parametrize("name", ["default", "a:b", "::", "50%", "50%3A", "lamp order: HG-1"])
def test_every_console_name_round_trips_through_its_key_text(name: str) -> None:
    key = console_key(name)
    assert ConversationKey.parse(str(key)) == key


def test_distinct_names_get_distinct_keys() -> None:
    names = ["a:b", "a%3Ab", "a%b", "a%25b"]
    assert len({str(console_key(n)) for n in names}) == len(names)


def test_plain_names_keep_their_old_keys() -> None:
    assert str(console_key("lamp order 7")) == "console:local:lamp order 7:-"
