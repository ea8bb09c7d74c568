"""The ports the engine drives: conversation storage and the language model.

Both are protocols so the engine never imports SQLAlchemy or the Anthropic SDK; ``storage/`` and
``core/claude.py`` implement them, and tests drive the real implementations against local fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from core.escalation import State
from core.files import Kept
from core.stream import ClaudeEvents
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
    """The open conversation a customer turn landed in, as it stood after storing that turn.

    ``window`` holds the turns Claude may see (kinds in ``core.window.SEEN``) from
    ``window_start`` on, the new customer turn included; ``escalation`` is the live one, if any.
    """

    id: int
    key: ConversationKey
    topic: str | None
    window_start: int
    fresh: bool
    human_active: bool = False
    dont_know_streak: int = 0
    escalation: EscalationView | None = None
    window: tuple[Turn, ...] = ()
    relayed: str | None = None
    """The staff outbox id ``begin_turn`` kept the turn's relay under (``None``: none)."""


@dataclass(frozen=True, slots=True)
class HandOff:
    """A turn's request for people: open an escalation, or update the live one."""

    reason: str
    summary: str
    customer_id: str
    message_id: str
    reping_at: datetime
    cause: str = ""
    """What set it off, as a closed label (``core.metrics.ESCALATIONS``)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """What ``finish_turn`` stored: the escalation a hand-off opened or updated, and the id
    of the turn ``TurnWrites.answer`` named (what 👍 and 👎 rate)."""

    escalation: Escalation | None = None
    answer_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A customer turn stored without an answer (the process handling it died mid-turn)."""

    conversation_id: int
    key: ConversationKey
    customer_id: str
    message_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Outbound:
    """A reply the customer is meant to see, kept in the outbox with the turn that wrote it
    until the platform accepted it. ``id`` is chosen by the writer (``new_outbox_id``);
    ``reply_to`` is the platform message id of the customer turn it answers."""

    id: str
    text: str
    reply_to: str
    at: datetime | None = None
    """When it was written (``None``: the turn's time). The outbox watcher counts a reply's
    age from here, so a turn that took long is not redelivered while it posts."""
    proposal: int | None = None
    """The proposal whose Confirm and Cancel go under it (the customer's, not the team's)."""
    offer_person: bool = False
    """Whether "Talk to a human" goes under it. What else a late post needs to read like an
    on-time one, the store adds: the answer's id (👍 and 👎) and whether the turn opened an
    escalation (the team's ping)."""


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A reply stored in the outbox and not yet accepted by the platform: ``turn`` says where
    and to whom (the customer turn it answers), ``at`` when it was stored. The rest redraws
    it as it was meant to be posted: ``answer_id`` (👍 and 👎), ``proposal`` (Confirm and
    Cancel, if it is still waiting), ``offer_person`` ("Talk to a human"), ``ping`` (its turn
    opened an escalation: the team is pinged with it, outside DMs)."""

    id: str
    text: str
    turn: Unanswered
    at: datetime
    answer_id: int | None = None
    proposal: int | None = None
    offer_person: bool = False
    ping: bool = False


def new_outbox_id() -> str:
    return uuid.uuid4().hex


STAFF_LEASE = timedelta(minutes=2)
"""How long a try holds a staff outbox post (the first one from its writing on): no replica
takes it meanwhile. Above the SDKs' 30 s timeouts, so a slow post is not checked and posted
again while it may still land."""


class StaffKind(StrEnum):
    """What the staff outbox holds: a DM customer's message for the staff thread (``relay``),
    who decided a proposal there (``decision``), a staff reply for the customer's DM
    (``reply``); a notice to re-draw is a flag on its escalation (``notice``)."""

    RELAY = "relay"
    DECISION = "decision"
    REPLY = "reply"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class StaffOutbound:
    """A post between a DM and its escalation's staff thread, written with the change that
    caused it and kept until the platform took it. ``author_id``: the customer (a relay) or
    the staff member (a decision, a reply, whose ``author_name`` the customer reads)."""

    id: str
    kind: StaffKind
    author_id: str
    text: str
    author_name: str = ""


CLOCK_SKEW = timedelta(seconds=5)
"""How far a platform's clock may be from ours."""


@dataclass(frozen=True, slots=True)
class StaffPending:
    """A staff outbox post not taken by the platform yet, or (``kind`` ``notice``) a notice
    whose last re-draw has not got through. ``at``: when it was written (the notice: when
    its state changed); ``due``: when it may be tried again; ``tries``: how often it was
    taken. ``expired``: older than the give-up limit (set by the watcher)."""

    id: str
    kind: StaffKind
    escalation: EscalationView
    author_id: str
    author_name: str
    text: str
    at: datetime
    due: datetime
    tries: int = 0
    expired: bool = False

    @property
    def since(self) -> datetime:
        """When the look for it on the platform starts (aware UTC): when it was written, less
        ``CLOCK_SKEW``. An earlier post that reads the same (a customer's "ok" twice) is not
        taken for it."""
        return (self.at - CLOCK_SKEW).replace(tzinfo=UTC)


