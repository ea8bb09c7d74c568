"""Pure rendering: a core ``Reply`` and the relayed DM messages as Discord message contents.

Pings are built here, in code, never taken from model output: each :class:`Outgoing` names the
one role it may ping, and the sender turns that into ``allowed_mentions``. Everything else the
model writes (``@everyone``, ``<@&…>``, ``<@…>``) renders as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.split import split_text
from core.types import Reply

MESSAGE_LIMIT = 2000  # Discord rejects longer ``content`` with 50035; discord.py does not split


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to post. ``ping_role_id`` is the only mention it may trigger, if any."""

    content: str
    ping_role_id: int | None = None


def role_mention(role_id: int) -> str:
    return f"<@&{role_id}>"


def reply_messages(reply: Reply, *, ping_role_id: int | None = None) -> list[Outgoing]:
    """The reply as messages of at most 2,000 characters. With ``ping_role_id`` the role mention
    closes the reply, and only the last message (which carries it) may ping."""
    text = reply.text.strip()
    if ping_role_id is not None:
        text = f"{text}\n\n{role_mention(ping_role_id)}".strip()
    chunks = [c for c in split_text(text, MESSAGE_LIMIT) if c.strip()]
    return [
        Outgoing(chunk, ping_role_id if i == len(chunks) - 1 else None)
        for i, chunk in enumerate(chunks)
    ]


def relay_messages(customer_id: str, text: str, attachments: Sequence[str] = ()) -> list[Outgoing]:
    """A customer's DM, as posted into the escalation's staff thread (pings no one); the
    names of the files it came with close it."""
    if attachments:
        text = f"{text}\n(attached: {', '.join(attachments)})".strip()
    return _prefixed(f"<@{customer_id}> wrote: ", text or "(no text)")


def decided_messages(user_id: str, outcome: str) -> list[Outgoing]:
    """Who decided a proposed change and what came of it, for a staff thread (pings no one)."""
    return _prefixed(f"<@{user_id}> ", outcome)


def staff_reply_messages(staff_name: str, text: str) -> list[Outgoing]:
    """A support-team member's reply, as posted into the customer's DM (pings no one)."""
    return _prefixed(f"**{staff_name}** (support team): ", text)


def _prefixed(prefix: str, text: str) -> list[Outgoing]:
    chunks = [c for c in split_text(f"{prefix}{text.strip()}", MESSAGE_LIMIT) if c.strip()]
    return [Outgoing(chunk) for chunk in chunks]


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
