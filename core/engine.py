"""``Engine``: one customer message in, one reply (or deliberate silence) out.

The order of a turn: one at a time per conversation → ``begin_turn`` (one transaction: claim
the delivery, store the customer's turn, read the conversation and its window) → stay quiet if a
person is handling it → topic → Claude (or the knowledge base) → the hand-off note, if any →
``finish_turn`` (one transaction: the answer, tool result or notice, the escalation, and the
changed conversation fields, all or nothing) → reply. A turn that breaks anywhere after
``begin_turn`` stores none of its work and answers with the configured fallback instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from core import files, hours, logs, prompt, tokens, window
from core.actions import (
    Access,
    AuditEntry,
    Caller,
    Proposal,
    ProposalState,
    Toolbox,
    ToolOutcome,
    ToolSpec,
    describe_call,
)
from core.clock import utcnow
from core.config import Persona
from core.escalation import people_have_it
from core.files import Checked, FileLimits, Kept
from core.flood import FloodGate, Hold
from core.knowledge import KnowledgeBase
from core.metrics import ESCALATIONS, FALLBACKS, REDELIVERED, TURN_SECONDS, TURNS
from core.outbox import Marks, give_up
from core.ports import (
    LLM,
    Conversation,
    ConversationStore,
    Finished,
    HandOff,
    LLMError,
    LLMResult,
    Outbound,
    StaffKind,
    StaffOutbound,
    TurnLocks,
    TurnWrites,
    Unanswered,
    new_outbox_id,
)
from core.stream import AnswerSink, Shown
from core.text import clean, fold, sanitize
from core.topics import TopicDetector
from core.types import (
    Attachment,
    ConversationKey,
    Decision,
    IncomingMessage,
    Kind,
    PendingAction,
    Reply,
    StaffPost,
    Turn,
    Usage,
)

log = logging.getLogger("supportbot.engine")

_TRUNCATED = {"max_tokens", "model_context_window_exceeded", "pause_turn"}
_PUNCTUATION = " .!?"
CRASHED = "The bot hit an error (see its log)"
HELD = "The database was unavailable: the customer got the fallback, no answer"
REDELIVERED_WITHIN = timedelta(hours=1)
"""How old an unanswered message a platform delivers again may be, to be answered then."""
HELD_LIMIT = 1000
"""Messages kept in memory while the database refuses them; past this the oldest goes."""
_CLAUDE_ASKED = "Claude asked for a person"
PROPOSED = "Shall I go ahead with this?"
WAITING = (
    "Not run yet: the customer now sees exactly this action with Confirm and Cancel buttons. "
    "Tell them in a sentence what it will do; you will hear the outcome once they decide. "
    "Do not say it is done."
)
STAFF_PROPOSED = (
    "This change needs the support team's approval first; you'll hear here as soon as they decide."
)
WAITING_FOR_STAFF = (
    "Not run yet: the support team must approve it first, and they now see exactly this "
    "action with Confirm and Cancel buttons. Tell the customer in a sentence what it will do "
    "and that the team will approve or decline it; you will hear the outcome once they decide. "
    "Do not say it is done."
)
ONE_AT_A_TIME = (
    "Not run: only one change can wait for the customer's confirmation at a time. Propose "
    "this again once they have decided on the first."
)
NO_SUCH_TOOL = "No tool of that name is available now; do not try it again in this conversation."
GONE = "That request no longer exists, so nothing was changed."
NOT_YOURS = "Only the customer who asked can confirm or cancel this."
STAFF_DECIDES = "Only the support team can approve or decline this change."
EXPIRED = "This request has expired, so nothing was changed. Send a message if you'd still like it."
STAFF_LINE_LIMIT = 500
"""Characters of a tool's result in what staff are told of a decision."""
DECIDED = {
    ProposalState.CONFIRMED: "This was already confirmed.",
    ProposalState.CANCELLED: "This was already cancelled.",
    ProposalState.EXPIRED: EXPIRED,
}


@dataclass(frozen=True, slots=True)
class Limits:
    token_budget: int
    idle_timeout: timedelta
    max_input_chars: int
    reping_after: timedelta = timedelta(minutes=10)
    cache_ttl_prefix: str = "1h"
    cache_ttl_conversation: str = "1h"
    files: FileLimits = field(default_factory=FileLimits)


@dataclass(slots=True)
class _Turn:
    """What one customer turn has gathered so far, and what it will write when finished."""

    conversation: Conversation
    message: IncomingMessage
    text: str
    now: datetime
    files: tuple[Kept, ...] = ()
    topic: str | None = None
    history: list[Turn] = field(default_factory=list)
    stored: list[Turn] = field(default_factory=list)
    dont_know_streak: int | None = None
    hand_off: HandOff | None = None
    why: str = ""
    """The hand-off's reason as a metrics label (``core.metrics.ESCALATIONS``)."""
    refused: tuple[int, ...] = ()
    pending: tuple[Turn, ...] = ()
    """Turns Claude reads after the customer's (a Confirm's outcome), stored with the turn."""
    shown: Shown | None = None
    """What the customer has seen of the answer so far, when it streams to them."""
    answer: int | None = None
    """Which of ``stored`` is the answer the customer may rate (Claude's or the knowledge
    base's); a hand-off is not rated."""
    checked: Checked = field(default_factory=Checked)
    kind: Kind = Kind.CUSTOMER
    late: bool = False
    """Answered after the persona's late limit: the reply starts with its apology."""
    deliver: bool = True
    """Whether the reply goes to the outbox (not when the customer was answered already)."""
    reply: Outbound | None = None

    def writes(self) -> TurnWrites:
        """The turn's writes; a conversation field that did not change is left out."""
        conversation = self.conversation
        start = self.history[0].seq if self.history else None
        return TurnWrites(
            turns=tuple(self.stored),
            topic=self.topic if self.topic != conversation.topic else None,
            window_start=start if start != conversation.window_start else None,
            dont_know_streak=(
                self.dont_know_streak
                if self.dont_know_streak != conversation.dont_know_streak
                else None
            ),
            hand_off=self.hand_off,
            refused=self.refused,
            answer=self.answer if self.hand_off is None else None,
            reply=self.reply,
        )

    def again(self) -> _Turn:
        """The turn from its start, for a fallback after it broke: none of its work kept."""
        return _Turn(
            self.conversation,
            self.message,
            self.text,
            self.now,
            shown=self.shown,
            checked=self.checked,
            kind=self.kind,
            late=self.late,
            deliver=self.deliver,
        )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What came of a decided proposal: the ``note`` Claude reads next, and what the customer
    is ``told`` instead while people have the conversation (Claude does not answer then);
    ``staff``, what a DM's staff thread is told ``by`` whom."""

    note: Turn
    told: str
    staff: str = ""
    by: str = ""


