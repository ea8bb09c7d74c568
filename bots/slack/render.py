"""Render replies for Slack: pure functions from Claude's Markdown to ``chat.postMessage`` payloads.

Model output can never ping: every chunk is escaped (``&``, ``<``, ``>``), which turns
``<!channel>``, ``<!here>``, ``<!everyone>``, ``<@U…>``, ``<!subteam^…>`` and ``<#C…>`` into
plain text. Only code adds a mention, through ``group_mention`` and ``user_mention``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from core.split import split_text
from core.types import Escalation

TEXT_LIMIT = 4000
"""``chat.postMessage`` ``text``: Slack asks for at most 4,000 characters (cut at 40,000)."""
MARKDOWN_LIMIT = 12000
"""A ``markdown`` block holds 12,000 characters (``slack_sdk``'s ``MarkdownBlock``)."""
CHUNK_LIMIT = 3500
"""First try at a chunk of raw reply text; escaping can make it longer."""
PING_ROOM = 100
"""Kept free in every chunk for the escalation mention appended to the last one."""
NOTE_LIMIT = 1500
"""Escalation reason and summary are cut to this in the staff-channel notice."""

_GROUP_ID = re.compile(r"^S[A-Z0-9]+$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One ``chat.postMessage``: ``text`` is the notification and accessibility fallback."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def escape(text: str) -> str:
    """Slack's own escaping: the only three control characters become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def group_mention(group_id: str) -> str:
    """``<!subteam^S…>``, which pings a user group; raises on anything that is not a group id."""
    if not _GROUP_ID.match(group_id):
        raise ValueError(f"not a Slack user group id: {group_id!r} (want S…)")
    return f"<!subteam^{group_id}>"


def user_mention(user_id: str) -> str:
    """``<@U…>`` for a real user id, escaped plain text for anything else."""
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape(user_id)


def render_reply(text: str, *, ping: str | None = None) -> list[SlackMessage]:
    """Claude's Markdown as one or more messages, each within Slack's limits.

    Each message carries a ``markdown`` block (Slack renders standard Markdown there) and the
    same escaped text as fallback. ``ping`` is a mention built in code; it ends the last message
    both in the fallback text (which drives notifications) and in an ``mrkdwn`` section, where
    mention syntax is documented to work.
    """
    messages = [
        SlackMessage(text=safe, blocks=[{"type": "markdown", "text": safe}])
        for safe in (escape(chunk) for chunk in chunks(text))
    ]
    if ping is None:
        return messages
    section = {"type": "section", "text": {"type": "mrkdwn", "text": ping}}
    if not messages:
        return [SlackMessage(text=ping, blocks=[section])]
    last = messages[-1]
    messages[-1] = SlackMessage(text=f"{last.text}\n\n{ping}", blocks=[*last.blocks, section])
    return messages


def chunks(text: str, limit: int = CHUNK_LIMIT) -> list[str]:
    """``text`` split (by ``core.split``) so that every chunk still fits once escaped."""
    budget = min(TEXT_LIMIT, MARKDOWN_LIMIT) - PING_ROOM
    out: list[str] = []
    for piece in split_text(text, limit):
        escaped = len(escape(piece))
        if escaped <= budget:
            out.append(piece)
        else:
            # Escaping grows "&" five-fold at worst, so a smaller limit always fits eventually.
            out.extend(chunks(piece, max(limit * budget // escaped, budget // 5)))
    return out


def staff_notice(
    escalation: Escalation,
    *,
    customer_id: str,
    ping: str | None,
    permalink: str | None,
) -> str:
    """The staff-channel post for a DM escalation: mention, customer, reason, summary, link."""
    lines = [
        f"{ping + ' ' if ping else ''}Escalation from {user_mention(customer_id)}",
        f"*Reason:* {escape(_cut(escalation.reason))}",
        f"*Summary:* {escape(_cut(escalation.summary))}",
    ]
    if permalink:
        lines.append(f"<{escape(permalink)}|Open the customer's message>")
    return "\n".join(lines)


def _cut(text: str) -> str:
    text = text.strip() or "(none given)"
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"
