"""Small helpers for driving the engine in tests."""

from __future__ import annotations

import itertools
from typing import Any

from core.types import ConversationKey, IncomingMessage

KEY = ConversationKey("test", "T1", "C1", "1700000000.000100")
_ids = itertools.count()


def message(
    text: str, *, key: ConversationKey = KEY, direct: bool = False, message_id: str | None = None
) -> IncomingMessage:
    return IncomingMessage(
        key=key,
        author_id="U-customer",
        text=text,
        message_id=message_id or f"msg-{next(_ids)}",
        direct=direct,
    )


def texts(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, joined text) for each message of a request, tool blocks shown by type."""
    shown = []
    for m in messages:
        parts = [b["text"] if b["type"] == "text" else f"<{b['type']}>" for b in m["content"]]
        shown.append((m["role"], " | ".join(parts)))
    return shown


def system_text(body: dict[str, Any]) -> str:
    return "\n".join(block["text"] for block in body["system"])
