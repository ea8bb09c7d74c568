"""The vocabulary every adapter and the engine share: frozen, SDK-free value objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from core.escalation import LIVE, State

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from datetime import timedelta

    from core.files import FileLimits
    from core.ports import Unanswered
    from core.stream import AnswerSink


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Where a conversation lives on its platform.

    Slack: team / channel / thread_ts (DM top level: the channel, thread ``-``).
    Discord: guild (``@me`` for DMs) / channel / thread.
    """

    platform: str
    space_id: str
    channel_id: str
    thread_id: str = "-"

    def __str__(self) -> str:
        return f"{self.platform}:{self.space_id}:{self.channel_id}:{self.thread_id}"

    @classmethod
    def parse(cls, text: str) -> ConversationKey:
        parts = text.split(":", 3)
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"not a conversation key: {text!r} (platform:space:channel:thread)")
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file on a message, as the platform announced it, and its bytes once fetched.

    ``url`` is where the platform keeps it (only the platform's own adapter fetches it, and
    only from the platform's hosts); ``size`` is what the platform declared. ``data`` is set
    once fetched; ``problem`` says why it could not be (a ``core.files.Problem``).
    """

    name: str
    url: str = ""
    size: int | None = None
    data: bytes | None = field(default=None, repr=False)
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One customer message, already translated by an adapter (bot mention stripped).

    ``message_id`` is the platform's own id for this message (Slack ``channel:ts``, Discord
    snowflake); the engine dedupes on it, so retried or doubled deliveries reach Claude once.
    ``direct`` marks a DM, where conversations end after the idle timeout. ``wants_person``
    is set when the customer pressed a "Talk to a human" button (``text`` is its label).
    ``attachments`` are the files the customer attached; the workflow fetches them before the
    engine checks them (``core.files``).
    """

    key: ConversationKey
    author_id: str
    text: str
    message_id: str
    direct: bool = False
    author_name: str = ""
    wants_person: bool = False
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class StaffPost:
    """Where an escalation's staff notification lives; its thread is the staff thread."""

    channel_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """A hand-off to the human team. Adapters render the team mention; the core never does.

    ``new`` is False when a conversation that already had a live escalation triggered again:
    the stored escalation was updated, and staff must not be pinged a second time.
    """

    reason: str
    summary: str
    customer_id: str = ""
    id: int | None = None
    new: bool = True


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the customer. Empty ``text`` means say nothing to the customer.

    ``relay`` is set in DMs while an escalation is live: the adapter also posts the customer's
    message into that staff thread, because staff cannot see the DM. ``files`` are the
    customer's files of this turn that were accepted (checked and downscaled), to show staff.
    """

    text: str
    escalation: Escalation | None = None
    relay: StaffPost | None = None
    files: tuple[Attachment, ...] = ()
    proposal: PendingAction | None = None
    """A write waiting for the customer's (or staff's) Confirm: render Confirm and Cancel."""
    catch_up: Unanswered | None = None
    """A message flood control held back: answer it (and those after it) ``catch_up_in``
    seconds from now, in one turn (``ConversationPort.recover``)."""
    catch_up_in: float = 0.0
    answer_id: int | None = None
    """The stored answer this reply is (Claude's, or a knowledge entry's): 👍 and 👎 under it
    carry this id (``core.feedback``)."""
    outbox: str | None = None
    """The id the reply is kept under in the outbox until the platform takes it: the adapter
    reports it ``ConversationPort.delivered`` (``None``: not kept, nothing to report)."""
    relayed: str | None = None
    """The id ``relay``'s post is kept under in the staff outbox (``core.ports.StaffOutbound``)
    until the platform takes it (``None``: not kept)."""


@dataclass(frozen=True, slots=True)
class PendingAction:
    """A proposed write under a reply; ``id`` is what the Confirm and Cancel buttons carry."""

    id: int
    staff_approval: bool = False
    summary: str = ""
    """The action in plain words (Markdown): what staff approve, for ``staff_approval``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What came of a Confirm or Cancel press: a ``note`` for the presser alone (refused,
    expired, already decided), or the conversation's next ``reply``. ``closed``: the proposal
    is decided, expired or gone, so its buttons can go.

    A press that decided gives ``key``, the proposal's conversation (where ``reply`` goes,
    wherever the press was: staff approve in the staff channel), and ``outcome``, what came
    of it for the team, to follow the presser's name ("confirmed Cancel an order: it ran…")."""

    note: str | None = None
    reply: Reply | None = None
    closed: bool = True
    key: ConversationKey | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class EscalationView:
    """An escalation as staff see it, for the notification and the CLI."""

    id: int
    key: ConversationKey
    customer_id: str
    customer_message_id: str | None
    reason: str
    summary: str
    state: State
    claimed_by: str | None
    closed_by: str | None
    created_at: datetime
    updated_at: datetime
    staff: StaffPost | None
    redraw_at: datetime | None = None
    """Since when the notice shows an older state than this (a press, a repeated trigger):
    ``None`` once a re-draw of this state got through."""

    @property
    def live(self) -> bool:
        """Open or claimed: the team has not finished with it yet."""
        return self.state in LIVE


@dataclass(frozen=True, slots=True)
class Relayed:
    """A staff reply from the staff thread, to post into the customer's DM."""

    key: ConversationKey
    text: str
    staff_name: str
    files: tuple[Attachment, ...] = ()
    outbox: str | None = None
    """The id it is kept under in the staff outbox until the platform takes it."""


class StartError(RuntimeError):
    """An adapter could not start; the message is the sentence to show the operator."""


