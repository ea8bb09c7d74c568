"""Pure rendering of what staff see: the escalation notification and the re-ping.

Everything is rendered from an :class:`EscalationView`, so the notification can be re-drawn at
any time (a button press, a second trigger, after a restart) from the database alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bots.discord import conversation_link
from bots.discord.render import Outgoing, role_mention, shorten
from bots.discord.routing import DM_SPACE
from core.escalation import State
from core.types import ConversationKey, EscalationView, IncomingMessage, PendingAction

REASON_LIMIT = 300
SUMMARY_LIMIT = 1200

ACCENT = {
    State.OPEN: 0xE67E22,  # orange: waiting for someone
    State.CLAIMED: 0x3498DB,  # blue: someone has it
    State.RESOLVED: 0x2ECC71,  # green: done
    State.HANDED_BACK: 0x95A5A6,  # grey: back with the bot
}
"""The notice's accent colour for each escalation state."""

# Staff cannot open a customer's DM; its messages are posted into the staff thread instead.
IN_STAFF_THREAD = "DM: the conversation is relayed in this thread"


def notification(view: EscalationView, *, role_id: int | None, ping: bool) -> Outgoing:
    """The staff-channel post for ``view``. The role mention is always shown; it pings only
    with ``ping`` (not when the customer's thread reply already pinged the role)."""
    mention = f"{role_mention(role_id)} " if role_id is not None else ""
    lines = [
        f"{mention}**Escalation #{view.id}**: a customer needs a person.",
        f"Customer: <@{view.customer_id}>",
        f"Platform: Discord, {place(view.key)}",
        f"Reason: {shorten(view.reason, REASON_LIMIT) or '-'}",
        f"Summary: {shorten(view.summary, SUMMARY_LIMIT) or '-'}",
        where_to_look(view),
        f"State: {state_line(view)}",
    ]
    return Outgoing("\n".join(lines), role_id if ping else None)


def approval(message: IncomingMessage, action: PendingAction, *, role_id: int | None) -> Outgoing:
    """The staff-channel request to approve a change Claude proposed in ``message``'s
    conversation (pinging the role): who, where, and the action in plain words."""
    mention = f"{role_mention(role_id)} " if role_id is not None else ""
    key = message.key
    lines = [
        f"{mention}**Approval needed**: Confirm runs this change, Cancel declines it.",
        f"Customer: <@{message.author_id}>",
        f"Platform: Discord, {place(key)}",
        action.summary[:SUMMARY_LIMIT],
    ]
    if key.space_id != DM_SPACE:
        lines.append(f"Conversation: {conversation_link(key)}")
    return Outgoing("\n".join(lines), role_id)


def state_line(view: EscalationView) -> str:
    """Who did what, and when (Discord shows ``<t:…>`` in each reader's own time zone)."""
    if view.state == State.OPEN:
        return f"open since {when(view.created_at)}, nobody has claimed it yet"
    if view.state == State.CLAIMED:
        return f"claimed by {who(view.claimed_by)} {when(view.updated_at)}"
    done = "resolved" if view.state == State.RESOLVED else "handed back to the bot"
    line = f"{done} by {who(view.closed_by)} {when(view.updated_at)}"
    if view.claimed_by and view.claimed_by != view.closed_by:
        line += f" (claimed by {who(view.claimed_by)})"
    return line


def reminder(view: EscalationView, *, role_id: int | None, now: datetime) -> Outgoing:
    """The re-ping posted in the staff thread of an escalation nobody has claimed."""
    mention = f"{role_mention(role_id)} " if role_id is not None else ""
    minutes = int((now - view.created_at).total_seconds() // 60)
    return Outgoing(
        f"{mention}{_unclaimed(view)} after {age(minutes)}. {where_to_look(view)}", role_id
    )


def is_reminder_of(content: str, view: EscalationView) -> bool:
    """Whether a message reading ``content`` is the re-ping of ``view``."""
    return _unclaimed(view) in content


def _unclaimed(view: EscalationView) -> str:
    return f"Escalation #{view.id} is still unclaimed"


def place(key: ConversationKey) -> str:
    if key.space_id == DM_SPACE:
        return "direct message"
    if key.thread_id == "-":
        return f"channel <#{key.channel_id}>"
    return f"thread <#{key.thread_id}> in <#{key.channel_id}>"


def where_to_look(view: EscalationView) -> str:
    """Where staff read the conversation: the customer's message, or for a DM (which only its
    two members can open) the staff thread, where the bot relays it."""
    if view.key.space_id == DM_SPACE:
        return IN_STAFF_THREAD
    return f"Message: {jump_url(view.key, view.customer_message_id)}"


def jump_url(key: ConversationKey, message_id: str | None) -> str:
    """A link to the customer's message; to the conversation when there is no such message
    (a button press) or it is the thread's own starter message."""
    link = conversation_link(key)
    if message_id is None or not message_id.isdigit() or message_id == key.thread_id:
        return link
    return f"{link}/{message_id}"


def who(staff_id: str | None) -> str:
    if staff_id is None:
        return "someone"
    return f"<@{staff_id}>" if staff_id.isdigit() else staff_id


def when(moment: datetime) -> str:
    """A Discord timestamp for a naive-UTC ``moment`` (the form the store keeps)."""
    return f"<t:{int(moment.replace(tzinfo=UTC).timestamp())}:f>"


def age(minutes: int) -> str:
    if minutes < 1:
        return "less than a minute"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
