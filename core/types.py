"""The vocabulary every adapter and the engine share: frozen, SDK-free value objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


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
class IncomingMessage:
    """One customer message, already translated by an adapter (bot mention stripped).

    ``message_id`` is the platform's own id for this message (Slack ``channel:ts``, Discord
    snowflake); the engine dedupes on it, so retried or doubled deliveries reach Claude once.
    ``direct`` marks a DM, where conversations end after the idle timeout. ``wants_person``
    is set when the customer pressed a "Talk to a human" button (``text`` is its label).
    ``attachments`` names the files the customer attached (the bot cannot read them yet).
    """

    key: ConversationKey
    author_id: str
    text: str
    message_id: str
    direct: bool = False
    author_name: str = ""
    wants_person: bool = False
    attachments: tuple[str, ...] = ()


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
    message into that staff thread, because staff cannot see the DM.
    """

    text: str
    escalation: Escalation | None = None
    relay: StaffPost | None = None


@dataclass(frozen=True, slots=True)
class EscalationView:
    """An escalation as staff see it, for the notification and the CLI."""

    id: int
    key: ConversationKey
    customer_id: str
    customer_message_id: str | None
    reason: str
    summary: str
    state: str
    claimed_by: str | None
    closed_by: str | None
    created_at: datetime
    updated_at: datetime
    staff: StaffPost | None

    @property
    def live(self) -> bool:
        return self.state in {"open", "claimed"}


@dataclass(frozen=True, slots=True)
class Relayed:
    """A staff reply from the staff thread, to post into the customer's DM."""

    key: ConversationKey
    text: str
    staff_name: str


class StartError(RuntimeError):
    """An adapter could not start; the message is the sentence to show the operator."""


class ConversationPort(Protocol):
    """What an adapter is given. The engine implements it; adapter tests can pass a fake."""

    async def handle(self, message: IncomingMessage) -> Reply | None:
        """Answer one customer message; ``None`` means stay silent (a duplicate delivery)."""
        ...

    async def is_active(self, key: ConversationKey) -> bool:
        """Whether the bot has an open conversation at ``key`` (to follow a thread unprompted)."""
        ...


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation, in Anthropic content-block form.

    ``kind`` says what the turn is: ``customer`` text, a ``model`` answer, a ``tool_result``
    the engine wrote, or a ``notice`` (fallback, limited-mode or input-problem answer) that the
    customer saw but Claude never wrote and never sees.
    """

    role: str
    content: list[dict[str, Any]]
    kind: str
    tokens: int = 0
    seq: int = 0
    message_id: str | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text")

    @property
    def starts_with_tool_result(self) -> bool:
        return bool(self.content) and self.content[0].get("type") == "tool_result"
