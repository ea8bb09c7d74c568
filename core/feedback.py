"""Feedback on answers (👍 / 👎, and what was wrong) and "Did we solve it?" after a resolve.

Whose press counts: the conversation's customer's (who opened it). Anyone else pressing 👍 or
👎 under someone else's answer, or answering someone else's question, is told so privately and
nothing is stored. Pressing again changes the stored rating (one row per answer and person).

"Did we solve it?" is asked once per escalation, when a support-team member resolves it and
people actually helped (it was claimed, or someone from the team wrote in the conversation
since it opened) and the conversation is still the customer's open one; never for a hand-back
(the bot goes on) or an escalation closed without the customer having been helped. The store
asks with a compare-and-set on the escalation row, so two replicas or a second resolve ask
once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from core.clock import utcnow
from core.config import FeedbackTexts
from core.metrics import RATINGS, SOLVED
from core.types import ConversationKey

COMMENT_LIMIT = 300
"""Characters of "What was wrong?" kept (one line)."""


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Answer:
    """One of the bot's stored answers, as a press on its buttons finds it."""

    id: int
    conversation_id: int
    key: ConversationKey
    customer_id: str


class FeedbackStore(Protocol):
    async def answer(self, answer_id: int) -> Answer | None:
        """The bot's stored answer ``answer_id`` (``None``: unknown, or not an answer)."""
        ...

    async def rate(
        self, answer: Answer, *, user_id: str, rating: Rating, comment: str | None, now: datetime
    ) -> None:
        """Store ``user_id``'s rating of ``answer``, replacing one they gave before (and, with
        ``comment``, what was wrong)."""
        ...

    async def ask_solved(self, escalation_id: int, *, now: datetime) -> bool:
        """Mark the escalation as asked "Did we solve it?" if it should be and was not yet
        (see the module doc); whether this call did."""
        ...

    async def solved(self, escalation_id: int, *, user_id: str, solved: bool) -> bool:
        """Store the customer's answer on an escalation they were asked about; False when
        ``user_id`` is not its customer or it was never asked."""
        ...


class Feedback:
    """Applies the rules of the module doc over a ``FeedbackStore``; ``texts`` are what the
    customer reads (the persona's ``[feedback]``)."""

    def __init__(
        self,
        *,
        store: FeedbackStore,
        texts: FeedbackTexts,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self.texts = texts
        self._clock = clock

    async def rate(
        self, answer_id: int, *, user_id: str, rating: Rating, comment: str | None = None
    ) -> Answer | None:
        """Store a press of 👍 or 👎 (with what was wrong, from the 👎's form); the rated
        answer, or ``None`` when the press does not count (someone else's answer, or gone)."""
        answer = await self._store.answer(answer_id)
        if answer is None or answer.customer_id != user_id:
            return None
        said = " ".join((comment or "").split())[:COMMENT_LIMIT] or None
        await self._store.rate(
            answer, user_id=user_id, rating=rating, comment=said, now=self._clock()
        )
        RATINGS.labels(rating.value).inc()
        return answer

    async def ask_solved(self, escalation_id: int) -> bool:
        """Whether to ask the customer "Did we solve it?" now (``True`` once per escalation)."""
        return await self._store.ask_solved(escalation_id, now=self._clock())

    async def solved(self, escalation_id: int, *, user_id: str, solved: bool) -> bool:
        """Store the customer's answer; False when the press does not count."""
        stored = await self._store.solved(escalation_id, user_id=user_id, solved=solved)
        if stored:
            SOLVED.labels("yes" if solved else "no").inc()
        return stored
