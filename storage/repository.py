"""``SqlStore``: the engine's ``ConversationStore`` on SQLAlchemy 2 async.

Locks are always taken conversation first, then escalation, so two transactions that touch
both (a turn handing off, a staff member closing) queue instead of deadlocking on PostgreSQL.

A failed statement leaves as ``StoreError``, which names the driver's exception type, SQLSTATE
and constraint and nothing else: the driver's own text quotes bound values (PostgreSQL's
``DETAIL: Failing row contains (…)`` holds the customer's message or the hand-off summary), and
whoever logs the failure prints it, traceback and chained exceptions included.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from core import logs
from core.escalation import LIVE, State
from core.files import Kept
from core.ports import (
    STAFF_LEASE,
    Conversation,
    Finished,
    HandOff,
    StaffKind,
    StaffOutbound,
    StaffPending,
    TurnWrites,
    Unanswered,
    Undelivered,
    notice_redraw,
)
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
from storage.database import sqlite_thread_engine
from storage.models import (
    ConversationRow,
    DeliveryRow,
    EscalationRow,
    FileRow,
    MessageRow,
    OutboxRow,
    StaffOutboxRow,
)

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


_CONVERSATIONS = cast(Table, ConversationRow.__table__)
_MESSAGES = cast(Table, MessageRow.__table__)
_DELIVERIES = cast(Table, DeliveryRow.__table__)
_C = _CONVERSATIONS.c
_M = _MESSAGES.c
_E = cast(Table, EscalationRow.__table__).c
_OUTBOX = cast(Table, OutboxRow.__table__)
_O = _OUTBOX.c
_LIVE_STATES = [s.value for s in LIVE]
_STAFF = cast(Table, StaffOutboxRow.__table__)
_S = _STAFF.c
_STAFF_WAITING = (_S.delivered_at.is_(None), _S.given_up_at.is_(None))
"""A staff outbox row still waiting (``storage.models.WAITING``)."""

# The hot path's statements, built once (SQLAlchemy then reuses their compiled form).
_LIVE_ID = (
    select(_E.id)
    # Spelled out: in RETURNING, SQLite's compiler leaves columns unqualified, and a bare "id"
    # in the subquery would be the escalation's own.
    .where(_E.conversation_id == literal_column("conversations.id"), _E.state.in_(_LIVE_STATES))
    .scalar_subquery()
    .label("live_id")
)
_READ = (
    _C.id,
    _C.next_seq,
    _C.topic,
    _C.window_start,
    _C.human_active,
    _C.dont_know_streak,
    _LIVE_ID,
)
_AT_KEY = (_C.key == bindparam("at_key"), _C.state == "open")
_CONTINUE = (
    update(_CONVERSATIONS)
    .where(*_AT_KEY, _C.updated_at >= bindparam("fresh_since"))
    .values(next_seq=_C.next_seq + 1, updated_at=bindparam("now"))
    .returning(*_READ)
)
"""Reserve the next turn's number in the open conversation at a key, unless it idled too long,
and read the conversation: the row stays locked until the transaction ends."""
_RESERVE = (
    update(_CONVERSATIONS)
    .where(_C.id == bindparam("cid"))
    .values(next_seq=_C.next_seq + 1, updated_at=bindparam("now"))
    .returning(*_READ)
)
_RESERVE_NOTHING = (
    update(_CONVERSATIONS)
    .where(_C.id == bindparam("cid"), _C.state == "open")
    .values(next_seq=_C.next_seq)
    .returning(*_READ, _C.key)
)
"""Lock an open conversation (an update that changes nothing) and read it."""
_ADVANCE = (
    update(_CONVERSATIONS)
    .where(_C.id == bindparam("cid"))
    .values(next_seq=_C.next_seq + bindparam("count"), updated_at=bindparam("now"))
    .returning(_C.next_seq)
)
"""Reserve ``count`` numbers; the conversation fields named in the parameters are set too."""
_OPEN_ID = select(_C.id).where(*_AT_KEY)
_OPEN_ROW = select(*_READ, _C.updated_at).where(*_AT_KEY).with_for_update(of=_CONVERSATIONS)
_OPEN_NEW = insert(_CONVERSATIONS).returning(_C.id)
_CLOSE = update(_CONVERSATIONS).where(_C.id == bindparam("cid")).values(state="closed")
_NEWEST_ID = select(_C.id).where(_C.key == bindparam("at_key")).order_by(_C.id.desc()).limit(1)
_ADD = insert(_MESSAGES)
_ADD_RETURNING = _ADD.returning(_M.id, sort_by_parameter_order=True)
_SEND = insert(_OUTBOX)
_WAITING = (_O.delivered_at.is_(None), _O.given_up_at.is_(None))
"""An outbox row still waiting for delivery (``storage.models.WAITING``)."""
_MARK = (
    update(_OUTBOX)
    .where(_O.id == bindparam("oid"), _O.delivered_at.is_(None))
    .values(delivered_at=bindparam("at"), platform_message_id=bindparam("mid"))
)
_REFUSE = (
    update(_MESSAGES)
    .where(_M.conversation_id == bindparam("cid"), _M.seq.in_(bindparam("seqs", expanding=True)))
    .values(kind=Kind.REFUSED.value)
)
_TAKE_OVER = (
    update(EscalationRow.__table__)
    .where(_E.conversation_id == bindparam("cid"), _E.state.in_(_LIVE_STATES))
    .values(reping_at=None)
)
_HISTORY = (
    select(
        _M.seq,
        _M.role,
        _M.kind,
        _M.content,
        _M.tokens,
        _M.platform_message_id,
        _M.input_tokens,
        _M.output_tokens,
        _M.cache_read_tokens,
        _M.cache_write_tokens,
    )
    .where(_M.conversation_id == bindparam("cid"), _M.seq >= bindparam("start"))
    .order_by(_M.seq)
)
_WINDOW = _HISTORY.where(_M.kind.in_([k.value for k in SEEN]))


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
    """Conversations, turns, deliveries and escalations in one relational database.

    A customer turn is two transactions of SQLAlchemy Core statements (``begin_turn``,
    ``finish_turn``), each a synchronous function run whole by ``_Transactions``: on SQLite in
    one worker thread (one hand-over per transaction instead of several per statement), on
    PostgreSQL through the async driver. The rarer paths use the ORM. The window of each recent
    conversation is kept in memory (``_Windows``) and used only while the conversation row says
    nothing was written since, so another replica's writes are always read from the database.
    """

    def __init__(self, *, engine: AsyncEngine, windows: int = 512) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._claim = dialect.insert(_DELIVERIES).on_conflict_do_nothing()
        self._transaction = _Transactions(engine)
        self._windows = _Windows(windows)
        # aiosqlite's DEBUG lines print every statement with its bound values.
        logs.quiet("aiosqlite")

    async def close(self) -> None:
        """Close what the store opened beside the engine (SQLite's worker thread and its
        connection); the engine is its owner's to dispose."""
        await self._transaction.close()

    @_quoting_nothing
    async def begin_turn(
        self,
        message: IncomingMessage,
        turn: Turn,
        *,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
        relay: StaffOutbound | None = None,
    ) -> Conversation | None:
        for _ in range(_OPEN_ATTEMPTS):
            try:
                taken = await self._transaction(
                    self._take, message, turn, now, idle_after, restart, relay
                )
            except IntegrityError:
                continue  # another replica opened the conversation first: take it
            if taken is None:
                return None
            conversation, next_seq = taken
            self._windows.put(
                conversation.id,
                next_seq=next_seq,
                start=conversation.window_start,
                window=conversation.window,
            )
            return conversation
        raise RuntimeError(f"could not open a conversation at {message.key}")

    def _take(
        self,
        connection: Connection,
        message: IncomingMessage,
        turn: Turn,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
        relay: StaffOutbound | None,
    ) -> tuple[Conversation, int] | None:
        """Claim the delivery (``None``: taken before) and store ``turn`` in the conversation
        it opens or continues (with ``relay`` for a DM's staff thread); that conversation as
        it now stands, and its next number."""
        claimed = connection.execute(
            self._claim,
            {"platform": message.key.platform, "message_id": message.message_id, "created_at": now},
        )
        if claimed.rowcount == 0:
            return None
        row = None
        if not restart:
            # The usual turn, one statement: lock the open conversation, reserve the turn's
            # number and read the conversation, unless it idled too long (then the slow path).
            fresh_since = now - idle_after if idle_after is not None else datetime.min
            row = connection.execute(
                _CONTINUE, {"at_key": str(message.key), "now": now, "fresh_since": fresh_since}
            ).one_or_none()
        fresh = False
        if row is None:
            opened, fresh = _open(
                connection, message, now=now, idle_after=idle_after, restart=restart
            )
            row = connection.execute(_RESERVE, {"cid": opened, "now": now}).one()
        seq = row.next_seq - 1
        stored = replace(turn, kind=Kind.RESTART if restart and fresh else turn.kind, seq=seq)
        connection.execute(_ADD, [_message_values(row.id, stored, now=now)])
        before = () if fresh else self._windows.get(row.id, next_seq=seq, start=row.window_start)
        if before is None:
            window = _turns(connection, row.id, start=row.window_start, statement=_WINDOW)
        else:
            window = (*before, stored) if stored.kind in SEEN else before
        escalation = _live(connection, row.live_id)
        conversation = _conversation(row, message.key, fresh, escalation, window)
        if relay is not None and message.direct and escalation and escalation.staff:
            _keep_for_staff(connection, escalation.id, relay, now=now)
            conversation = replace(conversation, relayed=relay.id)
        return conversation, row.next_seq

    @_quoting_nothing
    async def finish_turn(
        self, conversation_id: int, writes: TurnWrites, *, now: datetime
    ) -> Finished:
        if writes.empty:
            return Finished()
        first, after, turns, finished = await self._transaction(
            _finish, conversation_id, writes, now
        )
        self._windows.finished(
            conversation_id,
            before=first,
            after=after,
            start=writes.window_start,
            turns=turns,
            refused=writes.refused,
        )
        return finished

    @_quoting_nothing
    async def escalation(self, escalation_id: int) -> EscalationView | None:
        async with self._sessions() as session:
            return await session.run_sync(_one, EscalationRow.id == escalation_id)

    @_quoting_nothing
    async def escalation_at(self, staff: StaffPost) -> EscalationView | None:
        async with self._sessions() as session:
            return await session.run_sync(
                _one,
                EscalationRow.staff_channel == staff.channel_id,
                EscalationRow.staff_message_id == staff.message_id,
            )

    @_quoting_nothing
    async def attach_staff_post(self, escalation_id: int, staff: StaffPost) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(EscalationRow)
                .where(EscalationRow.id == escalation_id)
                # A notice just posted shows the state it was drawn from.
                .values(
                    staff_channel=staff.channel_id,
                    staff_message_id=staff.message_id,
                    redraw_at=None,
                )
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
                    redraw_at=now,
                    **(
                        {"claimed_by": staff_id, "claimed_at": now}
                        if to.live
                        else {"closed_by": staff_id, "closed_at": now}
                    ),
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
            return await session.run_sync(_one, EscalationRow.id == escalation_id)

    @_quoting_nothing
    async def staff_turn(
        self,
        key: ConversationKey,
        turn: Turn,
        *,
        now: datetime,
        reply: StaffOutbound | None = None,
    ) -> bool:
        assert turn.message_id is not None
        return await self._transaction(self._staff_turn, key, turn, now, reply)

    def _staff_turn(
        self,
        connection: Connection,
        key: ConversationKey,
        turn: Turn,
        now: datetime,
        reply: StaffOutbound | None,
    ) -> bool:
        conversation_id = connection.scalar(_OPEN_ID.with_for_update(), {"at_key": str(key)})
        if conversation_id is None:
            return False
        claimed = connection.execute(
            self._claim,
            {"platform": key.platform, "message_id": turn.message_id, "created_at": now},
        )
        if claimed.rowcount == 0:
            return False
        # With a live escalation a person has taken over: the bot steps back, and a reminder
        # to staff would be noise. Without one it is context only.
        taken_over = connection.execute(_TAKE_OVER, {"cid": conversation_id})
        fields = {"human_active": True} if taken_over.rowcount > 0 else {}
        after = connection.scalar(
            _ADVANCE, {"cid": conversation_id, "now": now, "count": 1, **fields}
        )
        assert after is not None
        stored = replace(turn, seq=after - 1)
        connection.execute(_ADD, [_message_values(conversation_id, stored, now=now)])
        if reply is not None:
            # The newest escalation: the live one, or the one closed since the desk read it
            # (the reply was written, so it goes to the customer all the same).
            newest = connection.scalar(
                select(_E.id)
                .where(_E.conversation_id == conversation_id)
                .order_by(_E.id.desc())
                .limit(1)
            )
            if newest is not None:
                _keep_for_staff(connection, newest, reply, now=now)
        return True

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
    async def reping_at(self, escalation_id: int, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(EscalationRow)
                .where(
                    EscalationRow.id == escalation_id,
                    EscalationRow.state == State.OPEN.value,
                    or_(EscalationRow.reping_at.is_(None), EscalationRow.reping_at > at),
                )
                .values(reping_at=at)
            )

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
            await session.execute(
                delete(OutboxRow).where(
                    or_(OutboxRow.delivered_at < before, OutboxRow.given_up_at < before)
                )
            )
            await session.execute(
                delete(_STAFF).where(or_(_S.delivered_at < before, _S.given_up_at < before))
            )
            done = await session.execute(delete(DeliveryRow).where(DeliveryRow.created_at < before))
            return done.rowcount

    @_quoting_nothing
    async def undelivered(self, *, platforms: set[str], before: datetime) -> list[Undelivered]:
        statement = (
            select(_O.id, _O.body, _O.reply_to, _O.created_at, _C.id.label("cid"), _C.key)
            .add_columns(_C.customer_id, _O.answer_id, _O.proposal_id, _O.offer_person, _O.ping)
            .join(_CONVERSATIONS, _C.id == _O.conversation_id)
            .where(*_WAITING, _O.created_at < before, _C.platform.in_(platforms))
            .order_by(_O.created_at)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [
            Undelivered(
                id=r.id,
                text=r.body,
                turn=Unanswered(
                    conversation_id=r.cid,
                    key=ConversationKey.parse(r.key),
                    customer_id=r.customer_id,
                    message_id=r.reply_to,
                    at=r.created_at,
                ),
                at=r.created_at,
                answer_id=r.answer_id,
                proposal=r.proposal_id,
                offer_person=r.offer_person,
                ping=r.ping,
            )
            for r in rows
        ]

    @_quoting_nothing
    async def is_undelivered(self, outbox_id: str) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(select(_O.id).where(_O.id == outbox_id, *_WAITING))
            return found is not None

    @_quoting_nothing
    async def give_up(self, outbox_id: str, *, now: datetime) -> bool:
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(_OUTBOX).where(_O.id == outbox_id, *_WAITING).values(given_up_at=now)
            )
            return done.rowcount == 1

    @_quoting_nothing
    async def delivered(self, marks: Mapping[str, str | None], *, now: datetime) -> None:
        if not marks:
            return
        rows = [{"oid": i, "mid": m, "at": now} for i, m in marks.items()]
        async with self._sessions.begin() as session:
            await session.execute(_MARK, rows)

    @_quoting_nothing
    async def staff_waiting(self, *, platforms: set[str]) -> list[StaffPending]:
        on_platforms = _C.platform.in_(platforms)
        posts = (
            select(StaffOutboxRow, EscalationRow, ConversationRow.key)
            .join(EscalationRow, EscalationRow.id == StaffOutboxRow.escalation_id)
            .join(ConversationRow, ConversationRow.id == EscalationRow.conversation_id)
            .where(*_STAFF_WAITING, on_platforms)
            .order_by(StaffOutboxRow.created_at)
        )
        notices = _VIEW.where(
            EscalationRow.redraw_at.is_not(None),
            EscalationRow.staff_message_id.is_not(None),
            on_platforms,
        )
        async with self._sessions() as session:
            found = (await session.execute(posts)).all()
            stale = _views((await session.execute(notices)).all())
        waiting = [
            StaffPending(
                id=o.id,
                kind=StaffKind(o.kind),
                escalation=_views([(e, key)])[0],
                author_id=o.author_id,
                author_name=o.author_name,
                text=o.body,
                at=o.created_at,
                due=o.next_try_at,
                tries=o.tries,
            )
            for o, e, key in found
        ]
        waiting += (notice_redraw(view) for view in stale)
        return sorted(waiting, key=lambda p: p.at)

    @_quoting_nothing
    async def take_staff(self, outbox_id: str, *, tries: int, until: datetime) -> bool:
        async with self._sessions.begin() as session:
            taken = await session.execute(
                update(_STAFF)
                .where(_S.id == outbox_id, _S.tries == tries, *_STAFF_WAITING)
                .values(tries=tries + 1, next_try_at=until)
            )
            return taken.rowcount > 0

    @_quoting_nothing
    async def staff_retry(self, outbox_id: str, *, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(_STAFF).where(_S.id == outbox_id, *_STAFF_WAITING).values(next_try_at=at)
            )

    @_quoting_nothing
    async def staff_done(
        self, outbox_id: str, *, now: datetime, message_id: str | None, given_up: bool = False
    ) -> bool:
        done = {"given_up_at": now} if given_up else {"delivered_at": now}
        async with self._sessions.begin() as session:
            marked = await session.execute(
                update(_STAFF)
                .where(_S.id == outbox_id, *_STAFF_WAITING)
                .values(platform_message_id=message_id, **done)
            )
            return marked.rowcount == 1

    @_quoting_nothing
    async def notice_drawn(self, escalation_id: int, *, seen: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(EscalationRow)
                .where(EscalationRow.id == escalation_id, EscalationRow.redraw_at == seen)
                .values(redraw_at=None)
            )

    @_quoting_nothing
    async def unanswered(
        self,
        *,
        platforms: set[str],
        since: datetime,
        before: datetime,
        key: ConversationKey | None = None,
    ) -> list[Unanswered]:
        last = (
            select(_M.conversation_id, func.max(_M.seq).label("seq"))
            .where(
                _M.conversation_id.in_(
                    select(_C.id).where(
                        _C.state == "open",
                        _C.platform.in_(platforms),
                        _C.human_active.is_(False),
                        _C.updated_at >= since,
                        *([_C.key == str(key)] if key is not None else []),
                    )
                )
            )
            .group_by(_M.conversation_id)
            .subquery()
        )
        # Claimed now, or changed (claimed, resolved, handed back) since the message came: a
        # person has had it, and the bot kept quiet on purpose.
        people = exists().where(
            _E.conversation_id == _C.id,
            or_(_E.state == State.CLAIMED.value, _E.updated_at >= _M.created_at),
        )
        statement = (
            select(_C.id, _C.key, _C.customer_id, _M.platform_message_id, _M.created_at)
            .join(last, last.c.conversation_id == _C.id)
            .join(_MESSAGES, (_M.conversation_id == _C.id) & (_M.seq == last.c.seq))
            .where(
                _M.kind == Kind.CUSTOMER.value,
                _M.created_at >= since,
                _M.created_at < before,
                ~people,
            )
            .order_by(_M.created_at)
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [
            Unanswered(
                conversation_id=r.id,
                key=ConversationKey.parse(r.key),
                customer_id=r.customer_id,
                message_id=r.platform_message_id or "",
                at=r.created_at,
            )
            for r in rows
        ]

    @_quoting_nothing
    async def resume_turn(self, conversation_id: int) -> Conversation | None:
        conversation = await self._transaction(_resume, conversation_id)
        self._windows.forget(conversation_id)
        return conversation

    @_quoting_nothing
    async def is_active(self, key: ConversationKey) -> bool:
        return await self._transaction(_is_active, key)

    async def ping(self) -> bool:
        """Whether the database answers a query now (readiness)."""
        async with self._sessions() as session:
            return await session.scalar(select(literal(1))) == 1

    @_quoting_nothing
    async def history(self, key: ConversationKey) -> list[Turn]:
        return await self._transaction(_history, key)

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
            # Stored turns changed: move the sequence, so no process serves a window kept
            # from before (``_Windows``).
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.id == conversation_id)
                .values(next_seq=ConversationRow.next_seq + 1)
            )
        self._windows.forget(conversation_id)

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


