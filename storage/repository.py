"""``SqlStore``: the engine's ``ConversationStore`` on SQLAlchemy 2 async."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.ports import Conversation
from core.types import ConversationKey, Escalation, IncomingMessage, Turn, Usage
from storage.models import ConversationRow, DeliveryRow, EscalationRow, MessageRow

WINDOW_KINDS = ("customer", "model", "tool_result")
# Two replicas racing to open the same conversation: the loser retries once it sees the winner's.
_OPEN_ATTEMPTS = 3


class SqlStore:
    """Conversations, turns, deliveries and escalations in one relational database."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def begin_turn(
        self,
        message: IncomingMessage,
        turn: Turn,
        *,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
    ) -> Conversation | None:
        for _ in range(_OPEN_ATTEMPTS):
            try:
                async with self._sessions.begin() as session:
                    session.add(
                        DeliveryRow(
                            platform=message.key.platform,
                            message_id=message.message_id,
                            created_at=now,
                        )
                    )
                    await session.flush()
                    row, fresh = await self._open(
                        session, message, now=now, idle_after=idle_after, restart=restart
                    )
                    await self._add(session, row.id, [turn], now=now)
                    return _conversation(row, fresh=fresh)
            except IntegrityError:
                if await self._delivered(message):
                    return None
        raise RuntimeError(f"could not open a conversation at {message.key}")

    async def _delivered(self, message: IncomingMessage) -> bool:
        async with self._sessions() as session:
            found = await session.get(DeliveryRow, (message.key.platform, message.message_id))
            return found is not None

    async def _open(
        self,
        session: AsyncSession,
        message: IncomingMessage,
        *,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
    ) -> tuple[ConversationRow, bool]:
        key = str(message.key)
        row = await session.scalar(
            select(ConversationRow)
            .where(ConversationRow.key == key, ConversationRow.state == "open")
            .with_for_update()
        )
        stale = row is not None and idle_after is not None and now - row.updated_at > idle_after
        if row is not None and not (restart or stale):
            return row, False
        if row is not None:
            row.state = "closed"
            await session.flush()
        row = ConversationRow(
            key=key,
            platform=message.key.platform,
            customer_id=message.author_id,
            state="open",
            window_start=0,
            next_seq=0,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        return row, True

    async def _add(
        self, session: AsyncSession, conversation_id: int, turns: list[Turn], *, now: datetime
    ) -> None:
        # One UPDATE both reserves the sequence numbers and locks the conversation row, so two
        # writers to one conversation can never take the same numbers.
        first = await session.scalar(
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(next_seq=ConversationRow.next_seq + len(turns), updated_at=now)
            .returning(ConversationRow.next_seq)
        )
        assert first is not None
        first -= len(turns)
        for offset, turn in enumerate(turns):
            session.add(_message_row(conversation_id, first + offset, turn, now=now))

    async def window(self, conversation_id: int, *, start: int) -> list[Turn]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(MessageRow)
                .where(
                    MessageRow.conversation_id == conversation_id,
                    MessageRow.seq >= start,
                    MessageRow.kind.in_(WINDOW_KINDS),
                )
                .order_by(MessageRow.seq)
            )
            return [_turn(r) for r in rows]

    async def append(self, conversation_id: int, turns: list[Turn], *, now: datetime) -> None:
        async with self._sessions.begin() as session:
            await self._add(session, conversation_id, turns, now=now)

    async def update(
        self, conversation_id: int, *, topic: str | None, window_start: int, now: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(topic=topic, window_start=window_start, updated_at=now)
            )

    async def record_escalation(
        self, conversation_id: int, escalation: Escalation, *, now: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            session.add(
                EscalationRow(
                    conversation_id=conversation_id,
                    reason=escalation.reason[:500],
                    summary=escalation.summary[:2000],
                    state="open",
                    created_at=now,
                )
            )

    async def is_active(self, key: ConversationKey) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(ConversationRow.id).where(
                    ConversationRow.key == str(key), ConversationRow.state == "open"
                )
            )
            return found is not None

    async def history(self, key: ConversationKey) -> list[Turn]:
        """Every stored turn of the newest conversation at ``key``, notices included."""
        async with self._sessions() as session:
            conversation_id = await session.scalar(
                select(ConversationRow.id)
                .where(ConversationRow.key == str(key))
                .order_by(ConversationRow.id.desc())
                .limit(1)
            )
            rows = await session.scalars(
                select(MessageRow)
                .where(MessageRow.conversation_id == conversation_id)
                .order_by(MessageRow.seq)
            )
            return [_turn(r) for r in rows]


def _conversation(row: ConversationRow, *, fresh: bool) -> Conversation:
    return Conversation(
        id=row.id,
        key=ConversationKey.parse(row.key),
        topic=row.topic,
        window_start=row.window_start,
        fresh=fresh,
    )


def _message_row(conversation_id: int, seq: int, turn: Turn, *, now: datetime) -> MessageRow:
    return MessageRow(
        conversation_id=conversation_id,
        seq=seq,
        role=turn.role,
        kind=turn.kind,
        content=turn.content,
        tokens=turn.tokens,
        platform_message_id=turn.message_id,
        input_tokens=turn.usage.input_tokens,
        output_tokens=turn.usage.output_tokens,
        cache_read_tokens=turn.usage.cache_read_tokens,
        cache_write_tokens=turn.usage.cache_write_tokens,
        created_at=now,
    )


def _turn(row: MessageRow) -> Turn:
    return Turn(
        role=row.role,
        content=row.content,
        kind=row.kind,
        tokens=row.tokens,
        seq=row.seq,
        message_id=row.platform_message_id,
        usage=Usage(
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cache_read_tokens=row.cache_read_tokens,
            cache_write_tokens=row.cache_write_tokens,
        ),
    )
