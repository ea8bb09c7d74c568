"""Customer text as the engine keeps it."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """NFC, no control characters but newlines and tabs, trimmed."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()
