"""The staff-channel side of an escalation, rendered: the notification, its state, the re-ping.

Pure functions of an ``EscalationView``. Everything that came from the customer or the model
(reason, summary) is escaped; the only mentions are built in code from ids.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bots.slack.render import (
    SlackMessage,
    channel_mention,
    decision_buttons,
    escape,
    user_mention,
)
from core.escalation import LABELS, Action, State, actions_for
from core.types import ConversationKey, EscalationView, IncomingMessage, PendingAction

ACTION_IDS = {
    Action.CLAIM: "escalation_claim",
    Action.RESOLVE: "escalation_resolve",
    Action.HAND_BACK: "escalation_hand_back",
}
"""Each staff action's button ``action_id``; fixed, so buttons already posted keep working."""
NOTE_LIMIT = 1500
"""Escaped reason and summary are cut to this, so every section stays within Slack's 3,000."""
TEAM_NAME = "Support team"
"""Names the team without pinging it, where the customer's thread already did."""

_SLACK_TS = re.compile(r"^(?P<channel>[A-Z0-9]+):(?P<ts>\d+\.\d+)$")


def is_dm(key: ConversationKey) -> bool:
    """Slack DM channel ids start with ``D``; staff cannot open those, so the bot relays."""
    return key.channel_id.startswith("D")


def notification(view: EscalationView, *, team: str, link: str) -> SlackMessage:
    """The staff-channel post: who, where, why, a link, the state, and the buttons for it.

    ``team`` opens the post: the support group's mention when this post should ping, or
    ``TEAM_NAME`` when the customer's thread has pinged already.
    """
    customer = user_mention(view.customer_id)
    header = f"{team} Escalation #{view.id} from {customer} ({where(view.key)})"
    reason = f"*Reason:* {cut(view.reason)}"
    summary = f"*Summary:* {cut(view.summary)}"
    opened = f"<{escape(link)}|Open the customer's message>"
    status = state_line(view)
    blocks: list[dict[str, Any]] = [
        _section(f"{header}\n{reason}"),
        _section(summary),
        _section(opened),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": status}]},
    ]
    buttons = _buttons(view)
    if buttons:
        blocks.append(buttons)
    return SlackMessage(text="\n".join([header, reason, summary, opened, status]), blocks=blocks)


def approval(
    message: IncomingMessage, action: PendingAction, *, team: str, link: str
) -> SlackMessage:
    """The staff-channel request to approve a change Claude proposed in ``message``'s
    conversation: who, where, the action in plain words, and its Confirm and Cancel."""
    header = (
        f"{team} Approval needed: {user_mention(message.author_id)} ({where(message.key)}) "
        "asked for this change; Confirm runs it, Cancel declines it."
    )
    lines = [header, cut(action.summary)]
    blocks: list[dict[str, Any]] = [_section(header), {"type": "markdown", "text": lines[1]}]
    if not is_dm(message.key):  # staff cannot open a DM
        lines.append(f"<{escape(link)}|Open the conversation>")
        blocks.append(_section(lines[-1]))
    blocks.append(decision_buttons(action))
    return SlackMessage(text="\n".join(lines), blocks=blocks)


def decided(user_id: str, outcome: str) -> dict[str, Any]:
    """The line under a decided approval request: who decided, and what came of it."""
    said = f"{user_mention(user_id)} {cut(outcome)}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": said}]}


def state_line(view: EscalationView) -> str:
    """Where the escalation stands: open, or claimed / closed by whom and when."""
    if view.state == State.OPEN:
        line = f":red_circle: *Open* since {slack_date(view.created_at)}, nobody has claimed it yet"
    elif view.state == State.CLAIMED:
        when = slack_date(view.updated_at)
        line = f":large_yellow_circle: *Claimed* by {_person(view.claimed_by)} {when}"
    else:
        done = "Resolved" if view.state == State.RESOLVED else "Handed back to the bot"
        when = slack_date(view.updated_at)
        line = f":white_check_mark: *{done}* by {_person(view.closed_by)} {when}"
        if view.claimed_by:
            line += f" (claimed by {_person(view.claimed_by)})"
    if view.live and is_dm(view.key):
        line += "; replies in this thread go to the customer"
    return line


def reping(view: EscalationView, *, team: str, link: str, now: datetime) -> SlackMessage:
    """The reminder posted in the notification's thread when nobody has claimed it."""
    text = (
        f"{team} Escalation #{view.id} from {user_mention(view.customer_id)} {_UNCLAIMED} "
        f"after {waited(view.created_at, now)}. <{escape(link)}|Open the customer's message>"
    )
    return SlackMessage(text=text)


def is_reping_of(text: str, view: EscalationView) -> bool:
    """Whether a message reading ``text`` is the reminder of ``view``."""
    return f"Escalation #{view.id} from {user_mention(view.customer_id)} {_UNCLAIMED}" in text


_UNCLAIMED = "is still unclaimed"


def customer_message(view: EscalationView) -> tuple[str, str] | None:
    """The Slack message (channel, ts) that started the escalation, when it can be linked.

    A button press has no message of its own (its id is ``button:…``); then the thread it
    happened in stands in, and a DM's top level has nothing to point at.
    """
    found = _SLACK_TS.match(view.customer_message_id or "")
    if found:
        return found["channel"], found["ts"]
    if view.key.thread_id != "-":
        return view.key.channel_id, view.key.thread_id
    return None


def where(key: ConversationKey) -> str:
    if is_dm(key):
        return "Slack DM"
    return f"Slack, thread in {channel_mention(key.channel_id)}"


def waited(since: datetime, now: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def slack_date(moment: datetime) -> str:
    """A naive-UTC time that every reader's Slack shows in their own time zone."""
    stamp = int(moment.replace(tzinfo=UTC).timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def cut(text: str, limit: int = NOTE_LIMIT) -> str:
    """``text`` escaped, cut (never inside an entity) so the result fits in ``limit``."""
    text = text.strip() or "(none given)"
    if len(escape(text)) <= limit:
        return escape(text)
    kept: list[str] = []
    room = limit - 1  # for the ellipsis
    for char in text:
        piece = escape(char)
        if len(piece) > room:
            break
        kept.append(piece)
        room -= len(piece)
    return "".join(kept) + "…"


def _person(user_id: str | None) -> str:
    return user_mention(user_id) if user_id else "someone"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _buttons(view: EscalationView) -> dict[str, Any] | None:
    actions = actions_for(view.state)
    if not actions:
        return None
    elements = [
        {
            "type": "button",
            "action_id": ACTION_IDS[action],
            "text": {"type": "plain_text", "text": LABELS[action]},
            "value": str(view.id),
            # The first button is the next step: claim an open one, resolve a claimed one.
            **({"style": "primary"} if index == 0 else {}),
        }
        for index, action in enumerate(actions)
    ]
    # A new block_id per state, as Slack asks of updated messages.
    block_id = f"{_block_prefix(view.id)}{view.state}"
    return {"type": "actions", "block_id": block_id, "elements": elements}


def is_notice_of(message: dict[str, Any], escalation_id: int) -> bool:
    """Whether ``message`` (as Slack's history shows it) is the notice of ``escalation_id``."""
    prefix = _block_prefix(escalation_id)
    return any(str(b.get("block_id", "")).startswith(prefix) for b in message.get("blocks") or [])


def _block_prefix(escalation_id: int) -> str:
    return f"escalation-{escalation_id}-"
