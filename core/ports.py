"""The ports the engine drives: conversation storage and the language model.

Both are protocols so the engine never imports SQLAlchemy or the Anthropic SDK; ``storage/`` and
``core/claude.py`` implement them, and tests drive the real implementations against local fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.types import (
    ConversationKey,
    Escalation,
    EscalationView,
    IncomingMessage,
    StaffPost,
    Turn,
    Usage,
)


@dataclass(frozen=True, slots=True)
class Conversation:
    """The open conversation a customer turn landed in."""

    id: int
    key: ConversationKey
    topic: str | None
    window_start: int
    fresh: bool
    human_active: bool = False
    dont_know_streak: int = 0
    escalation: EscalationView | None = None


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
        self,
        conversation_id: int,
        *,
        now: datetime,
        topic: str | None = None,
        window_start: int | None = None,
        dont_know_streak: int | None = None,
    ) -> None:
        """Set the given conversation fields (``None`` leaves one as it is)."""
        ...

    async def escalate(
        self,
        conversation_id: int,
        escalation: Escalation,
        *,
        message_id: str,
        now: datetime,
        reping_at: datetime,
    ) -> Escalation:
        """Open an escalation, or update the live one (``new`` False); returns it with its id."""
        ...

    async def escalation(self, escalation_id: int) -> EscalationView | None: ...

    async def escalation_at(self, staff: StaffPost) -> EscalationView | None:
        """The escalation whose staff notification is ``staff``."""
        ...

    async def attach_staff_post(self, escalation_id: int, staff: StaffPost) -> None: ...

    async def transition(
        self, escalation_id: int, *, state: str, staff_id: str, now: datetime
    ) -> EscalationView | None:
        """Claim (``claimed``) or close (``resolved``, ``handed_back``) a live escalation.

        Closing also hands the conversation back to the bot. A closed escalation is returned
        unchanged; an unknown id gives ``None``.
        """
        ...

    async def staff_turn(
        self, key: ConversationKey, turn: Turn, *, platform: str, now: datetime
    ) -> bool:
        """Store a support-team message in the open conversation at ``key``.

        While an escalation is live this also marks the conversation as handled by a person
        and cancels the pending re-ping. False for a duplicate delivery or no conversation.
        """
        ...

    async def due_repings(self, now: datetime, *, platforms: set[str]) -> list[EscalationView]:
        """Take (so no other replica also takes) the unclaimed escalations due a re-ping
        on ``platforms``; a replica takes only those it can post to."""
        ...

    async def live_escalations(self) -> list[EscalationView]: ...

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