def _is_active(connection: Connection, key: ConversationKey) -> bool:
    return connection.scalar(_OPEN_ID, {"at_key": str(key)}) is not None


def _history(connection: Connection, key: ConversationKey) -> list[Turn]:
    conversation_id = connection.scalar(_NEWEST_ID, {"at_key": str(key)})
    if conversation_id is None:
        return []
    return list(_turns(connection, conversation_id, start=0, statement=_HISTORY))


def _hand_off(
    session: Session, conversation_id: int, hand_off: HandOff, *, now: datetime
) -> Escalation:
    escalation = Escalation(
        reason=hand_off.reason, summary=hand_off.summary, customer_id=hand_off.customer_id
    )
    live = session.scalar(
        select(EscalationRow).where(EscalationRow.conversation_id == conversation_id, _LIVE)
    )
    if live is not None:
        live.reason = f"{live.reason}; {hand_off.reason}"[-500:]
        live.summary = hand_off.summary[:2000]
        live.updated_at = now
        live.redraw_at = now
        session.flush()
        return replace(escalation, id=live.id, new=False)
    row = EscalationRow(
        conversation_id=conversation_id,
        reason=hand_off.reason[:500],
        summary=hand_off.summary[:2000],
        state=State.OPEN.value,
        customer_id=hand_off.customer_id,
        customer_message_id=hand_off.message_id,
        reping_at=hand_off.reping_at,
        cause=hand_off.cause[:30] or None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return replace(escalation, id=row.id, new=True)


def _finish(
    connection: Connection, conversation_id: int, writes: TurnWrites, now: datetime
) -> tuple[int, int, list[Turn], Finished]:
    """Store a turn's writes: the conversation's number before and after, the turns as
    stored, and the escalation a hand-off opened or updated with the answer's id."""
    fields = {
        name: value
        for name, value in (
            ("topic", writes.topic),
            ("window_start", writes.window_start),
            ("dont_know_streak", writes.dont_know_streak),
        )
        if value is not None
    }
    # Refused marks change stored turns without adding one: they move the sequence on too,
    # so a replica holding this conversation's window in memory sees it changed.
    count = len(writes.turns) or (1 if writes.refused else 0)
    # The conversation row is locked first (see the module docstring): FOR UPDATE on a live
    # escalation that does not exist yet locks nothing, and two replicas would both insert one.
    after = connection.scalar(
        _ADVANCE, {"cid": conversation_id, "now": now, "count": count, **fields}
    )
    if after is None:
        raise LookupError(f"no conversation {conversation_id}")
    first = after - count
    turns = [replace(t, seq=first + i) for i, t in enumerate(writes.turns)]
    answer_id = None
    if turns:
        rows = [_message_values(conversation_id, t, now=now) for t in turns]
        if writes.answer is None:
            connection.execute(_ADD, rows)
        else:
            ids = connection.scalars(_ADD_RETURNING, rows).all()
            answer_id = ids[writes.answer]
    if writes.refused:
        connection.execute(_REFUSE, {"cid": conversation_id, "seqs": list(writes.refused)})
    escalation = None
    if writes.hand_off is not None:
        with Session(bind=connection) as session:
            escalation = _hand_off(session, conversation_id, writes.hand_off, now=now)
    if writes.reply is not None:
        reply = writes.reply
        connection.execute(
            _SEND,
            {
                "id": reply.id,
                "conversation_id": conversation_id,
                "reply_to": reply.reply_to,
                "body": reply.text,
                "created_at": reply.at or now,
                "answer_id": answer_id,
                "proposal_id": reply.proposal,
                "offer_person": reply.offer_person,
                "ping": escalation is not None and escalation.new,
            },
        )
    return first, after, turns, Finished(escalation, answer_id)


def _keep_for_staff(
    connection: Connection, escalation_id: int | None, post: StaffOutbound, *, now: datetime
) -> None:
    """Put ``post`` into the staff outbox, held for the try its writer makes at once."""
    connection.execute(
        insert(_STAFF),
        {
            "id": post.id,
            "escalation_id": escalation_id,
            "kind": post.kind.value,
            "author_id": post.author_id[:100],
            "author_name": post.author_name[:200],
            "body": post.text,
            "created_at": now,
            "next_try_at": now + STAFF_LEASE,
            "tries": 0,
        },
    )


class _Transactions:
    """Runs a synchronous function in one transaction: ``await transaction(fn, *args)`` calls
    ``fn(connection, *args)`` and commits, or rolls back if it raised.

    On SQLite the whole transaction runs in one worker thread on its own connection (WAL lets
    it share the file with the async engine's; SQLite's write lock orders them), so it costs
    one hand-over between the event loop and a thread, where aiosqlite takes three or four a
    statement. Elsewhere it runs on the async engine, ``run_sync`` driving the same code.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sync: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if engine.dialect.name == "sqlite":
            self._sync = sqlite_thread_engine(engine.url)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite")

    async def __call__(self, fn: Callable[..., R], *args: Any) -> R:
        if self._thread is None:
            async with self._engine.begin() as connection:
                return await connection.run_sync(fn, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._run, fn, args)

    async def close(self) -> None:
        if self._thread is not None:
            assert self._sync is not None
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync.dispose)
            self._thread.shutdown()

    def _run(self, fn: Callable[..., R], args: tuple[Any, ...]) -> R:
        assert self._sync is not None
        with self._sync.begin() as connection:
            return fn(connection, *args)


def _open(
    connection: Connection,
    message: IncomingMessage,
    *,
    now: datetime,
    idle_after: timedelta | None,
    restart: bool,
) -> tuple[int, bool]:
    """The id of the conversation a turn goes to, and whether it was opened for it."""
    row = connection.execute(_OPEN_ROW, {"at_key": str(message.key)}).one_or_none()
    if row is not None:
        stale = idle_after is not None and now - row.updated_at > idle_after
        # A conversation with a live escalation stays open however long it idles: staff are
        # on it, and their replies and the customer's must keep meeting in one place.
        if not (restart or stale) or row.live_id is not None:
            return row.id, False
        connection.execute(_CLOSE, {"cid": row.id})
    opened = connection.scalar(
        _OPEN_NEW,
        {
            "key": str(message.key),
            "platform": message.key.platform,
            "customer_id": message.author_id,
            "state": "open",
            "window_start": 0,
            "next_seq": 0,
            "human_active": False,
            "dont_know_streak": 0,
            "created_at": now,
            "updated_at": now,
        },
    )
    assert opened is not None
    return opened, True


def _resume(connection: Connection, conversation_id: int) -> Conversation | None:
    """The open conversation, locked, with its window, if its last stored turn is still a
    customer turn nobody answered; else ``None``."""
    row = connection.execute(_RESERVE_NOTHING, {"cid": conversation_id}).one_or_none()
    if row is None:
        return None
    last = connection.execute(
        select(_M.kind)
        .where(_M.conversation_id == conversation_id)
        .order_by(_M.seq.desc())
        .limit(1)
    ).scalar()
    if last != Kind.CUSTOMER.value:
        return None
    window = _turns(connection, row.id, start=row.window_start, statement=_WINDOW)
    return _conversation(
        row, ConversationKey.parse(row.key), False, _live(connection, row.live_id), window
    )


def _live(connection: Connection, escalation_id: int | None) -> EscalationView | None:
    if escalation_id is None:
        return None
    with Session(bind=connection) as session:
        return _one(session, EscalationRow.id == escalation_id)


def _conversation(
    row: Row[Any],
    key: ConversationKey,
    fresh: bool,
    escalation: EscalationView | None,
    window: tuple[Turn, ...],
) -> Conversation:
    """A conversation as ``_READ`` read it."""
    return Conversation(
        id=row.id,
        key=key,
        topic=row.topic,
        window_start=row.window_start,
        fresh=fresh,
        human_active=row.human_active,
        dont_know_streak=row.dont_know_streak,
        escalation=escalation,
        window=window,
    )


def _turns(
    connection: Connection, conversation_id: int, *, start: int, statement: Select[Any]
) -> tuple[Turn, ...]:
    found = connection.execute(statement, {"cid": conversation_id, "start": start})
    return tuple(
        Turn(
            role=r.role,
            content=r.content,
            kind=r.kind,
            tokens=r.tokens,
            seq=r.seq,
            message_id=r.platform_message_id,
            usage=Usage(r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens),
        )
        for r in found
    )


def _one(session: Session, *where: ColumnElement[bool]) -> EscalationView | None:
    views = _views(session.execute(_VIEW.where(*where)).all())
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
            redraw_at=e.redraw_at,
        )
        for e, key in rows
    ]


def _message_values(conversation_id: int, turn: Turn, *, now: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "seq": turn.seq,
        "role": turn.role,
        "kind": str(turn.kind),
        "content": turn.content,
        "tokens": turn.tokens,
        "platform_message_id": turn.message_id,
        "input_tokens": turn.usage.input_tokens,
        "output_tokens": turn.usage.output_tokens,
        "cache_read_tokens": turn.usage.cache_read_tokens,
        "cache_write_tokens": turn.usage.cache_write_tokens,
        "model": turn.usage.model,
        "fallback": turn.fallback,
        "dont_know": turn.dont_know,
        "created_at": now,
    }


class _Windows:
    """The window of the conversations this process served last, each with the sequence
    number its conversation had when it was read (least recently used first out).

    A window is only used when the conversation row, read under its lock in the same
    transaction, still has that sequence number and window start: every write that changes
    stored turns moves the sequence, so a window another replica changed is read again.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._kept: OrderedDict[int, tuple[int, int, tuple[Turn, ...]]] = OrderedDict()

    def get(self, conversation_id: int, *, next_seq: int, start: int) -> tuple[Turn, ...] | None:
        # Only reads: a transaction's worker thread calls this; the event loop changes it.
        kept = self._kept.get(conversation_id)
        if kept is None or kept[:2] != (next_seq, start):
            return None
        return kept[2]

    def put(
        self, conversation_id: int, *, next_seq: int, start: int, window: tuple[Turn, ...]
    ) -> None:
        self._kept[conversation_id] = (next_seq, start, window)
        self._kept.move_to_end(conversation_id)
        if len(self._kept) > self._size:
            self._kept.popitem(last=False)

    def forget(self, conversation_id: int) -> None:
        self._kept.pop(conversation_id, None)

    def finished(
        self,
        conversation_id: int,
        *,
        before: int,
        after: int,
        start: int | None,
        turns: list[Turn],
        refused: tuple[int, ...],
    ) -> None:
        """A turn's writes, committed: moved from sequence ``before`` to ``after``."""
        kept = self._kept.pop(conversation_id, None)
        if kept is None or kept[0] != before:
            return
        start = kept[1] if start is None else start
        window = [t for t in kept[2] if t.seq >= start and t.seq not in refused]
        window += (t for t in turns if t.kind in SEEN)
        self.put(conversation_id, next_seq=after, start=start, window=tuple(window))
