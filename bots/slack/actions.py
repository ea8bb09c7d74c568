"""Translate ``block_actions`` payloads (button presses): pure functions over raw dicts.

Slack sends the same payload over Socket Mode (``interactive`` envelopes) and HTTP (a signed
form body with ``payload=`` JSON); Bolt hands both over as one dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bots.common import Decided, Inbound, Press
from bots.slack.events import PLATFORM, TOP_LEVEL, is_direct
from bots.slack.notice import ACTION_IDS
from bots.slack.render import CANCEL, CONFIRM, TALK_TO_HUMAN, TALK_TO_HUMAN_LABEL
from core.types import ConversationKey, IncomingMessage, StaffPost

_ACTIONS = {action_id: action for action, action_id in ACTION_IDS.items()}
STAFF_ACTIONS = re.compile("^(" + "|".join(map(re.escape, _ACTIONS)) + ")$")
"""What Bolt routes to the staff-button listener."""


def press(body: Mapping[str, Any]) -> Press | None:
    """The staff button pressed in ``body``, or ``None`` for anything else or a bad value.

    Its ``context`` is ``None``: what the presser is told goes to the staff channel itself.
    """
    action = _action(body)
    where = _message(body)
    user = _user(body)
    if action is None or where is None or not user:
        return None
    kind = _ACTIONS.get(str(action.get("action_id")))
    value = str(action.get("value") or "")
    if kind is None or not value.isdigit():
        return None
    channel, ts, _ = where
    return Press(action=kind, escalation_id=int(value), user_id=user, post=StaffPost(channel, ts))


def person_request(body: Mapping[str, Any]) -> Inbound | None:
    """A "Talk to a human" press as the customer's turn in the conversation the button is on."""
    action = _action(body)
    if action is None or action.get("action_id") != TALK_TO_HUMAN:
        return None
    return _pressed_under_reply(body, action, TALK_TO_HUMAN_LABEL, wants_person=True)


def decided(body: Mapping[str, Any]) -> Decided | None:
    """A press of Confirm or Cancel under a proposed change, or ``None`` for a bad value.

    Its ``context`` is the message the buttons are on, to take them off once it is decided.
    """
    action = _action(body)
    if action is None or action.get("action_id") not in (CONFIRM, CANCEL):
        return None
    value = str(action.get("value") or "")
    confirm = action.get("action_id") == CONFIRM
    inbound = _pressed_under_reply(body, action, "Confirm" if confirm else "Cancel")
    if inbound is None or not value.isdigit():
        return None
    message = {**(body.get("message") or {}), "channel": inbound.message.key.channel_id}
    return Decided(inbound=inbound, proposal_id=int(value), confirm=confirm, context=message)


def _pressed_under_reply(
    body: Mapping[str, Any], action: Mapping[str, Any], label: str, *, wants_person: bool = False
) -> Inbound | None:
    """A press of a button under a bot reply, as the presser's turn in that conversation.

    The reply's place gives the key with the same rules as ``events.translate``: a DM's top
    level or thread, or the channel thread. The ``context`` is the reply's own ``ts``, for the
    progress reaction.
    """
    where = _message(body)
    user = _user(body)
    if where is None or not user:
        return None
    channel, ts, thread_ts = where
    direct = is_direct({"channel": channel})
    if not direct:
        thread = thread_ts or ts
    elif thread_ts and thread_ts != ts:
        thread = thread_ts
    else:
        thread = TOP_LEVEL
    team = body.get("team") or {}
    stamp = action.get("action_ts") or body.get("trigger_id") or ts
    message = IncomingMessage(
        key=ConversationKey(PLATFORM, str(team.get("id") or ""), channel, thread),
        author_id=user,
        text=label,
        message_id=f"button:{stamp}",
        direct=direct,
        wants_person=wants_person,
    )
    return Inbound(message=message, context=ts)


def _action(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    actions = body.get("actions")
    if body.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    return actions[0] if isinstance(actions[0], Mapping) else None


def _message(body: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(channel, ts, thread_ts) of the message the button is on."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    ts = container.get("message_ts") or message.get("ts")
    if not channel or not ts or container.get("is_ephemeral"):
        return None
    return str(channel), str(ts), message.get("thread_ts") or container.get("thread_ts")


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")
