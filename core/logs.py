"""What may reach a log line: ids, keys, causes and codes; never a secret or customer text.

Text that comes from outside (an upstream error message) goes through ``excerpt`` first, and the
libraries whose DEBUG lines carry payloads (request bodies, response headers, result rows, bound
parameters) are held at INFO with ``quiet``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar

REDACTED = "***"
_SECRET = re.compile(
    r"sk-[\w-]+"  # Anthropic-style API keys
    r"|bearer\s+\S+"  # Authorization: Bearer …
    r"|(?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?[^\s\"',;}]+",
    re.IGNORECASE,
)
# Where an echoed request, a quoted value or markup starts: nothing from there on is kept.
_QUOTED = re.compile(r"[{\[\"'<`\n]")
_WORD = re.compile(r"\w{4,}")
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def excerpt(text: str, *, avoid: Iterable[str] = (), limit: int = 100) -> str:
    """At most ``limit`` characters of ``text`` that are safe to log.

    Secrets become ``***``; the text is cut where quoted or structured content begins; and
    every word of four or more letters that occurs in ``avoid`` (the conversation sent) is
    masked, so an upstream that quotes the customer unquoted still quotes nothing.
    """
    kept = _QUOTED.split(masked(text), maxsplit=1)[0]
    words = {w.casefold() for source in avoid for w in _WORD.findall(source)}
    kept = _WORD.sub(lambda m: REDACTED if m[0].casefold() in words else m[0], kept).strip()
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def masked(text: str) -> str:
    """``text`` with whatever looks like a secret (an API key, a bearer token) as ``***``."""
    return _SECRET.sub(REDACTED, text)


def code(value: object) -> str | None:
    """``value`` if it is a short identifier (an error type, a request id), else ``None``."""
    if not isinstance(value, str) or not _CODE.fullmatch(value) or _SECRET.search(value):
        return None
    return value


def quiet(*names: str) -> None:
    """Hold these libraries' loggers at INFO or above: their DEBUG lines carry payloads."""
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.INFO))


conversation: ContextVar[str] = ContextVar("conversation", default="-")
"""The conversation key of the turn running in this task; every log line carries it."""


class _WithConversation(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conversation = conversation.get()
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(conversation)s]: %(message)s"


def configure(*, level: str, json: bool) -> None:
    """Log to standard error, as text lines or JSON lines, each with its conversation key."""
    handler = logging.StreamHandler()
    handler.addFilter(_WithConversation())
    if json:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(conversation)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
