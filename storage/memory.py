"""``MemoryStore``: the ``ConversationStore`` in process memory, for tests and the console.

No method awaits between reading and writing, so on one event loop every call is atomic, as
each ``SqlStore`` call is one transaction. Nothing survives the process.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.escalation import State
from core.files import Kept
from core.ports import (
    STAFF_LEASE,
    Conversation,
    Finished,
    HandOff,
    Outbound,
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
)
from core.window import SEEN


@dataclass(slots=True)
class _Conversation:
    id: int
    key: ConversationKey
    customer_id: str = ""
    open: bool = True
    topic: str | None = None
    window_start: int = 0
    human_active: bool = False
    dont_know_streak: int = 0
    updated_at: datetime = datetime.min
    turns: list[Turn] = field(default_factory=list)
    files: dict[str, Kept] = field(default_factory=dict)


@dataclass(slots=True)
class _Escalation:
    id: int
    conversation: _Conversation
    reason: str
    summary: str
    customer_id: str
    customer_message_id: str | None
    reping_at: datetime | None
    created_at: datetime
    updated_at: datetime
    state: State = State.OPEN
    claimed_by: str | None = None
    closed_by: str | None = None
    staff: StaffPost | None = None
    redraw_at: datetime | None = None

    def view(self) -> EscalationView:
        return EscalationView(
            id=self.id,
            key=self.conversation.key,
            customer_id=self.customer_id,
            customer_message_id=self.customer_message_id,
            reason=self.reason,
            summary=self.summary,
            state=self.state,
            claimed_by=self.claimed_by,
            closed_by=self.closed_by,
            created_at=self.created_at,
            updated_at=self.updated_at,
            staff=self.staff,
            redraw_at=self.redraw_at,
        )


@dataclass(slots=True)
class _ForStaff:
    post: StaffOutbound
    escalation: _Escalation
    at: datetime
    due: datetime
    tries: int = 0
    done_at: datetime | None = None
    message_id: str | None = None


@dataclass(slots=True)
class _Sent:
    reply: Outbound
    row: _Conversation
    at: datetime
    answer_id: int | None = None
    ping: bool = False
    delivered_at: datetime | None = None
    message_id: str | None = None
    given_up_at: datetime | None = None

    @property
    def waiting(self) -> bool:
        return self.delivered_at is None and self.given_up_at is None

    def done_before(self, before: datetime) -> bool:
        """Delivered or given up before ``before``: housekeeping forgets it."""
        return any(at is not None and at < before for at in (self.delivered_at, self.given_up_at))


class MemoryStore:
    """Conversations, turns, deliveries and escalations in dictionaries."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._delivered: dict[tuple[str, str], datetime] = {}
        self._conversations: list[_Conversation] = []
        self._escalations: dict[int, _Escalation] = {}
        self._outbox: dict[str, _Sent] = {}
        self._staff_outbox: dict[str, _ForStaff] = {}

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
        delivery = (message.key.platform, message.message_id)
        if delivery in self._delivered:
            return None
        self._delivered[delivery] = now
        row, fresh = self._open(message, now=now, idle_after=idle_after, restart=restart)
        _add(row, [replace(turn, kind=Kind.RESTART) if restart and fresh else turn], now=now)
        conversation = self._conversation(row, fresh=fresh)
        live = self._live(row)
        if relay is not None and message.direct and live is not None and live.staff is not None:
            self._keep_for_staff(relay, live, now=now)
            conversation = replace(conversation, relayed=relay.id)
        return conversation

    def _keep_for_staff(
        self, post: StaffOutbound, escalation: _Escalation, *, now: datetime
    ) -> None:
        self._staff_outbox[post.id] = _ForStaff(post, escalation, now, now + STAFF_LEASE)

    def _conversation(self, row: _Conversation, *, fresh: bool) -> Conversation:
        live = self._live(row)
        return Conversation(
            id=row.id,
            key=row.key,
            topic=row.topic,
            window_start=row.window_start,
            fresh=fresh,
            human_active=row.human_active,
            dont_know_streak=row.dont_know_streak,
            escalation=live.view() if live is not None else None,
            window=tuple(t for t in row.turns[row.window_start :] if t.kind in SEEN),
        )

    async def unanswered(
        self,
        *,
        platforms: set[str],
        since: datetime,
        before: datetime,
        key: ConversationKey | None = None,
    ) -> list[Unanswered]:
        waiting = [
            Unanswered(c.id, c.key, c.customer_id, c.turns[-1].message_id or "", c.updated_at)
            for c in self._conversations
            if c.open
            and c.key.platform in platforms
            and key in (None, c.key)
            and _unanswered(c)
            and since <= c.updated_at < before
            and not c.human_active
            and not any(
                e.conversation is c and (e.state == State.CLAIMED or e.updated_at >= c.updated_at)
                for e in self._escalations.values()
            )
        ]
        return sorted(waiting, key=lambda u: u.at)

    async def resume_turn(self, conversation_id: int) -> Conversation | None:
        row = self._by_id(conversation_id)
        if not row.open or not _unanswered(row):
            return None
        return self._conversation(row, fresh=False)

    def _open(
        self,
        message: IncomingMessage,
        *,
        now: datetime,
        idle_after: timedelta | None,
        restart: bool,
    ) -> tuple[_Conversation, bool]:
        key = message.key
        row = self._open_at(key)
        stale = row is not None and idle_after is not None and now - row.updated_at > idle_after
        if row is not None and not (restart or stale):
            return row, False
        # A live escalation keeps its conversation open (as in SqlStore).
        if row is not None and self._live(row) is not None:
            return row, False
        if row is not None:
            row.open = False
        row = _Conversation(
            id=next(self._ids), key=key, customer_id=message.author_id, updated_at=now
        )
        self._conversations.append(row)
        return row, True

    def _open_at(self, key: ConversationKey) -> _Conversation | None:
        return next((c for c in self._conversations if c.key == key and c.open), None)

    def _live(self, row: _Conversation) -> _Escalation | None:
        return next(
            (e for e in self._escalations.values() if e.conversation is row and e.state.live),
            None,
        )

    async def finish_turn(
        self, conversation_id: int, writes: TurnWrites, *, now: datetime
    ) -> Finished:
        row = next((c for c in self._conversations if c.id == conversation_id), None)
        if row is None:
            raise LookupError(f"no conversation {conversation_id}")
        if writes.empty:
            return Finished()
        row.turns = [
            replace(t, kind=Kind.REFUSED) if t.seq in writes.refused else t for t in row.turns
        ]
        _add(row, writes.turns, now=now)
        if writes.topic is not None:
            row.topic = writes.topic
        if writes.window_start is not None:
            row.window_start = writes.window_start
        if writes.dont_know_streak is not None:
            row.dont_know_streak = writes.dont_know_streak
        answer_id = next(self._ids) if writes.answer is not None else None
        escalation = None
        if writes.hand_off is not None:
            escalation = self._hand_off(row, writes.hand_off, now=now)
        if writes.reply is not None:
            ping = escalation is not None and escalation.new
            at = writes.reply.at or now
            self._outbox[writes.reply.id] = _Sent(writes.reply, row, at, answer_id, ping)
        return Finished(escalation, answer_id)

    def _hand_off(self, row: _Conversation, hand_off: HandOff, *, now: datetime) -> Escalation:
        escalation = Escalation(
            reason=hand_off.reason, summary=hand_off.summary, customer_id=hand_off.customer_id
        )
        live = self._live(row)
        if live is not None:
            live.reason = f"{live.reason}; {hand_off.reason}"[-500:]
            live.summary = hand_off.summary[:2000]
            live.updated_at = live.redraw_at = now
            return replace(escalation, id=live.id, new=False)
        created = _Escalation(
            id=next(self._ids),
            conversation=row,
            reason=hand_off.reason[:500],
            summary=hand_off.summary[:2000],
            customer_id=hand_off.customer_id,
            customer_message_id=hand_off.message_id,
            reping_at=hand_off.reping_at,
            created_at=now,
            updated_at=now,
        )
        self._escalations[created.id] = created
        return replace(escalation, id=created.id, new=True)

    async def escalation(self, escalation_id: int) -> EscalationView | None:
        found = self._escalations.get(escalation_id)
        return found.view() if found is not None else None

    async def escalation_at(self, staff: StaffPost) -> EscalationView | None:
        found = next((e for e in self._escalations.values() if e.staff == staff), None)
        return found.view() if found is not None else None

    async def attach_staff_post(self, escalation_id: int, staff: StaffPost) -> None:
        if escalation_id in self._escalations:
            found = self._escalations[escalation_id]
            found.staff, found.redraw_at = staff, None

    async def transition(
        self, escalation_id: int, *, expected: State, to: State, staff_id: str, now: datetime
    ) -> EscalationView | None:
        found = self._escalations.get(escalation_id)
        if found is None or found.state != expected:
            return None
        found.state, found.reping_at, found.updated_at, found.redraw_at = to, None, now, now
        if to.live:
            found.claimed_by = staff_id
        else:
            found.closed_by = staff_id
            found.conversation.human_active = False
            found.conversation.dont_know_streak = 0
        return found.view()

    async def staff_turn(
        self,
        key: ConversationKey,
        turn: Turn,
        *,
        now: datetime,
        reply: StaffOutbound | None = None,
    ) -> bool:
        assert turn.message_id is not None
        row = self._open_at(key)
        delivery = (key.platform, turn.message_id)
        if row is None or delivery in self._delivered:
            return False
        self._delivered[delivery] = now
        live = self._live(row)
        if live is not None:
            live.reping_at = None
            row.human_active = True
        newest = max(
            (e for e in self._escalations.values() if e.conversation is row),
            key=lambda e: e.id,
            default=None,
        )
        if reply is not None and newest is not None:
            self._keep_for_staff(reply, newest, now=now)
        _add(row, [turn], now=now)
        return True

    async def staff_waiting(self, *, platforms: set[str]) -> list[StaffPending]:
        waiting = [
            StaffPending(
                s.post.id,
                s.post.kind,
                s.escalation.view(),
                s.post.author_id,
                s.post.author_name,
                s.post.text,
                s.at,
                s.due,
                s.tries,
            )
            for s in self._staff_outbox.values()
            if s.done_at is None and s.escalation.conversation.key.platform in platforms
        ]
        waiting += (
            notice_redraw(e.view())
            for e in self._escalations.values()
            if e.redraw_at is not None
            and e.staff is not None
            and e.conversation.key.platform in platforms
        )
        return sorted(waiting, key=lambda p: p.at)

    async def take_staff(self, outbox_id: str, *, tries: int, until: datetime) -> bool:
        found = self._staff_outbox.get(outbox_id)
        if found is None or found.done_at is not None or found.tries != tries:
            return False
        found.tries, found.due = tries + 1, until
        return True

    async def staff_retry(self, outbox_id: str, *, at: datetime) -> None:
        found = self._staff_outbox.get(outbox_id)
        if found is not None and found.done_at is None:
            found.due = at

    async def staff_done(
        self, outbox_id: str, *, now: datetime, message_id: str | None, given_up: bool = False
    ) -> bool:
        found = self._staff_outbox.get(outbox_id)
        if found is None or found.done_at is not None:
            return False
        found.done_at, found.message_id = now, message_id
        return True

    async def notice_drawn(self, escalation_id: int, *, seen: datetime) -> None:
        found = self._escalations.get(escalation_id)
        if found is not None and found.redraw_at == seen:
            found.redraw_at = None

    async def due_repings(self, now: datetime, *, platforms: set[str]) -> list[EscalationView]:
        due = [
            e
            for e in self._escalations.values()
            if e.state == State.OPEN
            and e.reping_at is not None
            and e.reping_at <= now
            and e.conversation.key.platform in platforms
        ]
        for escalation in due:
            escalation.reping_at = None
        return [e.view() for e in due]

    async def reping_at(self, escalation_id: int, at: datetime) -> None:
        escalation = self._escalations.get(escalation_id)
        if escalation is None or escalation.state != State.OPEN:
            return
        if escalation.reping_at is None or escalation.reping_at > at:
            escalation.reping_at = at

    async def live_escalations(self) -> list[EscalationView]:
        live = [e for e in self._escalations.values() if e.state.live]
        return [e.view() for e in sorted(live, key=lambda e: (e.created_at, e.id))]

    async def forget_deliveries(self, before: datetime) -> int:
        done = [i for i, s in self._outbox.items() if s.done_before(before)]
        for outbox_id in done:
            del self._outbox[outbox_id]
        staff = [i for i, s in self._staff_outbox.items() if s.done_at and s.done_at < before]
        for outbox_id in staff:
            del self._staff_outbox[outbox_id]
        old = [delivery for delivery, at in self._delivered.items() if at < before]
        for delivery in old:
            del self._delivered[delivery]
        return len(old)

    async def undelivered(self, *, platforms: set[str], before: datetime) -> list[Undelivered]:
        waiting = [
            s
            for s in self._outbox.values()
            if s.waiting and s.at < before and s.row.key.platform in platforms
        ]
        return [
            Undelivered(
                s.reply.id,
                s.reply.text,
                Unanswered(s.row.id, s.row.key, s.row.customer_id, s.reply.reply_to, s.at),
                s.at,
                answer_id=s.answer_id,
                proposal=s.reply.proposal,
                offer_person=s.reply.offer_person,
                ping=s.ping,
            )
            for s in sorted(waiting, key=lambda s: s.at)
        ]

    async def is_undelivered(self, outbox_id: str) -> bool:
        sent = self._outbox.get(outbox_id)
        return sent is not None and sent.waiting

    async def give_up(self, outbox_id: str, *, now: datetime) -> bool:
        sent = self._outbox.get(outbox_id)
        if sent is None or not sent.waiting:
            return False
        sent.given_up_at = now
        return True

    async def delivered(self, marks: Mapping[str, str | None], *, now: datetime) -> None:
        for outbox_id, message_id in marks.items():
            sent = self._outbox.get(outbox_id)
            if sent is not None and sent.delivered_at is None:
                sent.delivered_at, sent.message_id = now, message_id

    async def is_active(self, key: ConversationKey) -> bool:
        return self._open_at(key) is not None

    async def history(self, key: ConversationKey) -> list[Turn]:
        at_key = [c for c in self._conversations if c.key == key]
        return list(at_key[-1].turns) if at_key else []

    async def keep_files(
        self, conversation_id: int, files: Sequence[Kept], *, now: datetime
    ) -> None:
        row = self._by_id(conversation_id)
        for kept in files:
            row.files.setdefault(kept.sha256, kept)

    async def file_data(self, conversation_id: int, ids: Collection[str]) -> dict[str, bytes]:
        files = self._by_id(conversation_id).files
        return {i: files[i].data for i in ids if i in files}

    async def strip_files(self, conversation_id: int, turns: Sequence[Turn]) -> None:
        row = self._by_id(conversation_id)
        by_seq = {t.seq: t for t in turns}
        row.turns = [
            replace(t, content=by_seq[t.seq].content, tokens=by_seq[t.seq].tokens)
            if t.seq in by_seq
            else t
            for t in row.turns
        ]

    async def escalation_files(self, escalation_id: int) -> list[Kept]:
        escalation = self._escalations.get(escalation_id)
        return list(escalation.conversation.files.values()) if escalation is not None else []

    def _by_id(self, conversation_id: int) -> _Conversation:
        [row] = [c for c in self._conversations if c.id == conversation_id]
        return row


def _add(row: _Conversation, turns: tuple[Turn, ...] | list[Turn], *, now: datetime) -> None:
    first = len(row.turns)
    row.turns.extend(replace(t, seq=first + i) for i, t in enumerate(turns))
    row.updated_at = now


def _unanswered(row: _Conversation) -> bool:
    return bool(row.turns) and row.turns[-1].kind == Kind.CUSTOMER