class ConversationPort(Protocol):
    """What an adapter is given. The engine implements it; adapter tests can pass a fake."""

    @property
    def files(self) -> FileLimits:
        """What customers may send: the workflow fetches no more than this."""
        ...

    @property
    def loading_messages(self) -> tuple[str, ...]:
        """What a platform's loading status may rotate through while a turn runs."""
        ...

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        """Answer one customer message; ``None`` means stay silent (a duplicate delivery).

        With ``sink``, Claude's words are shown there as they arrive, and the reply's text
        continues them (``core.stream``)."""
        ...

    async def is_active(self, key: ConversationKey) -> bool:
        """Whether the bot has an open conversation at ``key`` (to follow a thread unprompted)."""
        ...

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        """Hold the conversation at ``key`` across replicas from the engine's answer to the
        last post of it; yields whether the turn may go on (without ``wait``: only if no
        other replica holds it)."""
        ...

    @property
    def suggested_prompts(self) -> tuple[tuple[str, str], ...]:
        """What a new conversation offers the customer to ask, as (title, message)."""
        ...

    @property
    def suggested_prompts_title(self) -> str: ...

    def stop(self, key: ConversationKey) -> bool:
        """Stop the answer being written at ``key`` (the customer pressed stop); whether one
        was."""
        ...

    async def decide(
        self,
        proposal_id: int,
        *,
        user_id: str,
        confirm: bool,
        is_staff: Callable[[], Awaitable[bool]],
    ) -> Decision:
        """A press of Confirm or Cancel under a proposed write (``is_staff``: whether the
        presser is on the support team, asked only for staff-approval proposals)."""
        ...

    async def recover(
        self, unanswered: Unanswered, *, direct: bool, late_after: timedelta | None
    ) -> Reply | None:
        """Answer a customer turn stored and left unanswered: by a dead process, or held back
        by flood control (``None``: nothing to say). Later than ``late_after``, it apologises."""
        ...

    async def delivered(self, outbox_id: str, message_id: str | None) -> None:
        """The platform took the reply kept as ``outbox_id`` (as ``message_id``, if known)."""
        ...

    async def redeliver(
        self,
        outbox_id: str,
        key: ConversationKey,
        send: Callable[[], Awaitable[str | None]],
        *,
        late: bool,
    ) -> bool:
        """Deliver a reply the outbox still holds: ``send`` checks the platform and posts it
        if it is not there, giving the platform's message id (``""``: not known) or ``None``
        when the platform could not be reached. True once it is delivered (by anyone); False
        to try again later. The conversation's lock is taken if it is free (else False at
        once), so two replicas never check and post one reply at once. ``late``: the turn
        that wrote it is over (a dead process's, or one whose tries ran out). What ``send``
        raises (a refusal for good) reaches the caller."""
        ...

    async def give_up(self, outbox_id: str, key: ConversationKey, why: str) -> None:
        """Stop trying to deliver the reply kept as ``outbox_id`` in ``key``'s conversation:
        there is nowhere to post it, or the platform refused it for good (``why``: its error
        code). Logged and counted once."""
        ...

    async def pending(self, proposal_id: int) -> PendingAction | None:
        """The customer's proposal ``proposal_id`` while its Confirm and Cancel still work
        (``None`` once it is decided or expired), to redraw them under a late reply."""
        ...


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model: str | None = None
    """The model that answered (what ``supportbot stats`` prices the tokens by)."""


class Kind(StrEnum):
    """What a stored turn is; ``core.window.SEEN`` says which kinds Claude sees."""

    CUSTOMER = "customer"
    """Customer text Claude answers."""
    MODEL = "model"
    """Claude's answer (text and tool calls)."""
    TOOL_RESULT = "tool_result"
    """The engine's result for Claude's tool calls."""
    STAFF = "staff"
    """A support-team member's message, context once the bot is back."""
    NOTICE = "notice"
    """What the engine told the customer without Claude (fallback, limited mode, input problem)."""
    EMPTY = "empty"
    """A message with no text."""
    TOO_LONG = "too_long"
    """A message over the length limit."""
    RESTART = "restart"
    """A "start over" that opened a fresh conversation."""
    ATTACHMENT = "attachment"
    """Files without text, none of which could be opened (each was refused with a reason)."""
    REFUSED = "refused"
    """Customer text Claude refused (``stop_reason: refusal``): kept, never sent again, as
    Anthropic requires, or every later request would be refused as well."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation, in Anthropic content-block form.

    ``kind`` says what the turn is (a ``Kind``; stored as its string value). ``seq`` is its
    place in the conversation, set by the store.
    """

    role: str
    content: list[dict[str, Any]]
    kind: str
    tokens: int = 0
    seq: int = 0
    message_id: str | None = None
    usage: Usage = field(default_factory=Usage)
    fallback: str | None = None
    """An answer given because Claude could not: the cause (``core.metrics.FALLBACKS``)."""
    dont_know: bool = False
    """An answer that said the bot did not know (the persona's ``dont_know_markers``)."""

    @property
    def text(self) -> str:
        """The turn's words, a kept photo or PDF shown by its label ("[photo: table.jpg]")."""
        return "\n".join(
            b["text"] if b.get("type") == "text" else file_label(b)
            for b in self.content
            if b.get("type") == "text" or b.get("source", {}).get("type") == "blob"
        )


def file_label(block: Mapping[str, Any]) -> str:
    """How a kept file (``core.files``) is named where it cannot be shown."""
    kind = "photo" if block.get("type") == "image" else "file"
    return f"[{kind}: {block.get('name') or 'unnamed'}]"
