"""The ports the engine drives: conversation storage and the language model.

Both are protocols so the engine never imports SQLAlchemy or the Anthropic SDK; ``storage/`` and
``core/claude.py`` implement them, and tests drive the real implementations against local fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.types import ConversationKey, Escalation, IncomingMessage, Turn, Usage


@dataclass(frozen=True, slots=True)
class Conversation:
    """The open conversation a customer turn landed in."""

    id: int
    key: ConversationKey
    topic: str | None
    window_start: int
    fresh: bool


class ConversationStore(Protocol):
    async def begin_turn(
        self,
        message: IncomingMessage,
        turn: Turn,
        *,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
    ) -> Conversation | None:
        """Claim the delivery and persist the customer's turn in one transaction.

        Returns ``None`` when this platform message id was seen before. Opens a new conversation
        when none is open at the key, when ``restart`` is set, or when the open one has been idle
        longer than ``idle_after``.
        """
        ...

    async def window(self, conversation_id: int, *, start: int) -> list[Turn]:
        """The turns Claude may see (customer, model and tool results) from sequence ``start``."""
        ...

    async def append(self, conversation_id: int, turns: list[Turn], *, now: datetime) -> None: ...

    async def update(
        self, conversation_id: int, *, topic: str | None, window_start: int, now: datetime
    ) -> None: ...

    async def record_escalation(
        self, conversation_id: int, escalation: Escalation, *, now: datetime
    ) -> None: ...

    async def is_active(self, key: ConversationKey) -> bool: ...


@dataclass(frozen=True, slots=True)
class LLMResult:
    content: list[dict[str, Any]]
    stop_reason: str
    usage: Usage


class LLMError(Exception):
    """Claude could not answer. ``cause`` names the configured fallback text to show."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause


class LLM(Protocol):
    async def respond(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
    ) -> LLMResult:
        """One Claude call with retries; raises ``LLMError`` when it cannot produce an answer."""
        ...