def notice_redraw(view: EscalationView) -> StaffPending:
    """The re-draw ``view``'s notice waits for, as the staff outbox's watcher sees it."""
    assert view.redraw_at is not None
    at = view.redraw_at
    return StaffPending(f"notice:{view.id}", StaffKind.NOTICE, view, "", "", "", at, at)


@dataclass(frozen=True, slots=True)
class TurnWrites:
    """Everything one customer turn writes after its customer turn, committed together.

    A conversation field left ``None`` is unchanged; with nothing changed, nothing is updated.
    """

    turns: tuple[Turn, ...] = ()
    topic: str | None = None
    window_start: int | None = None
    dont_know_streak: int | None = None
    hand_off: HandOff | None = None
    refused: tuple[int, ...] = ()
    """Sequence numbers of customer turns Claude refused, to store as ``Kind.REFUSED``."""
    answer: int | None = None
    """Which of ``turns`` is the answer the customer may rate (its id comes back)."""
    reply: Outbound | None = None
    """What the customer is to be told, into the outbox (written even when nothing else is)."""

    @property
    def empty(self) -> bool:
        """Nothing to write: ``finish_turn`` then touches nothing."""
        fields = (self.topic, self.window_start, self.dont_know_streak)
        written = self.turns or self.refused or self.hand_off or self.reply
        return not written and fields == (None,) * 3


