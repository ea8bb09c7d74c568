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
from core.types import PendingAction

TEXT_LIMIT = 4000
"""``chat.postMessage`` ``text``: Slack asks for at most 4,000 characters (cut at 40,000)."""
MARKDOWN_LIMIT = 12000
"""A ``markdown`` block holds 12,000 characters (``slack_sdk``'s ``MarkdownBlock``)."""
CHUNK_LIMIT = 3500
"""First try at a chunk of raw reply text; escaping can make it longer."""
PING_ROOM = 100
"""Kept free in every chunk for the escalation mention appended to the last one."""
TALK_TO_HUMAN = "talk_to_human"
"""``action_id`` of the button under the bot's answers."""
TALK_TO_HUMAN_LABEL = "Talk to a human"
FEEDBACK = "answer_feedback"
"""``action_id`` of 👍 / 👎 (a ``feedback_buttons`` element) under the bot's answers; the
pressed button's value is ``up:ID`` or ``down:ID``, the stored answer's id."""
SOLVED = "solved"
"""``action_id`` prefix of Yes / No under "Did we solve it?" (value: the escalation's id)."""
CONFIRM, CANCEL = "proposal_confirm", "proposal_cancel"
_PROPOSAL = "proposal-"
"""``action_id`` of the Confirm and Cancel buttons under a proposed change (value: its id)."""

_GROUP_ID = re.compile(r"^S[A-Z0-9]+$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]+$")


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


def is_channel_id(channel: str) -> bool:
    """A public (``C…``) or private (``G…``) channel id, as opposed to a name."""
    return bool(_CHANNEL_ID.match(channel))


def channel_mention(channel_id: str) -> str:
    """``<#C…>`` (a link, never a ping) for a real channel id, escaped text for anything else."""
    return f"<#{channel_id}>" if is_channel_id(channel_id) else escape(channel_id)


def render_reply(
    text: str,
    *,
    ping: str | None = None,
    offer_person: bool = False,
    proposal: PendingAction | None = None,
    answer_id: int | None = None,
) -> list[SlackMessage]:
    """Claude's Markdown as one or more messages, each within Slack's limits.

    Each message carries a ``markdown`` block (Slack renders standard Markdown there) and the
    same escaped text as fallback. ``ping`` is a mention built in code; it ends the last message
    both in the fallback text (which drives notifications) and in an ``mrkdwn`` section, where
    mention syntax is documented to work. ``offer_person`` puts the "Talk to a human" button
    under the last message; ``proposal`` the Confirm and Cancel buttons of a proposed change;
    ``answer_id`` 👍 and 👎 for the stored answer.
    """
    messages = [
        SlackMessage(text=safe, blocks=[{"type": "markdown", "text": safe}])
        for safe in (escape(chunk) for chunk in chunks(text))
    ]
    if ping is not None:
        section = {"type": "section", "text": {"type": "mrkdwn", "text": ping}}
        last = messages.pop() if messages else SlackMessage(text="")
        joined = f"{last.text}\n\n{ping}" if last.text else ping
        messages.append(SlackMessage(text=joined, blocks=[*last.blocks, section]))
    under = buttons(offer_person=offer_person, proposal=proposal, answer_id=answer_id)
    if under and messages:
        last = messages[-1]
        messages[-1] = SlackMessage(text=last.text, blocks=[*last.blocks, *under])
    return messages


def buttons(
    *, offer_person: bool, proposal: PendingAction | None, answer_id: int | None = None
) -> list[dict[str, Any]]:
    """The blocks under an answer: a proposal's Confirm and Cancel, else "Talk to a human"
    when ``offer_person``; then 👍 and 👎 when it is a stored ``answer_id``."""
    if proposal is not None:
        return [decision_buttons(proposal)]
    under = [_person_button()] if offer_person else []
    return under + ([feedback_buttons(answer_id)] if answer_id is not None else [])


def feedback_buttons(answer_id: int) -> dict[str, Any]:
    """👍 and 👎 for the stored answer ``answer_id`` (Slack shows which one was pressed)."""
    element = {
        "type": "feedback_buttons",
        "action_id": FEEDBACK,
        "positive_button": {
            "text": {"type": "plain_text", "text": "👍"},
            "value": f"up:{answer_id}",
            "accessibility_label": "This answer helped",
        },
        "negative_button": {
            "text": {"type": "plain_text", "text": "👎"},
            "value": f"down:{answer_id}",
            "accessibility_label": "This answer did not help",
        },
    }
    return {"type": "context_actions", "block_id": f"feedback-{answer_id}", "elements": [element]}


def solved_question(escalation_id: int, question: str) -> SlackMessage:
    """ "Did we solve it?" with Yes and No, for the customer of escalation ``escalation_id``."""
    said = escape(question)
    choices = [
        {
            "type": "button",
            "action_id": f"{SOLVED}_{word}",
            "text": {"type": "plain_text", "text": word.title()},
            "value": str(escalation_id),
        }
        for word in ("yes", "no")
    ]
    return SlackMessage(
        text=said,
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": said}},
            {"type": "actions", "block_id": f"{SOLVED}-{escalation_id}", "elements": choices},
        ],
    )


def render_said(prefix: str, text: str, *, empty: str) -> list[SlackMessage]:
    """Someone's words passed on by the bot: ``prefix`` (built in code) then ``text`` escaped.

    Long text is split like a reply, with the prefix on the first message only; ``empty``
    (plain, escaped here) stands in when there is no text at all.
    """
    parts = [escape(chunk) for chunk in chunks(text)] or [f"_{escape(empty)}_"]
    parts[0] = f"{prefix} {parts[0]}"
    return [SlackMessage(text=part) for part in parts]


def _person_button() -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": TALK_TO_HUMAN,
        "text": {"type": "plain_text", "text": TALK_TO_HUMAN_LABEL},
        "value": TALK_TO_HUMAN,
    }
    return {"type": "actions", "block_id": TALK_TO_HUMAN, "elements": [button]}


def is_proposal_block(block: dict[str, Any]) -> bool:
    """Whether ``block`` holds a proposal's Confirm and Cancel buttons."""
    return block.get("type") == "actions" and str(block.get("block_id")).startswith(_PROPOSAL)


def decision_buttons(proposal: PendingAction) -> dict[str, Any]:
    """The Confirm and Cancel buttons of ``proposal``, in one ``actions`` block."""
    value = str(proposal.id)
    buttons = [
        {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "value": value,
            "style": style,
        }
        for action_id, label, style in (
            (CONFIRM, "Confirm", "primary"),
            (CANCEL, "Cancel", "danger"),
        )
    ]
    return {"type": "actions", "block_id": f"{_PROPOSAL}{value}", "elements": buttons}


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