class Engine:
    """Implements ``ConversationPort`` for the adapters. With ``llm=None`` it runs in limited
    mode: answers come from the persona's knowledge entries and everything else is escalated.
    """

    def __init__(
        self,
        *,
        store: ConversationStore,
        llm: LLM | None,
        persona: Persona,
        limits: Limits,
        locks: TurnLocks | None = None,
        clock: Callable[[], datetime] = utcnow,
        tools: Toolbox | None = None,
        flood: FloodGate | None = None,
        rate_answers: bool = False,
    ) -> None:
        self._store = store
        # Answers carry the id 👍 and 👎 rate only where someone stores the ratings.
        self._rate_answers = rate_answers
        self._flood = flood
        self._turn_locks = locks
        self._llm = llm
        self._tools = tools
        self._persona = persona
        self._limits = limits
        self._clock = clock
        self._topics = TopicDetector(persona.topics)
        self._knowledge = KnowledgeBase(persona.knowledge, min_score=persona.knowledge_min_score)
        # Phrases are matched in core.text.fold's form, on both sides: "TALK TO A HUMAN",
        # "ｓｔａｒｔ ｏｖｅｒ" and "talk to a hu\u200bman" all count.
        self._fresh_phrases = {fold(p).strip(_PUNCTUATION) for p in persona.fresh_start_phrases}
        self._person_phrases = [fold(p) for p in persona.human_request_phrases]
        self._dont_know = [fold(m) for m in persona.dont_know_markers]
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._holders: dict[str, tuple[asyncio.Task[Any] | None, bool]] = {}
        """Which task holds each conversation now, and whether across replicas too."""
        self._held: dict[str, tuple[IncomingMessage, datetime]] = {}
        self._calls: dict[str, asyncio.Task[LLMResult]] = {}
        """Each conversation's Claude call answering the customer now (``stop`` cancels it)."""
        self._stopping: set[str] = set()
        self._marks = Marks(store, clock=clock)

    @property
    def files(self) -> FileLimits:
        """What customers may send; adapters fetch no more than ``fetch_bytes`` of a file."""
        return self._limits.files

    @property
    def loading_messages(self) -> tuple[str, ...]:
        """The persona's lines for a platform's loading status while a turn runs."""
        return tuple(self._persona.loading_messages)

    @property
    def suggested_prompts(self) -> tuple[tuple[str, str], ...]:
        """The persona's suggested prompts, as (title, message)."""
        return tuple((p.title, p.message) for p in self._persona.suggested_prompts)

    @property
    def suggested_prompts_title(self) -> str:
        """The heading over the suggested prompts (empty: none)."""
        return self._persona.suggested_prompts_title

    def stop(self, key: ConversationKey) -> bool:
        """The customer stopped the answer being written at ``key``: its Claude call is
        cancelled and the turn ends with the persona's ``stopped`` sentence after what was
        shown. Whether a call was running."""
        call = self._calls.get(str(key))
        if call is None or call.done():
            return False
        self._stopping.add(str(key))
        call.cancel()
        return True

    async def is_active(self, key: ConversationKey) -> bool:
        return await self._store.is_active(key)

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        """Hold the conversation at ``key`` for a whole turn, its posts included, so that no
        replica answers its next message, or checks for and posts its reply, before the reply
        is on the platform. The engine's own calls within it take no second lock. Yields
        whether the turn may go on (without ``wait``: only if no other replica holds it)."""
        return self._serial(str(key), wait=wait)

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        logs.conversation.set(str(message.key))
        started = time.perf_counter()
        async with self._serial(str(message.key)) as held:
            reply, outcome = await self._handle(message, sink=sink, held=held)
        took = time.perf_counter() - started
        TURNS.labels(outcome).inc()
        TURN_SECONDS.observe(took)
        log.info("message %s: %s in %.2f s", message.message_id, outcome, took)
        return reply

    async def recover(
        self, unanswered: Unanswered, *, direct: bool, late_after: timedelta | None
    ) -> Reply | None:
        """Answer a customer turn stored and never answered, by a dead process or held back
        by flood control, with any after it (``None``: it has been answered meanwhile, or
        people have the conversation now).

        One older than ``late_after`` starts with the persona's apology for the wait.
        """
        key = unanswered.key
        logs.conversation.set(str(key))
        late = late_after is not None and self._clock() - unanswered.at > late_after
        async with self._serial(str(key), wait=False) as free:
            if not free:
                return None  # another replica is answering it: looked at again later
            reply = await self._resume(unanswered, direct=direct, late=late)
        if reply is not None:
            TURNS.labels("recovered").inc()
        return reply

    async def delivered(self, outbox_id: str, message_id: str | None) -> None:
        self._marks.add(outbox_id, message_id)

    async def settle(self) -> None:
        """Write the delivered marks still waiting (``core.outbox``): at shutdown, and in
        tests before they read the outbox."""
        await self._marks.settle()

    async def redeliver(
        self,
        outbox_id: str,
        key: ConversationKey,
        send: Callable[[], Awaitable[str | None]],
        *,
        late: bool,
    ) -> bool:
        logs.conversation.set(str(key))
        # Only under the conversation's lock, and only if it is free: the turn's own tries and
        # another replica's watcher never check and post the same reply at once.
        async with self._serial(str(key), wait=False) as free:
            if not free:
                return False  # another turn holds it (a live replica): tried again later
            sent = await self._send_once(outbox_id, send)
        if sent and late:
            log.info("reply %s in %s delivered late", outbox_id, key)
        return sent

    async def give_up(self, outbox_id: str, key: ConversationKey, why: str) -> None:
        try:
            await give_up(self._store, outbox_id, key, why, now=self._clock())
        except Exception as exc:
            # Still waiting: the outbox watcher offers it again, and it is given up then.
            log.warning("giving up reply %s failed (%s)", outbox_id, type(exc).__name__)

    async def pending(self, proposal_id: int) -> PendingAction | None:
        toolbox = self._tools
        proposal = await toolbox.store.proposal(proposal_id) if toolbox is not None else None
        waiting = (
            proposal is not None
            and proposal.state == ProposalState.PENDING
            and not proposal.staff_approval
            and self._clock() < proposal.expires_at
        )
        return PendingAction(proposal_id) if waiting else None

    async def _send_once(self, outbox_id: str, send: Callable[[], Awaitable[str | None]]) -> bool:
        if self._marks.waiting(outbox_id) or not await self._store.is_undelivered(outbox_id):
            return True  # delivered meanwhile, by this replica or another
        posted = await send()
        if posted is None:
            return False
        await self.delivered(outbox_id, posted or None)
        REDELIVERED.inc()
        return True

    async def _resume(self, unanswered: Unanswered, *, direct: bool, late: bool) -> Reply | None:
        """Answer ``unanswered`` and the customer turns after it, holding its conversation."""
        conversation = await self._store.resume_turn(unanswered.conversation_id)
        if conversation is None or not conversation.window:
            return None
        now = self._clock()
        last = conversation.window[-1]
        message = IncomingMessage(
            key=unanswered.key,
            author_id=unanswered.customer_id,
            text=last.text,
            # The reply answers the last of the waiting messages, and comes after it: the
            # outbox looks for it there, not after the first (a flood's catch-up).
            message_id=last.message_id or unanswered.message_id,
            direct=direct,
        )
        turn = _Turn(conversation, message, last.text, now, late=late)
        state = conversation.escalation.state if conversation.escalation else None
        if people_have_it(human_active=conversation.human_active, state=state):
            return None
        try:
            reply = await self._respond(turn, None)
        except Exception:
            log.exception("the recovered turn failed in %s: fallback", unanswered.key)
            reply = await self._crashed(turn)
        log.info(
            "message %s: recovered, %s after it was sent", message.message_id, now - unanswered.at
        )
        # Not relayed to a DM's staff thread: the message was when it came in.
        return reply

    async def _redelivered(self, message: IncomingMessage, now: datetime) -> Reply | None:
        """A platform delivers a message again that was stored and never answered (its
        process died mid-turn): answer it now, rather than drop it as a duplicate."""
        found = await self._store.unanswered(
            platforms={message.key.platform},
            since=now - REDELIVERED_WITHIN,
            before=now,
            key=message.key,
        )
        mine = [u for u in found if u.message_id == message.message_id]
        if not mine:
            return None
        return await self._resume(mine[0], direct=message.direct, late=False)

    async def decide(
        self,
        proposal_id: int,
        *,
        user_id: str,
        confirm: bool,
        is_staff: Callable[[], Awaitable[bool]],
    ) -> Decision:
        """Confirm or Cancel under a proposed write: run exactly the stored call, once, and let
        Claude go on with its outcome (or hear it was declined)."""
        toolbox = self._tools
        proposal = await toolbox.store.proposal(proposal_id) if toolbox is not None else None
        if toolbox is None or proposal is None:
            return Decision(note=GONE)
        if proposal.staff_approval:
            if not await is_staff():
                return Decision(note=STAFF_DECIDES, closed=False)
        elif user_id != proposal.customer_id:
            return Decision(note=NOT_YOURS, closed=False)
        async with self._serial(str(proposal.key)):
            return await self._decide(proposal, toolbox, user_id=user_id, confirm=confirm)

    async def _decide(
        self, proposal: Proposal, toolbox: Toolbox, *, user_id: str, confirm: bool
    ) -> Decision:
        now = self._clock()
        store = toolbox.store
        if now >= proposal.expires_at:
            if await store.settle(proposal.id, to=ProposalState.EXPIRED, by=user_id, now=now):
                await self._audit_decision(proposal, "expired", user_id)
                return Decision(note=EXPIRED)
        elif await store.settle(
            proposal.id,
            to=ProposalState.CONFIRMED if confirm else ProposalState.CANCELLED,
            by=user_id,
            now=now,
        ):
            return await self._decided(proposal, toolbox, user_id=user_id, confirm=confirm)
        # Decided already (a doubled press, the other button, or expired before).
        current = await store.proposal(proposal.id)
        state = current.state if current is not None else ProposalState.EXPIRED
        return Decision(note=DECIDED.get(state, GONE))

    async def _decided(
        self, proposal: Proposal, toolbox: Toolbox, *, user_id: str, confirm: bool
    ) -> Decision:
        """The press won: run the call (Confirm), then the conversation's next turn."""
        spec = toolbox.spec(proposal.tool)
        title = spec.title
        by_staff = proposal.staff_approval
        if confirm:
            yes = "The support team approved it" if by_staff else "The customer pressed Confirm"
            ran = await toolbox.port.call(
                spec, proposal.arguments, Caller(proposal.key.platform, proposal.customer_id)
            )
            await self._audit_decision(
                proposal, "error" if ran.is_error else "ok", user_id, detail=ran.text
            )
            result = _shortened(ran.text, STAFF_LINE_LIMIT)
            if ran.is_error:
                note = f"{yes}, but {title} failed: {ran.text}"
                told = f"Sorry, {title} could not be done just now. The support team will help."
                staff = f"confirmed {title}, but it failed: {result}"
            else:
                note = f"{yes} and {title} ran. Result: {ran.text}"
                told = f"Done: {title}."
                staff = f"confirmed {title}: it ran. Result: {result}"
            if by_staff:
                told = f"The support team approved this change. {told}"
        else:
            no = "The support team declined it" if by_staff else "The customer pressed Cancel"
            await self._audit_decision(proposal, "cancelled", user_id)
            note = (
                f"{no}: {proposal.tool} was not run and nothing changed. "
                "Acknowledge it and ask what they would like instead."
            )
            told = f"{title} was not done, and nothing changed."
            told = f"The support team declined this change: {told}" if by_staff else told
            staff = f"cancelled {title}: nothing was run."
        message = IncomingMessage(
            key=proposal.key,
            author_id=proposal.customer_id,
            text="Confirm" if confirm else "Cancel",
            message_id=f"proposal:{proposal.id}",
            direct=proposal.direct,
        )
        note_turn = _turn("user", "", Kind.TOOL_RESULT, content=[prompt.system_note(note)])
        decided = _Outcome(note_turn, told, staff=staff, by=user_id)
        reply, outcome = await self._handle(message, decided)
        TURNS.labels(outcome).inc()
        return Decision(reply=reply, key=proposal.key, outcome=staff)

    async def _audit_decision(
        self, proposal: Proposal, outcome: str, actor: str, *, detail: str = ""
    ) -> None:
        await self._record(
            proposal.conversation_id,
            proposal.key,
            proposal.customer_id,
            proposal.tool,
            proposal.arguments,
            outcome,
            detail,
            actor,
        )

    @asynccontextmanager
    async def _serial(self, key: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """One turn at a time at ``key``: in this process, and across replicas with ``locks``.

        Yields whether the turn may go on: always with ``wait``; without it (a recovery) only
        when no other replica holds the conversation, which then is still answering it.
        """
        task = asyncio.current_task()
        holder = self._holders.get(key)
        if holder is not None and holder[0] is task:
            # Within the task's own ``hold``: held across replicas already, or gone on without
            # the lock after waiting for it. Not waited for twice: only a retry of the turn's
            # post (``wait=False``) takes it now, if it is free.
            if holder[1] or wait:
                yield holder[1]
                return
            async with self._held_across(key, wait=False) as held:
                yield held
            return
        # asyncio.Lock wakes waiters first come, first served: arrival order within a key.
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock, self._held_across(key, wait=wait) as held:
                self._holders[key] = (task, held)
                try:
                    yield held
                finally:
                    del self._holders[key]
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    def _held_across(self, key: str, *, wait: bool) -> AbstractAsyncContextManager[bool]:
        if self._turn_locks is None:
            return nullcontext(True)
        return self._turn_locks.hold(key) if wait else self._turn_locks.try_hold(key)

    async def _handle(
        self,
        message: IncomingMessage,
        decided: _Outcome | None = None,
        *,
        sink: AnswerSink | None = None,
        held: bool = True,
    ) -> tuple[Reply | None, str]:
        """The reply and the turn's outcome (a ``core.metrics.TURNS`` label). ``decided``: a
        decided proposal's outcome, stored after the customer's turn; ``sink``: where
        Claude's words are shown as they arrive (the reply then continues them); ``held``:
        whether the turn holds its conversation's lock across replicas."""
        now = self._clock()
        message = _sanitized(message)
        text = clean(message.text)
        checked = await self._check(message)
        kind, notice = self._classify(text, message, checked)
        try:
            conversation = await self._begin(
                message, text, kind, now, checked, restart=True, relay=_relay(message, decided)
            )
        except Exception:
            log.exception("storing the customer's turn failed in %s: held", message.key)
            self._hold(message, now)
            return Reply(self._persona.fallbacks.unknown), "held"
        if conversation is None:
            if not held:
                # Without the lock a live replica may be answering it now: a duplicate, and
                # the recovery watcher answers it later if its process died.
                return None, "duplicate"
            # Held for this conversation already: a live turn of it is over by now.
            resumed = await self._redelivered(message, now)
            return (resumed, "recovered") if resumed is not None else (None, "duplicate")
        if kind == Kind.RESTART and not conversation.fresh:
            notice = None  # a live escalation keeps the conversation: "start over" is just text
        pending = (decided.note,) if decided is not None else ()
        turn = _Turn(
            conversation, message, text, now, files=checked.kept, pending=pending, checked=checked
        )
        turn.kind = kind
        if sink is not None:
            turn.shown = Shown(sink, handoff_step=self._persona.handoff_step)
        escalation = conversation.escalation
        state = escalation.state if escalation is not None else None
        if people_have_it(human_active=conversation.human_active, state=state):
            await self._keep_quietly(turn)
            if decided is not None:
                return await self._tell_outcome(turn, decided.told), "quiet"
            return self._quiet(turn, checked), "quiet"
        # Counted as the message's turn begins, duplicates and people's conversations aside.
        hold = self._over_the_rate(message) if kind == Kind.CUSTOMER and not pending else None
        if hold is not None:
            await self._keep_quietly(turn)
            return _relayed(turn, self._held_back(turn, hold)), "flooded"
        try:
            await self._store.keep_files(conversation.id, turn.files, now=now)
            reply = await self._respond(turn, notice)
        except Exception:
            # Whatever broke, nothing of this turn was stored, and the customer still gets
            # a next step: never silence, never the error itself.
            log.exception("the turn failed in %s: fallback", message.key)
            reply, outcome = await self._crashed(turn), "crashed"
        else:
            outcome = _outcome(turn, reply)
        return _relayed(turn, replace(reply, files=_shown(turn))), outcome

    def _over_the_rate(self, message: IncomingMessage) -> Hold | None:
        if self._flood is None:
            return None
        return self._flood.take((message.key.platform, message.author_id), time.monotonic())

    def _held_back(self, turn: _Turn, hold: Hold) -> Reply:
        """A message over the customer's rate, stored: one notice for the first of a flood,
        silence for the rest, and the turn that answers them all ``hold.wait`` seconds on.
        The notice is not stored: the stored conversation still ends with the customer's
        messages, which is what the catch-up answers."""
        message = turn.message
        log.info(
            "message %s is over its customer's rate: answered in %.1f s",
            message.message_id,
            hold.wait,
        )
        waiting = Unanswered(
            conversation_id=turn.conversation.id,
            key=message.key,
            customer_id=message.author_id,
            message_id=message.message_id,
            at=turn.now,
        )
        said = self._persona.flood_notice if hold.first else ""
        return Reply(said, catch_up=waiting, catch_up_in=hold.wait)

    async def _tell_outcome(self, turn: _Turn, told: str) -> Reply:
        """People have the conversation, so Claude does not answer: the outcome is kept for
        Claude's later turns and the customer is told it in code's words (staff see it too)."""
        turn.stored += turn.pending
        reply = self._notice(turn, Reply(told))
        try:
            await self._finish(turn, told)
        except Exception:
            # The call ran (or was declined) whatever the store says: the customer hears it.
            log.exception("storing a decided proposal's outcome failed in %s", turn.message.key)
            return _relayed(turn, reply)
        return _relayed(turn, replace(reply, outbox=_outbox(turn)))

    async def _check(self, message: IncomingMessage) -> Checked:
        """The message's fetched files, checked (in a worker thread: decoding takes CPU)."""
        if not message.attachments:
            return Checked()
        checked = await asyncio.to_thread(
            files.check, message.attachments, self._limits.files, self._persona.files
        )
        if checked.refusals:
            log.info(
                "%d of %d files refused in %s",
                len(message.attachments) - len(checked.kept),
                len(message.attachments),
                message.key,
            )
        return checked

    def _final(self, turn: _Turn, said: str) -> str:
        """The reply's text as the customer reads it: continuing what was streamed to them,
        then what it says about the turn's files (each refused one, and that accepted ones go
        to the team with a hand-off), after the persona's apology when it comes late."""
        if turn.shown is not None:
            said = turn.shown.final(said)
        checked = turn.checked
        if checked.kept and turn.hand_off is not None:
            said = f"{said}\n\n{self._saved(checked.kept)}"
        if checked.refusals and turn.kind != Kind.ATTACHMENT:
            said = "\n\n".join([said, *checked.refusals])
        if turn.late and said:
            said = f"{self._persona.late_apology}\n\n{said}"
        return said

    def _saved(self, kept: tuple[Kept, ...]) -> str:
        """Told with a hand-off: the team will see the customer's files."""
        what = _what(kept).removeprefix("a ")
        them = "it" if len(kept) == 1 else "them"
        return self._persona.files.saved.format(what=what, them=them)

    async def _keep_quietly(self, turn: _Turn) -> None:
        """Keep the files of a turn people are handling (for the staff relay); a failure is
        logged, and the relay still carries them."""
        try:
            await self._store.keep_files(turn.conversation.id, turn.files, now=turn.now)
        except Exception:
            log.exception("keeping the files failed in %s", turn.message.key)

    async def _begin(
        self,
        message: IncomingMessage,
        text: str,
        kind: Kind,
        now: datetime,
        checked: Checked,
        *,
        restart: bool,
        relay: StaffOutbound | None = None,
    ) -> Conversation | None:
        """Claim the delivery and store the customer's turn (``None``: a duplicate), with
        ``relay`` for a DM's staff thread."""
        return await self._store.begin_turn(
            message,
            _customer_turn(message, text, kind, checked),
            now=now,
            idle_after=self._limits.idle_timeout if message.direct else None,
            restart=restart and kind == Kind.RESTART,
            relay=relay,
        )

    def _hold(self, message: IncomingMessage, now: datetime) -> None:
        """Keep a message the database refused, to store once it is back (``store_held``)."""
        if len(self._held) >= HELD_LIMIT:
            oldest = next(iter(self._held))
            log.error("more than %d messages held: %s is dropped", HELD_LIMIT, oldest)
            del self._held[oldest]
        self._held[message.message_id] = (message, now)

    @property
    def held(self) -> int:
        """How many messages wait for the database (see ``store_held``)."""
        return len(self._held)

    async def store_held(self) -> int:
        """Store the messages the database refused, in arrival order; how many were stored.

        Each got the configured fallback when it came in; now it is kept in its conversation
        with that fallback and handed to the team ("the database was unavailable"), whose
        notice the re-ping watcher posts. Stops at the first one the database still refuses.
        """
        stored = 0
        for message_id, (message, at) in list(self._held.items()):
            async with self._serial(str(message.key)):
                text = clean(message.text)
                checked = await self._check(message)
                kind, _ = self._classify(text, message, checked)
                try:
                    # Stored as it stands: a "start over" said during the outage stays text.
                    conversation = await self._begin(
                        message, text, kind, at, checked, restart=False, relay=_relay(message)
                    )
                except Exception as exc:
                    log.warning(
                        "the database still refuses held messages (%s): %d waiting",
                        type(exc).__name__,
                        len(self._held),
                    )
                    return stored
                del self._held[message_id]
                if conversation is not None:  # None: it was stored before the error came back
                    # The customer got the fallback when it came in: nothing more to send.
                    held = _Turn(conversation, message, text, at, files=checked.kept, deliver=False)
                    await self._keep_quietly(held)
                    await self._crashed(held, reason=HELD)
                    stored += 1
        return stored

    def _classify(
        self, text: str, message: IncomingMessage, checked: Checked
    ) -> tuple[Kind, str | None]:
        """The stored kind of a customer turn, and the notice that answers it without Claude.

        Text with nothing visible in it (only zero-width or combining characters) is empty;
        with a file Claude can see it is a turn all the same ("the customer sent a photo"),
        with only refused files the refusals answer it.
        """
        folded = fold(text)
        if not folded.strip():
            if checked.kept:
                return Kind.CUSTOMER, None
            if message.attachments:
                return Kind.ATTACHMENT, "\n\n".join(checked.refusals)
            return Kind.EMPTY, self._persona.empty_message
        if len(text) > self._limits.max_input_chars:
            return Kind.TOO_LONG, self._persona.too_long
        if folded.strip(_PUNCTUATION) in self._fresh_phrases:
            return Kind.RESTART, self._persona.fresh_start
        return Kind.CUSTOMER, None

    def _quiet(self, turn: _Turn, checked: Checked) -> Reply | None:
        """A person is handling this conversation: say nothing but why a file was refused;
        in a DM, pass the message and its files to staff."""
        staff = _staff_thread(turn)
        said = "\n\n".join(checked.refusals)
        if staff is None and not said:
            return None
        return Reply(said, relay=staff, files=_shown(turn), relayed=turn.conversation.relayed)

    async def _respond(self, turn: _Turn, notice: str | None) -> Reply:
        """Work out the answer, then store everything the turn wrote in one transaction."""
        if notice is not None:
            reply = self._notice(turn, Reply(notice))
        else:
            reply = await self._answer(turn)
        self._mark_dont_know(turn)
        if not self._rate_answers:
            turn.answer = None
        said = self._final(turn, reply.text)
        finished = await self._finish(turn, said, reply.proposal)
        return replace(
            reply,
            text=said,
            escalation=finished.escalation,
            answer_id=finished.answer_id,
            outbox=_outbox(turn),
        )

    def _mark_dont_know(self, turn: _Turn) -> None:
        """Mark the turn's last answer that says the bot does not know (what the knowledge
        lacks, for ``supportbot stats``)."""
        for index in range(len(turn.stored) - 1, -1, -1):
            stored = turn.stored[index]
            if stored.role == "assistant" and stored.kind in (Kind.MODEL, Kind.NOTICE):
                if any(m in fold(stored.text) for m in self._dont_know):
                    turn.stored[index] = replace(stored, dont_know=True)
                return

    async def _finish(
        self, turn: _Turn, said: str = "", proposal: PendingAction | None = None
    ) -> Finished:
        """Store the turn's writes (``finish_turn``), with ``said`` (asking for ``proposal``,
        if any) into the outbox; a new escalation is counted."""
        if said and turn.deliver:
            turn.reply = _outbound(turn, said, proposal, at=self._clock())
        finished = await self._store.finish_turn(turn.conversation.id, turn.writes(), now=turn.now)
        escalation = finished.escalation
        if escalation is not None and escalation.new:
            ESCALATIONS.labels(turn.why).inc()
        return finished

    async def _crashed(self, turn: _Turn, *, reason: str = CRASHED) -> Reply:
        """The configured fallback for a turn that broke, with a hand-off if it can be stored."""
        retry = turn.again()
        try:
            why = "held" if reason == HELD else "crashed"
            said = self._persona.fallbacks.unknown
            reply = await self._escalate(retry, reason, said, why=why, summarize=False)
            said = self._final(retry, reply.text)
            finished = await self._finish(retry, said)
        except Exception:
            log.exception("storing the fallback failed in %s", turn.message.key)
            return Reply(self._final(retry, self._persona.fallbacks.unknown))
        return replace(reply, text=said, escalation=finished.escalation, outbox=_outbox(retry))

    async def _answer(self, turn: _Turn) -> Reply:
        conversation = turn.conversation
        turn.topic = self._topics.detect(turn.text) or conversation.topic
        turn.history = window.fit(list(conversation.window), budget=self._limits.token_budget)
        stripped = window.stripped(conversation.window, turn.history)
        if stripped:
            await self._store.strip_files(conversation.id, stripped)
        if turn.message.wants_person or self._wants_person(turn.text):
            return await self._escalate(
                turn,
                "The customer asked for a person",
                self._persona.handoff,
                why="customer_asked",
                summarize=True,
            )
        if self._llm is None:
            return await self._limited(turn)
        turn.history += turn.pending
        turn.stored += turn.pending
        rounds = self._tools.max_rounds if self._tools is not None else 1
        for _ in range(rounds):
            offered = self._tools.offered() if self._tools is not None else []
            messages = window.to_messages(turn.history, ttl=self._limits.cache_ttl_conversation)
            kept = await self._store.file_data(conversation.id, files.referenced(messages))
            where = str(turn.message.key)
            call = self._calls[where] = asyncio.ensure_future(
                self._llm.respond(
                    system=prompt.system_blocks(
                        self._persona,
                        ttl=self._limits.cache_ttl_prefix,
                        actions=self._tools is not None,
                    ),
                    messages=prompt.with_note(
                        files.expand(messages, kept),
                        prompt.topic_note(topic=turn.topic, previous_topic=conversation.topic),
                    ),
                    tools=[prompt.ESCALATE_TOOL, *(spec.definition() for spec in offered)],
                    events=turn.shown,
                )
            )
            try:
                result = await call
            except asyncio.CancelledError:
                if where not in self._stopping or not call.cancelled():
                    raise  # the turn itself was cancelled (shutdown), not just the call
                return self._stopped(turn)
            except LLMError as exc:
                log.warning("claude failed in %s: %s", turn.message.key, exc)
                return await self._fallback(turn, exc.cause)
            except Exception:
                # A crash inside the client is a Claude failure like any other.
                log.exception("claude call crashed in %s", turn.message.key)
                return await self._fallback(turn, "unknown")
            finally:
                # A stop that came too late to cancel the call is not kept for the next one.
                self._calls.pop(where, None)
                self._stopping.discard(where)
            reply = await self._reply_from(turn, result)
            if reply is not None:
                return reply
        log.warning("claude still called tools after %d rounds in %s", rounds, turn.message.key)
        return await self._escalate(
            turn,
            f"Claude was still calling tools after {rounds} rounds",
            self._persona.dont_know,
            why="tool_loop",
            summarize=False,
        )

    def _wants_person(self, text: str) -> bool:
        folded = fold(text)
        return any(phrase in folded for phrase in self._person_phrases)

    async def _reply_from(self, turn: _Turn, result: LLMResult) -> Reply | None:
        """The reply Claude's answer makes, or ``None`` when it used tools whose results it
        must now read (they are in ``turn.history``)."""
        if result.stop_reason == "refusal" or result.stop_reason in _TRUNCATED:
            cause = "refusal" if result.stop_reason == "refusal" else "truncated"
            log.warning(
                "claude stopped with %s in %s: %s fallback",
                result.stop_reason,
                turn.message.key,
                cause,
            )
            if cause == "refusal":
                turn.refused = _unanswered(turn.history)
            return await self._fallback(turn, cause, usage=result.usage)
        content = _sanitized_blocks(result.content)
        answer = _turn("assistant", "", Kind.MODEL, usage=result.usage, content=content)
        calls = [b for b in content if b.get("type") == "tool_use"]
        if (
            calls
            and self._tools is not None
            and all(c.get("name") != prompt.ESCALATE_TOOL["name"] for c in calls)
        ):
            return await self._use_tools(turn, answer, calls, self._tools)
        if calls:
            reason = clean(str(calls[0].get("input", {}).get("reason") or "")) or _CLAUDE_ASKED
            results = [
                {"type": "tool_result", "tool_use_id": c["id"], "content": "Handed to the team."}
                for c in calls
            ]
            turn.stored += [answer, _turn("user", "", Kind.TOOL_RESULT, content=results)]
            return await self._escalate(
                turn, reason, self._persona.dont_know, why="claude_asked", summarize=True
            )
        said = answer.text.strip()
        if not said:
            return await self._fallback(turn, "unknown", usage=result.usage)
        turn.stored.append(answer)
        turn.answer = len(turn.stored) - 1
        return await self._check_dont_know(turn, said)

    async def _use_tools(
        self, turn: _Turn, answer: Turn, calls: list[dict], toolbox: Toolbox
    ) -> Reply | None:
        """Run the reads Claude asked for; turn a write into a proposal for the customer."""
        caller = Caller(platform=turn.message.key.platform, customer=turn.message.author_id)
        proposal: PendingAction | None = None
        asked = ""
        results = []
        for call in calls:
            spec = toolbox.find(str(call.get("name")))
            arguments = call.get("input") if isinstance(call.get("input"), dict) else {}
            if spec is None:
                outcome = ToolOutcome(NO_SUCH_TOOL, is_error=True)
            elif spec.access is Access.READ:
                outcome = await toolbox.port.call(spec, arguments, caller)
                await self._audit(turn, spec.name, arguments, outcome, turn.message.author_id)
            elif proposal is None:
                proposal, asked = await self._propose(turn, spec, arguments, toolbox)
                outcome = ToolOutcome(WAITING_FOR_STAFF if proposal.staff_approval else WAITING)
            else:
                outcome = ToolOutcome(ONE_AT_A_TIME, is_error=True)
            results.append(_tool_result(call["id"], outcome))
        used = [answer, _turn("user", "", Kind.TOOL_RESULT, content=results)]
        turn.history += used
        turn.stored += used
        if proposal is None:
            return None
        # What code shows is kept as a notice; Claude's own words are in its turn already.
        self._notice(turn, Reply(asked))
        said = answer.text.strip()
        return Reply(f"{said}\n\n{asked}" if said else asked, proposal=proposal)

    async def _propose(
        self, turn: _Turn, spec: ToolSpec, arguments: dict, toolbox: Toolbox
    ) -> tuple[PendingAction, str]:
        """Store the write as a proposal, frozen; what the customer is asked (or told: that
        the team approves it)."""
        action = describe_call(spec, arguments)
        staff = spec.access is Access.STAFF_APPROVAL
        asked = f"{STAFF_PROPOSED if staff else PROPOSED}\n\n{action}"
        proposal_id = await toolbox.store.propose(
            Proposal(
                key=turn.message.key,
                conversation_id=turn.conversation.id,
                customer_id=turn.message.author_id,
                direct=turn.message.direct,
                tool=spec.name,
                arguments=arguments,
                summary=asked,
                staff_approval=staff,
                expires_at=turn.now + toolbox.proposal_ttl,
                created_at=turn.now,
            )
        )
        await self._audit(turn, spec.name, arguments, "proposed", turn.message.author_id)
        return PendingAction(proposal_id, staff_approval=staff, summary=action), asked

    async def _audit(
        self, turn: _Turn, tool: str, arguments: dict, outcome: ToolOutcome | str, actor: str
    ) -> None:
        if isinstance(outcome, ToolOutcome):
            result, detail = ("error" if outcome.is_error else "ok"), outcome.text
        else:
            result, detail = outcome, ""
        key, customer = turn.message.key, turn.message.author_id
        await self._record(
            turn.conversation.id, key, customer, tool, arguments, result, detail, actor
        )

    async def _record(
        self,
        conversation_id: int,
        key: ConversationKey,
        customer_id: str,
        tool: str,
        arguments: dict,
        outcome: str,
        detail: str,
        actor: str,
    ) -> None:
        """One row of the audit log."""
        assert self._tools is not None
        entry = AuditEntry(
            conversation_id,
            key,
            customer_id,
            tool,
            arguments,
            outcome,
            detail,
            at=self._clock(),
            actor=actor,
        )
        await self._tools.store.audit(entry)

    async def _check_dont_know(self, turn: _Turn, said: str) -> Reply:
        """Two "I don't know" answers in a row hand the conversation to people."""
        folded = fold(said)
        streak = (
            turn.conversation.dont_know_streak + 1
            if any(m in folded for m in self._dont_know)
            else 0
        )
        if streak < 2:
            turn.dont_know_streak = streak
            return Reply(said)
        turn.dont_know_streak = 0
        return await self._escalate(
            turn,
            "The bot could not answer twice in a row",
            f"{said}\n\n{self._persona.handoff}",
            why="dont_know_twice",
            summarize=True,
            store=False,
        )

    async def _fallback(self, turn: _Turn, cause: str, *, usage: Usage | None = None) -> Reply:
        """Claude could not answer: a knowledge entry if one fits, else the cause's message."""
        FALLBACKS.labels(cause).inc()
        reply = self._from_knowledge(turn, usage=usage) or await self._escalate(
            turn,
            f"Claude unavailable ({cause})",
            getattr(self._persona.fallbacks, cause),
            why="claude_unavailable",
            summarize=False,
            usage=usage,
        )
        # Both keep what the customer was told as the turn's last: it carries the cause.
        turn.stored[-1] = replace(turn.stored[-1], fallback=cause)
        return reply

    async def _limited(self, turn: _Turn) -> Reply:
        known = self._from_knowledge(turn)
        if known is not None:
            return known
        said = f"{self._persona.limited_mode} {self._persona.dont_know}"
        return await self._escalate(
            turn, "No knowledge entry matched", said, why="no_knowledge", summarize=False
        )

    def _from_knowledge(self, turn: _Turn, *, usage: Usage | None = None) -> Reply | None:
        """The matching knowledge entry, marked as limited mode, or None when none fits (or
        the customer sent files: no entry can look at them, so the team must)."""
        if turn.files:
            return None
        entry = self._knowledge.lookup(turn.text)
        if entry is None:
            return None
        reply = self._notice(
            turn, Reply(f"{self._persona.limited_mode}\n\n{entry.answer}"), usage=usage
        )
        turn.answer = len(turn.stored) - 1
        return reply

    async def _escalate(
        self,
        turn: _Turn,
        reason: str,
        said: str,
        *,
        why: str,
        summarize: bool,
        usage: Usage | None = None,
        store: bool = True,
    ) -> Reply:
        """Hand the conversation to people (the store opens or updates its escalation when
        the turn is finished) and tell the customer ``said``.

        ``store=False`` when ``said`` is Claude's own answer, already kept as a model turn.
        """
        first = turn.conversation.escalation is None
        turn.why = why
        turn.hand_off = HandOff(
            reason=reason,
            summary=await self._summary(turn, use_claude=summarize and first),
            customer_id=turn.message.author_id,
            message_id=turn.message.message_id,
            reping_at=turn.now + self._limits.reping_after,
            cause=why,
        )
        schedule = self._persona.support_hours
        back = schedule.back_at(turn.now) if schedule is not None else None
        if back is not None:
            when = hours.describe(back, now=turn.now)
            said = f"{said} {self._persona.off_hours.format(back=when)}"
        reply = Reply(said)
        return self._notice(turn, reply, usage=usage) if store else reply

    async def _summary(self, turn: _Turn, *, use_claude: bool) -> str:
        """A few lines for staff: written by Claude when it is up, else the last turns verbatim."""
        transcript = _transcript(turn.history, last=turn.text)
        verbatim = f"Topic: {turn.topic or 'unknown'}.\n{transcript[-600:]}"
        if not use_claude or self._llm is None:
            return verbatim
        try:
            result = await self._llm.respond(
                system=[{"type": "text", "text": prompt.SUMMARY_INSTRUCTIONS}],
                messages=[{"role": "user", "content": [{"type": "text", "text": transcript}]}],
                tools=[],
            )
        except LLMError as exc:
            log.warning("handoff summary failed in %s: %s", turn.message.key, exc)
            return verbatim
        written = clean("\n".join(b["text"] for b in result.content if b.get("type") == "text"))
        return written or verbatim

    def _stopped(self, turn: _Turn) -> Reply:
        """The customer pressed stop: the answer ends with the persona's ``stopped`` sentence
        after the words already shown. That whole text is kept as a notice (the conversation
        is answered, so it is not recovered later), not as Claude's turn: Claude never sees the
        cut-off words, and the stopped question joins the customer's next message."""
        log.info("the customer stopped the answer in %s", turn.message.key)
        said = self._persona.stopped
        shown = turn.shown.final(said) if turn.shown is not None else said
        self._notice(turn, Reply(shown))
        return Reply(said)

    def _notice(self, turn: _Turn, reply: Reply, *, usage: Usage | None = None) -> Reply:
        """Keep what the customer was told; Claude never sees notices in its history."""
        turn.stored.append(_turn("assistant", reply.text, Kind.NOTICE, usage=usage or Usage()))
        return reply


def _outbox(turn: _Turn) -> str | None:
    return turn.reply.id if turn.reply is not None else None


def _outbound(turn: _Turn, said: str, proposal: PendingAction | None, *, at: datetime) -> Outbound:
    """``said`` for the outbox, with what its buttons were on time, so that a late post reads
    the same (``Workflow._deliver``): Confirm and Cancel under the customer's own proposal (the
    team's are asked of them), and "Talk to a human" under anything but a hand-off, a proposal
    or a DM whose escalation staff already follow."""
    return Outbound(
        new_outbox_id(),
        said,
        reply_to=turn.message.message_id,
        at=at,
        proposal=proposal.id if proposal is not None and not proposal.staff_approval else None,
        offer_person=turn.hand_off is None and proposal is None and _staff_thread(turn) is None,
    )


def _outcome(turn: _Turn, reply: Reply) -> str:
    """The ``core.metrics.TURNS`` outcome of a turn that was answered."""
    if reply.escalation is not None:
        return "escalated"
    if any(t.kind == Kind.MODEL for t in turn.stored):
        return "answered"
    return "notice"


def _sanitized(message: IncomingMessage) -> IncomingMessage:
    """Everything of ``message`` that is stored or shown, through ``core.text.sanitize``.

    The adapters do this at the edge already; the engine does it again (it is idempotent) for
    every other caller, so nothing it stores can break a database or poison a conversation.
    """
    return replace(
        message,
        text=sanitize(message.text),
        author_name=clean(message.author_name),
        attachments=tuple(replace(a, name=clean(a.name) or "file") for a in message.attachments),
    )


def _sanitized_blocks(content: list[dict]) -> list[dict]:
    """Claude's content without empty text blocks, its text sanitized like customer text: a
    stray surrogate in an answer must not make the stored history unsendable."""
    kept = []
    for block in content:
        if block.get("type") == "text":
            said = sanitize(block["text"])
            if not said.strip():
                continue
            block = {**block, "text": said}
        kept.append(block)
    return kept


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_result(tool_use_id: str, outcome: ToolOutcome) -> dict:
    block = {"type": "tool_result", "tool_use_id": tool_use_id, "content": outcome.text}
    return {**block, "is_error": True} if outcome.is_error else block


def _staff_thread(turn: _Turn) -> StaffPost | None:
    """In a DM with a live, notified escalation: the staff thread that relays to it."""
    escalation = turn.conversation.escalation
    if turn.message.direct and escalation is not None:
        return escalation.staff
    return None


def _relayed(turn: _Turn, reply: Reply) -> Reply:
    """In a DM with a live escalation, staff also see what the customer wrote (kept in the
    staff outbox with the customer's turn)."""
    staff = _staff_thread(turn)
    if staff is None:
        return reply
    return replace(reply, relay=staff, relayed=turn.conversation.relayed)


def _relay(message: IncomingMessage, decided: _Outcome | None = None) -> StaffOutbound:
    """What a DM's staff thread is to see of ``message`` if its escalation is live: the
    customer's words, or who decided a proposal and what came of it."""
    if decided is not None:
        return StaffOutbound(new_outbox_id(), StaffKind.DECISION, decided.by, decided.staff)
    return StaffOutbound(new_outbox_id(), StaffKind.RELAY, message.author_id, message.text)


def _transcript(history: list[Turn], *, last: str) -> str:
    """The last turns as "Customer: …" / "Support: …" lines, for staff and for the summary.

    A turn's own line breaks are indented, so a customer who types "Support: …" on a line of
    its own cannot pass words off as the bot's in what staff read.
    """
    lines = [line for line in map(_line, history) if line]
    if not lines:
        lines = [f"Customer: {last}"]
    return "\n".join(line.replace("\n", "\n  ") for line in lines[-8:])


def _line(turn: Turn) -> str:
    """A turn as a transcript line: who said it, and the tools it used or their results."""
    if turn.kind == Kind.TOOL_RESULT:
        results = [" ".join(_result_text(b).split())[:300] for b in turn.content]
        return f"Tools: {' / '.join(r for r in results if r)}"
    used = [
        f"[used {b.get('name')} {json.dumps(b.get('input'), ensure_ascii=False)[:200]}]"
        for b in turn.content
        if b.get("type") == "tool_use"
    ]
    said = " ".join([turn.text, *used]).strip()
    return f"{'Customer' if turn.role == 'user' else 'Support'}: {said}" if said else ""


def _result_text(block: dict) -> str:
    if block.get("type") == "tool_result":
        return str(block.get("content") or "")
    if block.get("type") == "document":
        return str(block.get("source", {}).get("data") or "")
    return ""


def _unanswered(history: list[Turn]) -> tuple[int, ...]:
    """The customer turns at the end of ``history`` that went to Claude as its last message
    (a customer who wrote again after a failed call has several)."""
    trailing: list[int] = []
    for turn in reversed(history):
        if turn.kind != Kind.CUSTOMER:
            break
        trailing.append(turn.seq)
    return tuple(reversed(trailing))


def _customer_turn(message: IncomingMessage, text: str, kind: Kind, checked: Checked) -> Turn:
    """The customer's turn as stored; a "start over" is customer text unless it opens a fresh
    conversation (the store then keeps it as a ``restart`` turn).

    Accepted files come first, as references to the kept bytes (Anthropic advises images
    before the text about them); a message of files alone says so in its text block. Refused
    files are said after the words, in a note only the support system writes
    (``prompt.refused_files_note``), so Claude's answer agrees with the refusals the customer
    reads after it, in this turn and later ones."""
    kept = checked.kept
    if kind == Kind.RESTART:
        kind = Kind.CUSTOMER
    if kind == Kind.ATTACHMENT:
        text = f"(attached: {', '.join(a.name for a in message.attachments)})"
    if kept and not fold(text).strip():
        text = f"(The customer sent {_what(kept)} without any text.)"
    said = {"type": "text", "text": text or message.text}
    note = prompt.refused_files_note(checked.refusals)
    content = [k.block() for k in kept] + [said] + ([note] if note is not None else [])
    return _turn("user", "", kind, message_id=message.message_id, content=content)


def _shown(turn: _Turn) -> tuple[Attachment, ...]:
    """The turn's accepted files, as posted to staff."""
    return tuple(k.attachment() for k in turn.files)


def _what(kept: tuple[Kept, ...]) -> str:
    """ "a photo", "3 photos", "a PDF", "2 files"."""
    if len(kept) == 1:
        return "a photo" if kept[0].is_image else "a PDF"
    return f"{len(kept)} {'photos' if all(k.is_image for k in kept) else 'files'}"


def _turn(
    role: str,
    text: str,
    kind: Kind,
    *,
    message_id: str | None = None,
    usage: Usage | None = None,
    content: list[dict] | None = None,
) -> Turn:
    blocks = content if content is not None else [{"type": "text", "text": text}]
    return Turn(
        role=role,
        content=blocks,
        kind=kind,
        tokens=tokens.estimate(blocks),
        message_id=message_id,
        usage=usage or Usage(),
    )


def staff_turn(*, staff_name: str, text: str, message_id: str) -> Turn:
    """A support-team member's message, kept in the history Claude sees once it is back.

    Name and text are sanitized (``core.text.clean``) like a customer's."""
    said = f"{clean(staff_name)} (support team): {clean(text)}"
    return _turn("assistant", said, Kind.STAFF, message_id=message_id)


async def watch_held(engine: Engine, *, every: float) -> None:
    """Store the messages a database outage held back as soon as it is over, until cancelled."""
    while True:
        if engine.held:
            try:
                await engine.store_held()
            except Exception:
                log.exception("storing held messages failed; trying again")
        await asyncio.sleep(every)
