"""The ORM tables. Rows never leave ``storage/``: the repository turns them into core types."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.escalation import State

# The live states (core.escalation.LIVE), spelled as the migrations' index predicate spells them.
_LIVE_SQL = f"state IN ('{State.OPEN}', '{State.CLAIMED}')"
WAITING = "delivered_at IS NULL AND given_up_at IS NULL"
"""An outbox (or staff outbox) row still waiting for delivery, as the migrations' index
predicate spells it."""


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[dict[str, Any]]: JSON}  # noqa: RUF012


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str | None] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(String(20), default="open")
    # First sequence number Claude still sees; it only moves forward, in chunks (see core/window).
    window_start: Mapped[int] = mapped_column(default=0)
    next_seq: Mapped[int] = mapped_column(default=0)
    # A person from the support team has spoken here: the bot stays quiet until handed back.
    human_active: Mapped[bool] = mapped_column(default=False)
    # Consecutive answers in which the bot said it did not know.
    dont_know_streak: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # At most one open conversation per key, even with several replicas racing.
        Index(
            "uq_conversations_open_key",
            "key",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    seq: Mapped[int]
    role: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    content: Mapped[list[dict[str, Any]]]
    tokens: Mapped[int] = mapped_column(default=0)
    platform_message_id: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(default=0)
    output_tokens: Mapped[int] = mapped_column(default=0)
    cache_read_tokens: Mapped[int] = mapped_column(default=0)
    cache_write_tokens: Mapped[int] = mapped_column(default=0)
    model: Mapped[str | None] = mapped_column(String(100))
    # The cause of a fallback answer (``core.metrics.FALLBACKS``'s labels), for ``stats``.
    fallback: Mapped[str | None] = mapped_column(String(30))
    # An answer that told the customer the bot did not know (the persona's markers).
    dont_know: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    )


class DeliveryRow(Base):
    """Every platform message id ever handled: the durable guard against answering twice."""

    __tablename__ = "deliveries"

    platform: Mapped[str] = mapped_column(String(20), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Forgotten after the retention period (see ``forget_deliveries``).
    created_at: Mapped[datetime] = mapped_column(index=True)


class OutboxRow(Base):
    """A reply the customer is meant to see, written with the turn that caused it and marked
    delivered once the platform accepted it, or given up (``core.ports.Outbound``). It keeps
    what redraws its buttons and ping when it is posted late (``core.ports.Undelivered``)."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reply_to: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    platform_message_id: Mapped[str | None] = mapped_column(String(200))
    answer_id: Mapped[int | None]
    proposal_id: Mapped[int | None]
    offer_person: Mapped[bool] = mapped_column(default=False, server_default=false())
    ping: Mapped[bool] = mapped_column(default=False, server_default=false())
    given_up_at: Mapped[datetime | None]

    __table_args__ = (
        # The watcher's query walks only what waits for delivery.
        Index(
            "ix_outbox_undelivered",
            "created_at",
            sqlite_where=text(WAITING),
            postgresql_where=text(WAITING),
        ),
    )


class StaffOutboxRow(Base):
    """A post between a DM and its escalation's staff thread, written with the change that
    caused it and marked delivered (or given up) once done (``core.ports.StaffOutbound``)."""

    __tablename__ = "staff_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[str] = mapped_column(String(100))
    author_name: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # Not tried again before this (a try in flight holds it, a failed one backs off).
    next_try_at: Mapped[datetime]
    tries: Mapped[int] = mapped_column(default=0)
    delivered_at: Mapped[datetime | None]
    platform_message_id: Mapped[str | None] = mapped_column(String(200))
    given_up_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_staff_outbox_waiting",
            "created_at",
            sqlite_where=text(WAITING),
            postgresql_where=text(WAITING),
        ),
    )


class EscalationRow(Base):
    """A hand-off to people: open → claimed → resolved or handed back to the bot."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(String(2000))
    state: Mapped[str] = mapped_column(String(20), default=State.OPEN.value)
    customer_id: Mapped[str] = mapped_column(String(100), default="")
    customer_message_id: Mapped[str | None] = mapped_column(String(200))
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    closed_by: Mapped[str | None] = mapped_column(String(100))
    # When to re-ping staff if nobody has claimed it; cleared once done, claimed or closed.
    reping_at: Mapped[datetime | None] = mapped_column(index=True)
    staff_channel: Mapped[str | None] = mapped_column(String(100))
    staff_message_id: Mapped[str | None] = mapped_column(String(100))
    # What set it off (``core.metrics.ESCALATIONS``'s labels); the reason is free text.
    cause: Mapped[str | None] = mapped_column(String(30))
    claimed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # "Did we solve it?": asked once (set by the compare-and-set that asks), and the answer.
    solved_asked_at: Mapped[datetime | None]
    solved: Mapped[bool | None]
    # Set when the state changed and the notice still shows an older one; cleared by the
    # re-draw that got through (``core.types.EscalationView.redraw_at``).
    redraw_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # One live escalation per conversation: a second trigger updates it instead.
        Index(
            "uq_escalations_live_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_escalations_staff_message", "staff_channel", "staff_message_id"),
    )


class FileRow(Base):
    """A customer's photo or PDF as Claude sees it (checked and downscaled: ``core.files``).

    Turns reference it by ``sha256``; it lives and dies with its conversation.
    """

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(50))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width: Mapped[int] = mapped_column(default=0)
    height: Mapped[int] = mapped_column(default=0)
    pages: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]

    __table_args__ = (
        # One copy per conversation, however often it is sent; also the lookup by reference.
        UniqueConstraint("conversation_id", "sha256", name="uq_files_conversation_sha256"),
    )


class ProposalRow(Base):
    """A write Claude proposed, waiting for its Confirm: the exact call, frozen."""

    __tablename__ = "tool_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[str] = mapped_column(String(100))
    direct: Mapped[bool] = mapped_column(default=False)
    tool: Mapped[str] = mapped_column(String(130))
    arguments: Mapped[dict[str, Any]]
    summary: Mapped[str] = mapped_column(String(4000))
    staff_approval: Mapped[bool] = mapped_column(default=False)
    # pending → confirmed, cancelled or expired, once (compare-and-set on the state).
    state: Mapped[str] = mapped_column(String(20), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ToolAuditRow(Base):
    """Every tool call, proposal and decision: who, which conversation, tool, arguments, outcome."""

    __tablename__ = "tool_audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100), default="")
    tool: Mapped[str] = mapped_column(String(130))
    arguments: Mapped[dict[str, Any]]
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(index=True)


class FeedbackRow(Base):
    """A 👍 or 👎 on one of the bot's answers (a ``messages`` row), with the optional comment
    a 👎 may get; pressing again changes the rating of the same row."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(100))
    rating: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("message_id", "user_id", name="uq_feedback_message_user"),)
