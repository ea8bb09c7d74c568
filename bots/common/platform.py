"""The port a chat platform implements, and the values it hands to the workflow.

A platform translates its SDK's events into :class:`Inbound`, :class:`StaffReply` and
:class:`Press` (pure functions where it can), and renders and transports what the workflow
decides. ``context`` fields carry the platform's own handle for an event (a Slack ``ts``, a
discord.py message or interaction); the workflow passes them back untouched and never looks
inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.escalation import Action
from core.ports import StaffPending, Unanswered
from core.stream import AnswerSink
from core.types import (
    Attachment,
    ConversationKey,
    EscalationView,
    IncomingMessage,
    PendingAction,
    Relayed,
    Reply,
    StaffPost,
)


@dataclass(slots=True)
class Inbound:
    """A message that may be for the bot, as the platform translated it.

    ``follow_up``: a thread reply that does not address the bot; it is answered only where the
    bot already has a conversation. ``addressed``: the author spoke to the bot (a mention, a
    DM, a button under its answer); a support-team member is answered only then, and any other
    staff post in a conversation is the team's own (see ``Workflow.customer_turn``).
    """

    message: IncomingMessage
    context: Any = None
    follow_up: bool = False
    addressed: bool = True


@dataclass(frozen=True, slots=True)
class StaffReply:
    """A post in an escalation's staff thread (``post``), which may be relayed to a DM."""

    post: StaffPost
    author_id: str
    author_name: str
    text: str
    message_id: str
    context: Any = None
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class Press:
    """A press of a staff button (Claim, Resolve, Hand back) on the notice at ``post``.

    The platform has already acknowledged it (Slack's ``ack``, Discord's ``defer``): the
    workflow may take longer than the platform's 3-second deadline.
    """

    action: Action
    escalation_id: int
    user_id: str
    post: StaffPost
    context: Any = None


@dataclass(frozen=True, slots=True)
class Decided:
    """A press of Confirm or Cancel under a proposed change.

    ``inbound`` is the conversation the buttons are in, as a customer turn by the presser
    (where the outcome is posted); ``context`` is the platform's handle for a note only the
    presser sees (``Platform.tell_user``). Acknowledged already, like a :class:`Press`.
    """

    inbound: Inbound
    proposal_id: int
    confirm: bool
    context: Any = None


class NotChecked(Exception):
    """The platform could not say what the bot posted (``Platform.posted_reply``): an outage,
    a lost connection. The message names the platform's error code, never message text."""


@dataclass(frozen=True, slots=True)
class Found:
    """What the platform shows of a reply (``Platform.posted_reply``)."""

    id: str
    """The platform's id of its first message."""
    shown: int | None = None
    """How many of its leading parts (as ``post_reply`` renders them) show, the rest still to
    post; ``None`` when all of it shows."""


class Refused(Exception):
    """The platform refused a post for good (the channel, thread or notice is gone or
    archived, the bot was removed, the customer closed their DMs): trying again cannot help,
    so the post is given up. Raised by the posts the outboxes keep (``post_reply``,
    ``posted_reply``, ``relay_to_staff``, ``post_decision``, ``relay_to_customer``,
    ``update_notice``); the message is the platform's error code, never message text."""


class AnswerStream(AnswerSink, Protocol):
    """One answer shown on the platform while Claude writes it (``Platform.answer_stream``).

    ``text`` and ``step`` only buffer; the platform calls happen beside the turn, paced to
    the platform's limits, and every chunk is as mention-safe as a whole reply."""

    async def finish(self, reply: Reply, *, ping: bool, offer_person: bool) -> bool | None:
        """End the streamed message so that it reads ``reply`` (whose text continues what was
        shown), with the ping and buttons ``post_reply`` would add. ``None`` when nothing was
        streamed (streaming refused or unavailable): the workflow then posts the reply."""
        ...

    async def aclose(self) -> None:
        """End a stream the turn left open without an answer (it broke); else nothing."""
        ...


