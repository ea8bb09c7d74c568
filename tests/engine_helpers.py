"""Small helpers for driving the engine in tests."""

from __future__ import annotations

import itertools
from typing import Any

from core import prompt
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
    """(role, joined text) for each message of a request, tool blocks shown by type.

    The engine's topic note (``prompt.is_note``) is left out: it is not part of the stored
    conversation; ``note_text`` reads it and tests/test_prompt_cache.py checks where it goes.
    """
    shown = []
    for m in messages:
        blocks = [b for b in m["content"] if not prompt.is_note(b)]
        parts = [b["text"] if b["type"] == "text" else f"<{b['type']}>" for b in blocks]
        shown.append((m["role"], " | ".join(parts)))
    return shown


def system_text(body: dict[str, Any]) -> str:
    return "\n".join(block["text"] for block in body["system"])


def note_text(body: dict[str, Any]) -> str:
    """The engine's topic note of a request ("" if it has none): only ever a document block,
    and only ever the last block of the final message."""
    last = body["messages"][-1]["content"][-1]
    return last["source"]["data"] if prompt.is_note(last) else ""
