"""``SqlStore``: the engine's ``ConversationStore`` on SQLAlchemy 2 async.

Locks are always taken conversation first, then escalation, so two transactions that touch
both (a turn handing off, a staff member closing) queue instead of deadlocking on PostgreSQL.

A failed statement leaves as ``StoreError``, which names the driver's exception type, SQLSTATE
and constraint and nothing else: the driver's own text quotes bound values (PostgreSQL's
``DETAIL: Failing row contains (…)`` holds the customer's message or the hand-off summary), and
whoever logs the failure prints it, traceback and chained exceptions included.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Row, delete, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningUpdate

from core import logs
from core.escalation import LIVE, State
from core.files import Kept
from core.ports import Conversation, HandOff, TurnWrites
from core.types import (
    ConversationKey,
    Escalation,
    EscalationView,
    IncomingMessage,
    Kind,
    StaffPost,
    Turn,
    Usage,
)
from core.window import SEEN
from storage.models import ConversationRow, DeliveryRow, EscalationRow, FileRow, MessageRow

# Two replicas racing to open the same conversation: the loser retries once it sees the winner's.
_OPEN_ATTEMPTS = 3
_LIVE = EscalationRow.state.in_([s.value for s in LIVE])
_VIEW = select(EscalationRow, ConversationRow.key).join(
    ConversationRow, ConversationRow.id == EscalationRow.conversation_id
)


def take_due_repings(now: datetime, platforms: set[str]) -> ReturningUpdate[tuple[int]]:
    """The statement that takes the re-pings due on ``platforms``.

    Clearing ``reping_at`` in the statement that selects is what makes a re-ping happen once,
    whichever replica gets there first. It walks the ``reping_at`` index and looks each due
    escalation's conversation up by its key, so a watcher tick costs what is due, not what
    the database has ever held.
    """
    on_platforms = exists().where(
        ConversationRow.id == EscalationRow.conversation_id,
        ConversationRow.platform.in_(platforms),
    )
    return (
        update(EscalationRow)
        .where(
            EscalationRow.state == State.OPEN.value, EscalationRow.reping_at <= now, on_platforms
        )
        .values(reping_at=None)
        .returning(EscalationRow.id)
    )


P = ParamSpec("P")
R = TypeVar("R")


class StoreError(Exception):
    """A statement failed; the message names the cause, never a value (see the module doc)."""


def _quoting_nothing(
    method: Callable[Concatenate[SqlStore, P], Awaitable[R]],
) -> Callable[Concatenate[SqlStore, P], Awaitable[R]]:
    @functools.wraps(method)
    async def wrapper(store: SqlStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(store, *args, **kwargs)
        except StatementError as exc:
            # The traceback's frames stay (code lines only); the exception chain goes.
            failure = StoreError(f"{method.__name__}: {_cause(exc)}")
            raise failure.with_traceback(exc.__traceback__) from None

    return wrapper


def _cause(exc: StatementError) -> str:
    """``IntegrityError (CheckViolationError, SQLSTATE 23514, constraint x on y)``."""
    orig = exc.orig
    # Behind SQLAlchemy's asyncpg adapter is asyncpg's own exception, which names the constraint.
    driver = orig.__cause__ if orig is not None and orig.__cause__ is not None else orig
    found = [type(driver).__name__]
    state = logs.code(getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None))
    if state:
        found.append(f"SQLSTATE {state}")
    constraint = logs.code(getattr(driver, "constraint_name", None))
    table = logs.code(getattr(driver, "table_name", None))
    if constraint:
        found.append(f"constraint {constraint}" + (f" on {table}" if table else ""))
    return f"{type(exc).__name__} ({', '.join(found)})"


class SqlStore:
    """Conversations, turns, deliveries and escalations in one relational database."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # aiosqlite's DEBUG lines print every statement with its bound values.
        logs.quiet("aiosqlite")

    @_quoting_nothing
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
                    stored = replace(turn, kind=Kind.RESTART) if restart and fresh else turn
                    await self._add(session, row.id, [stored], now=now)
                    live = await _one(session, EscalationRow.conversation_id == row.id, _LIVE)
                    turns = await _turns(session, row.id, start=row.window_start, kinds=SEEN)
                    return _conversation(row, fresh=fresh, escalation=live, window=turns)
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
        # A conversation with a live escalation stays open however long it idles: staff are
        # on it, and their replies and the customer's must keep meeting in one place.
        if row is not None and await session.scalar(
            select(EscalationRow.id).where(EscalationRow.conversation_id == row.id, _LIVE)
        ):
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
        self,
        session: AsyncSession,
        conversation_id: int,
        turns: Sequence[Turn],
        *,
        now: datetime,
        **fields: Any,
    ) -> None:
        # One UPDATE reserves the sequence numbers, sets the changed fields and locks the
        # conversation row, so two writers to one conversation can never take the same numbers.
        first = await session.scalar(
            update(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .values(next_seq=ConversationRow.next_seq + len(turns), updated_at=now, **fields)
            .returning(ConversationRow.next_seq)
        )
        if first is None:
            raise LookupError(f"no conversation {conversation_id}")
        first -= len(turns)
        for offset, turn in enumerate(turns):
            session.add(_message_row(conversation_id, first + offset, turn, now=now))

    @_quoting_nothing
    async def finish_turn(
        self, conversation_id: int, writes: TurnWrites, *, now: datetime
    ) -> Escalation | None:
        fields = {
            name: value
            for name, value in (
                ("topic", writes.topic),
                ("window_start", writes.window_start),
                ("dont_know_streak", writes.dont_know_streak),
            )
            if value is not None
        }
        if not (writes.turns or fields or writes.refused or writes.hand_off):
            return None
        async with self._sessions.begin() as session:
            # The conversation row is locked first (see the module docstring): FOR UPDATE on a
            # live escalation that does not exist yet locks nothing, and two replicas would
            # both insert one.
            await self._add(session, conversation_id, writes.turns, now=now, **fields)
            if writes.refused:
                await session.execute(
                    update(MessageRow)
                    .where(
                        MessageRow.conversation_id == conversation_id,
                        MessageRow.seq.in_(writes.refused),
                    )
                    .values(kind=Kind.REFUSED.value)
                )
            if writes.hand_off is None:
                return None
            return await _hand_off(session, conversation_id, writes.hand_off, now=now)

    @_quoting_nothing
    async def escalation(self, escalation_id: int) -> EscalationView | None:
        async with self._sessions() as session:
            return await _one(session, EscalationRow.id == escalation_id)

    @_quoting_nothing
    async def escalation_at(self, staff: StaffPost) -> EscalationView | None:
        async with self._sessions() as session:
            return await _one(
                session,
                EscalationRow.staff_channel == staff.channel_id,
                EscalationRow.staff_message_id == staff.message_id,
            )

    @_quoting_nothing
    async def attach_staff_post(self, escalation_id: int, staff: StaffPost) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(EscalationRow)
                .where(EscalationRow.id == escalation_id)
                .values(staff_channel=staff.channel_id, staff_message_id=staff.message_id)
            )

    @_quoting_nothing
    async def transition(
        self, escalation_id: int, *, expected: State, to: State, staff_id: str, now: datetime
    ) -> EscalationView | None:
        async with self._sessions.begin() as session:
            conversation_id = await session.scalar(
                select(EscalationRow.conversation_id).where(EscalationRow.id == escalation_id)
            )
            if conversation_id is None:
                return None
            await session.execute(
                select(ConversationRow.id)
                .where(ConversationRow.id == conversation_id)
                .with_for_update()
            )
            # Compare-and-set: of two staff members pressing at once, one moves it.
            moved = await session.execute(
                update(EscalationRow)
                .where(EscalationRow.id == escalation_id, EscalationRow.state == expected.value)
                .values(
                    state=to.value,
                    reping_at=None,
                    updated_at=now,
                    **{"claimed_by" if to.live else "closed_by": staff_id},
                )
            )
            if moved.rowcount == 0:
                return None
            if not to.live:
                await session.execute(
                    update(ConversationRow)
                    .where(ConversationRow.id == conversation_id)
                    .values(human_active=False, dont_know_streak=0)
                )
            return await _one(session, EscalationRow.id == escalation_id)

    @_quoting_nothing
    async def staff_turn(self, key: ConversationKey, turn: Turn, *, now: datetime) -> bool:
        assert turn.message_id is not None
        try:
            async with self._sessions.begin() as session:
                row = await session.scalar(
                    select(ConversationRow)
                    .where(ConversationRow.key == str(key), ConversationRow.state == "open")
                    .with_for_update()
                )
                if row is None:
                    return False
                session.add(
                    DeliveryRow(platform=key.platform, message_id=turn.message_id, created_at=now)
                )
                await session.flush()
                # With a live escalation a person has taken over: the bot steps back, and
                # a reminder to staff would be noise. Without one it is context only.
                taken_over = await session.execute(
                    update(EscalationRow)
                    .where(EscalationRow.conversation_id == row.id, _LIVE)
                    .values(reping_at=None)
                )
                if taken_over.rowcount > 0:
                    row.human_active = True
                await self._add(session, row.id, [turn], now=now)
                return True
        except IntegrityError:
            return False

    @_quoting_nothing
    async def due_repings(self, now: datetime, *, platforms: set[str]) -> list[EscalationView]:
        async with self._sessions.begin() as session:
            taken = await session.scalars(take_due_repings(now, platforms))
            ids = list(taken)
            if not ids:
                return []
            found = await session.execute(_VIEW.where(EscalationRow.id.in_(ids)))
            return _views(found.all())

    @_quoting_nothing
    async def live_escalations(self) -> list[EscalationView]:
        async with self._sessions() as session:
            found = await session.execute(
                _VIEW.where(_LIVE).order_by(EscalationRow.created_at, EscalationRow.id)
            )
            return _views(found.all())

    @_quoting_nothing
    async def forget_deliveries(self, before: datetime) -> int:
        async with self._sessions.begin() as session:
            done = await session.execute(delete(DeliveryRow).where(DeliveryRow.created_at < before))
            return done.rowcount

    @_quoting_nothing
    async def is_active(self, key: ConversationKey) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(ConversationRow.id).where(
                    ConversationRow.key == str(key), ConversationRow.state == "open"
                )
            )
            return found is not None

    async def ping(self) -> bool:
        """Whether the database answers a query now (readiness)."""
        async with self._sessions() as session:
            return await session.scalar(select(literal(1))) == 1

    @_quoting_nothing
    async def history(self, key: ConversationKey) -> list[Turn]:
        async with self._sessions() as session:
            conversation_id = await session.scalar(
                select(ConversationRow.id)
                .where(ConversationRow.key == str(key))
                .order_by(ConversationRow.id.desc())
                .limit(1)
            )
            if conversation_id is None:
                return []
            return await _turns(session, conversation_id, start=0)

    @_quoting_nothing
    async def keep_files(
        self, conversation_id: int, files: Sequence[Kept], *, now: datetime
    ) -> None:
        if not files:
            return
        rows = [
            {
                "conversation_id": conversation_id,
                "sha256": f.sha256,
                "name": f.name[:300],
                "media_type": f.media_type,
                "data": f.data,
                "width": f.width,
                "height": f.height,
                "pages": f.pages,
                "created_at": now,
            }
            for f in files
        ]
        async with self._sessions.begin() as session:
            # The same file sent twice in a conversation (or a redelivery) is kept once.
            insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
            statement = insert(FileRow).on_conflict_do_nothing(
                index_elements=["conversation_id", "sha256"]
            )
            await session.execute(statement, rows)

    @_quoting_nothing
    async def file_data(self, conversation_id: int, ids: Collection[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        async with self._sessions() as session:
            found = await session.execute(
                select(FileRow.sha256, FileRow.data).where(
                    FileRow.conversation_id == conversation_id, FileRow.sha256.in_(list(ids))
                )
            )
            return {sha: data for sha, data in found.all()}

    @_quoting_nothing
    async def strip_files(self, conversation_id: int, turns: Sequence[Turn]) -> None:
        async with self._sessions.begin() as session:
            for turn in turns:
                await session.execute(
                    update(MessageRow)
                    .where(
                        MessageRow.conversation_id == conversation_id, MessageRow.seq == turn.seq
                    )
                    .values(content=turn.content, tokens=turn.tokens)
                )

    @_quoting_nothing
    async def escalation_files(self, escalation_id: int) -> list[Kept]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(FileRow)
                .join(EscalationRow, EscalationRow.conversation_id == FileRow.conversation_id)
                .where(EscalationRow.id == escalation_id)
                .order_by(FileRow.id)
            )
            return [
                Kept(r.name, r.media_type, r.data, width=r.width, height=r.height, pages=r.pages)
                for r in rows
            ]


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def _hand_off(
    session: AsyncSession, conversation_id: int, hand_off: HandOff, *, now: datetime
) -> Escalation:
    escalation = Escalation(
        reason=hand_off.reason, summary=hand_off.summary, customer_id=hand_off.customer_id
    )
    live = await session.scalar(
        select(EscalationRow).where(EscalationRow.conversation_id == conversation_id, _LIVE)
    )
    if live is not None:
        live.reason = f"{live.reason}; {hand_off.reason}"[-500:]
        live.summary = hand_off.summary[:2000]
        live.updated_at = now
        await session.flush()
        return replace(escalation, id=live.id, new=False)
    row = EscalationRow(
        conversation_id=conversation_id,
        reason=hand_off.reason[:500],
        summary=hand_off.summary[:2000],
        state=State.OPEN.value,
        customer_id=hand_off.customer_id,
        customer_message_id=hand_off.message_id,
        reping_at=hand_off.reping_at,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return replace(escalation, id=row.id, new=True)


async def _turns(
    session: AsyncSession, conversation_id: int, *, start: int, kinds: frozenset[Kind] | None = None
) -> list[Turn]:
    query = select(MessageRow).where(
        MessageRow.conversation_id == conversation_id, MessageRow.seq >= start
    )
    if kinds is not None:
        query = query.where(MessageRow.kind.in_([k.value for k in kinds]))
    rows = await session.scalars(query.order_by(MessageRow.seq))
    return [_turn(r) for r in rows]


async def _one(session: AsyncSession, *where: ColumnElement[bool]) -> EscalationView | None:
    views = _views((await session.execute(_VIEW.where(*where))).all())
    return views[0] if views else None


def _views(rows: Sequence[Row[tuple[EscalationRow, str]]]) -> list[EscalationView]:
    return [
        EscalationView(
            id=e.id,
            key=ConversationKey.parse(key),
            customer_id=e.customer_id,
            customer_message_id=e.customer_message_id,
            reason=e.reason,
            summary=e.summary,
            state=State(e.state),
            claimed_by=e.claimed_by,
            closed_by=e.closed_by,
            created_at=e.created_at,
            updated_at=e.updated_at,
            staff=StaffPost(e.staff_channel, e.staff_message_id)
            if e.staff_channel and e.staff_message_id
            else None,
        )
        for e, key in rows
    ]


def _conversation(
    row: ConversationRow,
    *,
    fresh: bool,
    escalation: EscalationView | None,
    window: list[Turn],
) -> Conversation:
    return Conversation(
        id=row.id,
        key=ConversationKey.parse(row.key),
        topic=row.topic,
        window_start=row.window_start,
        fresh=fresh,
        human_active=row.human_active,
        dont_know_streak=row.dont_know_streak,
        escalation=escalation,
        window=tuple(window),
    )


def _message_row(conversation_id: int, seq: int, turn: Turn, *, now: datetime) -> MessageRow:
    return MessageRow(
        conversation_id=conversation_id,
        seq=seq,
        role=turn.role,
        kind=str(turn.kind),
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