class ConversationStore(Protocol):
    """Where conversations, their turns, deliveries and escalations live.

    The store persists; the core decides. Escalation states only change through
    ``transition``, a compare-and-set the desk drives with ``core.escalation.after``.
    """

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
        """Claim the delivery and persist the customer's turn in one transaction.

        With ``relay``, in a DM (``message.direct``) whose live escalation has a notice, the
        relay for its staff thread goes into the staff outbox in that transaction too, under
        ``relay.id`` (``Conversation.relayed``).

        Returns ``None`` when this platform message id was seen before. Opens a new conversation
        when none is open at the key, when ``restart`` is set, or when the open one has been idle
        longer than ``idle_after`` — unless the open one has a live escalation, which keeps it
        (and ``fresh`` is False). A turn that opened a fresh conversation because of ``restart``
        is stored with kind ``restart``; a kept conversation stores ``turn`` as given.
        """
        ...

    async def finish_turn(
        self, conversation_id: int, writes: TurnWrites, *, now: datetime
    ) -> Finished:
        """Persist everything a turn wrote in one transaction: all of it or none of it.

        With a ``hand_off`` this opens an escalation (state ``open``, re-ping due at
        ``reping_at``), or, when the conversation already has a live one, appends the reason
        and replaces the summary of that one (``new`` False). Returns that escalation with its
        id (``None`` without a hand-off), and the stored id of ``writes.answer``.
        """
        ...

    async def escalation(self, escalation_id: int) -> EscalationView | None: ...

    async def escalation_at(self, staff: StaffPost) -> EscalationView | None:
        """The escalation whose staff notification is ``staff``."""
        ...

    async def attach_staff_post(self, escalation_id: int, staff: StaffPost) -> None: ...

    async def transition(
        self, escalation_id: int, *, expected: State, to: State, staff_id: str, now: datetime
    ) -> EscalationView | None:
        """Move an escalation from ``expected`` to ``to`` if it is still in ``expected``.

        Records ``staff_id`` as the claimer (``to`` live) or closer (``to`` closed, which also
        hands the conversation back to the bot) and cancels the re-ping. Returns the escalation
        as it now stands, or ``None`` when it is unknown or no longer in ``expected``.
        """
        ...

    async def staff_turn(
        self,
        key: ConversationKey,
        turn: Turn,
        *,
        now: datetime,
        reply: StaffOutbound | None = None,
    ) -> bool:
        """Store a support-team message in the open conversation at ``key``.

        While an escalation is live this also marks the conversation as handled by a person
        and cancels the pending re-ping. ``reply`` (for the customer's DM) goes into the staff
        outbox in the same transaction, under the conversation's newest escalation. False for
        a duplicate delivery or no conversation.
        """
        ...

    async def staff_waiting(self, *, platforms: set[str]) -> list[StaffPending]:
        """The staff outbox's posts on ``platforms`` neither delivered nor given up, and the
        notices whose re-draw has not got through, oldest first."""
        ...

    async def take_staff(self, outbox_id: str, *, tries: int, until: datetime) -> bool:
        """Take the post for one try if it has been taken ``tries`` times so far and is still
        waiting: counted, and not due again before ``until`` (so no other replica tries it
        meanwhile). Whether this caller has it."""
        ...

    async def staff_retry(self, outbox_id: str, *, at: datetime) -> None:
        """The try failed: the post is due again at ``at``."""
        ...

    async def staff_done(
        self, outbox_id: str, *, now: datetime, message_id: str | None, given_up: bool = False
    ) -> bool:
        """The platform took the post (as ``message_id``, if known), or it is given up;
        whether this call marked it (of two replicas marking it at once, one does)."""
        ...

    async def notice_drawn(self, escalation_id: int, *, seen: datetime) -> None:
        """The notice was re-drawn (or given up) from the state changed at ``seen``: no more
        re-draws, unless the state changed again since."""
        ...

    async def due_repings(self, now: datetime, *, platforms: set[str]) -> list[EscalationView]:
        """Take (so no other replica also takes) the unclaimed escalations due a re-ping
        on ``platforms``; a replica takes only those it can post to."""
        ...

    async def reping_at(self, escalation_id: int, at: datetime) -> None:
        """Schedule the escalation's re-ping at ``at`` (its post failed), if it is still open
        and none is due sooner."""
        ...

    async def live_escalations(self) -> list[EscalationView]:
        """Open and claimed escalations, oldest first."""
        ...

    async def forget_deliveries(self, before: datetime) -> int:
        """Forget the platform message ids recorded before ``before`` (no platform redelivers
        that late), and the outbox's and staff outbox's posts delivered (or given up) before
        then; how many ids were forgotten."""
        ...

    async def unanswered(
        self,
        *,
        platforms: set[str],
        since: datetime,
        before: datetime,
        key: ConversationKey | None = None,
    ) -> list[Unanswered]:
        """Open conversations on ``platforms`` (at ``key`` only, given one) whose last stored
        turn is a customer turn from between ``since`` and ``before`` that nobody answered,
        oldest first. Left out: those a person has (``core.escalation.people_have_it``) and
        those whose escalation changed since that message (a person had them, and the bot
        kept quiet on purpose)."""
        ...

    async def undelivered(self, *, platforms: set[str], before: datetime) -> list[Undelivered]:
        """Replies in the outbox on ``platforms`` stored before ``before`` that no platform
        has accepted yet and nobody gave up, oldest first."""
        ...

    async def is_undelivered(self, outbox_id: str) -> bool:
        """Whether the outbox still holds reply ``outbox_id`` as waiting for delivery (neither
        delivered nor given up)."""
        ...

    async def give_up(self, outbox_id: str, *, now: datetime) -> bool:
        """Stop trying to deliver reply ``outbox_id``: marked given up at ``now`` if it is
        still waiting. Whether this call did it (of two replicas giving it up, one does)."""
        ...

    async def delivered(self, marks: Mapping[str, str | None], *, now: datetime) -> None:
        """Mark each reply in ``marks`` (outbox id: platform message id, ``None`` when the
        platform did not say) delivered at ``now``, in one transaction; a reply marked
        already stays as it was."""
        ...

    async def resume_turn(self, conversation_id: int) -> Conversation | None:
        """The open conversation as ``begin_turn`` returns it, if its last stored turn is still
        an unanswered customer turn (``None`` otherwise: somebody answered it meanwhile)."""
        ...

    async def is_active(self, key: ConversationKey) -> bool:
        """Whether a conversation is open at ``key``."""
        ...

    async def history(self, key: ConversationKey) -> list[Turn]:
        """Every stored turn of the newest conversation at ``key``, notices included."""
        ...

    async def keep_files(
        self, conversation_id: int, files: Sequence[Kept], *, now: datetime
    ) -> None:
        """Keep a turn's accepted files with the conversation (deleted with it); a file the
        conversation already holds (same SHA-256) is kept once."""
        ...

    async def file_data(self, conversation_id: int, ids: Collection[str]) -> dict[str, bytes]:
        """The bytes of the conversation's kept files among ``ids`` (SHA-256), by id."""
        ...

    async def strip_files(self, conversation_id: int, turns: Sequence[Turn]) -> None:
        """Store ``turns``' content (their files replaced by placeholders) and token counts in
        place of what the conversation's turns of the same ``seq`` held; the files stay kept."""
        ...

    async def escalation_files(self, escalation_id: int) -> list[Kept]:
        """Every file kept in the escalation's conversation, oldest first (for staff)."""
        ...


class TurnLocks(Protocol):
    """One turn at a time per conversation across processes (the replicas of one database)."""

    def hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Wait for, then hold, conversation ``key``'s lock until the block ends; yields
        whether it holds it (a lock that cannot be had is logged and the block runs all the
        same)."""
        ...

    def try_hold(self, key: str) -> AbstractAsyncContextManager[bool]:
        """Hold conversation ``key``'s lock if it is free now: yields whether it was."""
        ...


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
        events: ClaudeEvents | None = None,
    ) -> LLMResult:
        """One Claude call with retries; raises ``LLMError`` when it cannot produce an answer.

        ``events`` hears the reply's words and tool calls as they arrive. Once it has heard
        words, a failure is not retried: the customer has read them, and a second attempt
        would repeat or contradict them."""
        ...