class NotStreamed:
    """An :class:`AnswerStream` that shows nothing: the reply is posted whole when it is ready
    (where the platform cannot stream, e.g. a Slack DM's top level)."""

    async def text(self, delta: str) -> None:
        return None

    async def step(self, label: str) -> None:
        return None

    async def finish(self, reply: Reply, *, ping: bool, offer_person: bool) -> bool | None:
        return None

    async def aclose(self) -> None:
        return None


class Platform(Protocol):
    """What the workflow needs from a chat platform. Methods that post return whether the
    platform accepted it; they log their own failures (with ids, never message text) and never
    raise for a platform refusal, but for :class:`Refused` where it is for good."""

    name: str

    @property
    def has_staff_channel(self) -> bool:
        """Whether a staff channel is configured, where notices and re-pings go."""
        ...

    def is_direct(self, key: ConversationKey) -> bool:
        """A DM, which staff cannot open: the bot relays between it and the staff thread."""
        ...

    async def is_staff(self, user_id: str, context: Any) -> bool:
        """Whether ``user_id`` is on the support team (``context``: the event it acted in)."""
        ...

    def person(self, user_id: str) -> str:
        """How a message to staff names a person (a mention that pings nobody there)."""
        ...

    async def staff_name(self, user_id: str, context: Any) -> str:
        """The name customers see on a staff member's relayed reply."""
        ...

    async def prepare(self, inbound: Inbound) -> None:
        """Make the place to answer ``inbound`` (e.g. open its thread) before the turn runs."""
        ...

    def working(self, inbound: Inbound) -> AbstractAsyncContextManager[None]:
        """Show that the bot is working on ``inbound`` (typing, a reaction) while it runs.

        Entered inside the conversation's turn, left just after it (once the next message may
        start), so neither end should wait on the platform for long."""
        ...

    async def recovered(self, unanswered: Unanswered) -> Inbound | None:
        """Where to answer a customer turn a dead process left unanswered (``None``: nowhere
        any more); indicators the dead process left behind are cleared. Raises
        :class:`NotChecked` when the platform cannot say now."""
        ...

    def answer_stream(self, inbound: Inbound) -> AnswerStream:
        """Where Claude's answer to ``inbound`` is shown as it is written."""
        ...

    async def post_reply(
        self,
        inbound: Inbound,
        reply: Reply,
        *,
        ping: bool,
        offer_person: bool,
        shown: int = 0,
    ) -> bool:
        """Post ``reply.text`` where the customer reads it. ``ping``: end it with the support
        team's mention; ``offer_person``: put the "Talk to a human" button under it; with
        ``reply.proposal``, the Confirm and Cancel buttons carrying its id go under it.
        ``shown``: its first parts show already (``posted_reply``), so only the rest is
        posted, in order. Raises :class:`Refused` when the platform refuses it for good."""
        ...

    async def clear_leftovers(self, inbound: Inbound) -> None:
        """Take away what a dead process showed of an answer to ``inbound``'s message that it
        never stored (the words its stream had written), before the recovered answer is
        posted; nothing else of the bot's. A failure is logged."""
        ...

    async def posted_reply(self, inbound: Inbound, text: str, *, late: bool) -> Found | None:
        """What the platform shows already of the bot's reply ``text`` to ``inbound`` (looked
        up before posting again after an unknown outcome: a timeout, a process killed in the
        middle of the request). ``late``: the turn that wrote it is over, and later messages
        of the conversation may have been answered since; then only the bot's messages
        between the customer's and the customer's next one in the same place count, so an
        answer to a later message that reads the same (the same fallback twice) does not
        stand in for this one. Within the turn, which holds its conversation until the reply
        is posted, no later answer can be there, and all of the bot's messages after the
        customer's count: this reply may have landed after the customer wrote again. Messages a
        stream left half-written are made to read the reply's parts at their place. ``None``
        when nothing shows. Raises :class:`NotChecked` when the platform cannot say now."""
        ...

    async def post_approval(self, message: IncomingMessage, action: PendingAction) -> bool:
        """Ask the team, in the staff channel (pinging them), to approve ``action``, which
        Claude proposed in ``message``'s conversation: who, where, the action in plain words,
        and the Confirm and Cancel buttons carrying its id."""
        ...

    def at(self, key: ConversationKey, decided: Decided) -> Inbound:
        """Where to answer in the conversation at ``key`` when the press that decided its
        proposal was made elsewhere (on the team's approval request)."""
        ...

    async def tell_user(self, decided: Decided, text: str) -> None:
        """Tell whoever pressed Confirm or Cancel something only they need to see."""
        ...

    async def close_proposal(self, decided: Decided, outcome: str | None) -> None:
        """Take the Confirm and Cancel buttons off the message they were pressed on; with
        ``outcome`` (the team's approval request), say under it that the presser decided and
        what came of it."""
        ...

    async def post_notice(self, view: EscalationView, *, ping: bool) -> StaffPost | None:
        """Post the staff notice of ``view`` (with its buttons) and open its staff thread."""
        ...

    async def posted_notice(self, view: EscalationView) -> StaffPost | None:
        """The notice of ``view`` if the staff channel shows one already (an earlier try's
        outcome was unknown, or its process died before recording it), with its staff
        thread; looked up before posting it again. ``None`` when there is none, or where the
        platform cannot be asked. Raises :class:`NotChecked` when it cannot say now."""
        ...

    async def update_notice(self, view: EscalationView, post: StaffPost) -> bool:
        """Re-draw the notice at ``post`` from ``view`` in place; nobody is pinged. Raises
        :class:`Refused` when the notice can never be re-drawn (it or its channel is gone)."""
        ...

    async def ask_solved(self, view: EscalationView, question: str) -> bool:
        """Ask ``question`` ("Did we solve it?") in the customer's conversation of ``view``,
        with Yes and No buttons carrying the escalation's id."""
        ...

    async def post_reping(self, view: EscalationView, *, now: datetime) -> bool:
        """Remind the team, in the staff thread, of an escalation nobody has claimed."""
        ...

    async def posted_reping(self, view: EscalationView) -> bool:
        """Whether the staff thread of ``view`` shows its reminder already (an escalation is
        re-pinged once, so one there is an earlier try's whose answer was lost); looked up
        before posting it. False where the platform cannot be asked; raises
        :class:`NotChecked` when it cannot say now."""
        ...

    async def relay_to_staff(self, post: StaffPost, message: IncomingMessage) -> bool:
        """Post what the customer wrote in their DM into the staff thread at ``post``.
        Raises :class:`Refused` when the thread is gone for good."""
        ...

    async def post_decision(self, post: StaffPost, user_id: str, outcome: str) -> bool:
        """Say in the staff thread at ``post`` that ``user_id`` decided a proposal, and
        ``outcome``: what came of it. Raises :class:`Refused` like ``relay_to_staff``."""
        ...

    async def relay_to_customer(self, relayed: Relayed) -> bool:
        """Post a staff member's reply into the customer's DM, under their name. Raises
        :class:`Refused` when the DM refuses for good (closed, the customer gone)."""
        ...

    async def staff_posted(self, pending: StaffPending) -> str | None:
        """The id of the bot's message that reads ``pending`` (a relay or a decision in its
        escalation's staff thread, a staff reply in the customer's DM after the notice), if
        the platform shows one already: looked up before posting it again after a try whose
        outcome is unknown. ``None`` when there is none. Raises :class:`NotChecked` when the
        platform cannot say now."""
        ...

    async def post_to_staff(self, post: StaffPost, text: str, *, about: object) -> bool:
        """Post ``text`` (plain, with `code`) in the staff thread at ``post``, for the team."""
        ...

    async def tell_staff(self, post: StaffPost, user_id: str, text: str, context: Any) -> None:
        """Tell one staff member something only they need to see, at the notice ``post``."""
        ...

    async def fetch(self, attachment: Attachment, *, max_bytes: int) -> Attachment:
        """``attachment`` with its bytes (``data``), downloaded only from the platform's own
        file hosts (or its configured API host), with the bot's credentials only there; or with
        the ``core.files.Problem`` that stopped it. Never more than ``max_bytes``."""
        ...

    async def post_files(
        self, post: StaffPost, files: Sequence[Attachment], *, about: object
    ) -> bool:
        """Upload ``files`` (with ``data``) into the staff thread at ``post``, for the team;
        whether the platform took them all (it may refuse one over its upload limit)."""
        ...
