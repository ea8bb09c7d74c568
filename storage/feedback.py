"""``SqlFeedbackStore``: ratings of answers and "Did we solve it?" (``core.feedback``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from core.escalation import State
from core.feedback import Answer, Rating
from core.types import ConversationKey, Kind
from storage.models import ConversationRow, EscalationRow, FeedbackRow, MessageRow


class SqlFeedbackStore:
    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def answer(self, answer_id: int) -> Answer | None:
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(
                        MessageRow.conversation_id, ConversationRow.key, ConversationRow.customer_id
                    )
                    .join(ConversationRow, ConversationRow.id == MessageRow.conversation_id)
                    .where(MessageRow.id == answer_id, MessageRow.role == "assistant")
                )
            ).one_or_none()
        if found is None:
            return None
        return Answer(
            answer_id, found.conversation_id, ConversationKey.parse(found.key), found.customer_id
        )

    async def rate(
        self, answer: Answer, *, user_id: str, rating: Rating, comment: str | None, now: datetime
    ) -> None:
        statement = self._insert(FeedbackRow).values(
            conversation_id=answer.conversation_id,
            message_id=answer.id,
            user_id=user_id[:100],
            rating=rating.value,
            comment=comment,
            created_at=now,
            updated_at=now,
        )
        # One row per answer and person: a second press changes it, on both databases.
        statement = statement.on_conflict_do_update(
            index_elements=[FeedbackRow.message_id, FeedbackRow.user_id],
            set_={
                "rating": statement.excluded.rating,
                "comment": func.coalesce(statement.excluded.comment, FeedbackRow.comment),
                "updated_at": statement.excluded.updated_at,
            },
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def ask_solved(self, escalation_id: int, *, now: datetime) -> bool:
        e = EscalationRow
        helped = (e.claimed_by.is_not(None)) | exists().where(
            MessageRow.conversation_id == e.conversation_id,
            MessageRow.kind == Kind.STAFF.value,
            MessageRow.created_at >= e.created_at,
        )
        still_open = exists().where(
            ConversationRow.id == e.conversation_id, ConversationRow.state == "open"
        )
        async with self._sessions.begin() as session:
            # The compare-and-set: of two replicas (or two resolves), one sets it.
            asked = await session.execute(
                update(e)
                .where(
                    e.id == escalation_id,
                    e.state == State.RESOLVED.value,
                    e.solved_asked_at.is_(None),
                    helped,
                    still_open,
                )
                .values(solved_asked_at=now)
            )
            return asked.rowcount == 1

    async def solved(self, escalation_id: int, *, user_id: str, solved: bool) -> bool:
        e = EscalationRow
        async with self._sessions.begin() as session:
            stored = await session.execute(
                update(e)
                .where(
                    e.id == escalation_id, e.customer_id == user_id, e.solved_asked_at.is_not(None)
                )
                .values(solved=solved)
            )
            return stored.rowcount == 1
