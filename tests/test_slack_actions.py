"""actions: block_actions payloads (tests/fixtures/slack/block_actions.json) to what they mean."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bots.common import Inbound, Press
from bots.slack.actions import person_request, press
from core.escalation import Action
from core.types import ConversationKey, IncomingMessage, StaffPost
from tests.slack_helpers import FIXTURES

NOTIFICATION_TS = "1700000500.000100"
ACTION_TS = "1700000510.000200"


def payload(
    *, action_id: str = "escalation_claim", value: str = "1", **message: Any
) -> dict[str, Any]:
    """The fixture press, on a message with ``message`` fields (channel, ts, thread_ts)."""
    body = json.loads((FIXTURES / "block_actions.json").read_text(encoding="utf-8"))
    channel = message.pop("channel", "C0STAFF")
    body["container"] |= {"channel_id": channel, "message_ts": message.get("ts", NOTIFICATION_TS)}
    body["channel"]["id"] = channel
    body["message"] |= copy.deepcopy(message)
    body["actions"][0] |= {"action_id": action_id, "value": value}
    return body


@pytest.mark.parametrize(
    ("action_id", "action"),
    [
        ("escalation_claim", Action.CLAIM),
        ("escalation_resolve", Action.RESOLVE),
        ("escalation_hand_back", Action.HAND_BACK),
    ],
)
def test_staff_buttons_translate(action_id: str, action: Action) -> None:
    assert press(payload(action_id=action_id, value="42")) == Press(
        action=action,
        escalation_id=42,
        user_id="U0STAFF1",
        post=StaffPost("C0STAFF", NOTIFICATION_TS),
    )


@pytest.mark.parametrize(
    "body",
    [
        payload(value="not-a-number"),
        payload(action_id="talk_to_human"),
        {**payload(), "type": "view_submission"},
        {**payload(), "actions": []},
        {**payload(), "user": {}},
        {k: v for k, v in payload().items() if k not in ("container", "channel")},
    ],
    ids=["bad-value", "other-button", "not-block-actions", "no-action", "no-user", "no-message"],
)
def test_other_presses_are_not_staff_actions(body: dict[str, Any]) -> None:
    assert press(body) is None


def person(key: ConversationKey, ts: str, *, direct: bool) -> Inbound:
    return Inbound(
        message=IncomingMessage(
            key=key,
            author_id="U0STAFF1",
            text="Talk to a human",
            message_id=f"button:{ACTION_TS}",
            direct=direct,
            wants_person=True,
        ),
        context=ts,
    )


def key(channel: str, thread: str = "-") -> ConversationKey:
    return ConversationKey("slack", "T0TEAM", channel, thread)


PERSON_REQUESTS = {
    "dm-top-level": (
        {"channel": "D0DM", "ts": "1700000002.000100"},
        person(key("D0DM"), "1700000002.000100", direct=True),
    ),
    "dm-top-level-with-replies": (
        {"channel": "D0DM", "ts": "1700000002.000100", "thread_ts": "1700000002.000100"},
        person(key("D0DM"), "1700000002.000100", direct=True),
    ),
    "dm-thread": (
        {"channel": "D0DM", "ts": "1700000060.000100", "thread_ts": "1700000002.000200"},
        person(key("D0DM", "1700000002.000200"), "1700000060.000100", direct=True),
    ),
    "channel-thread": (
        {"channel": "C0SUPPORT", "ts": "1700000101.000100", "thread_ts": "1700000100.000100"},
        person(key("C0SUPPORT", "1700000100.000100"), "1700000101.000100", direct=False),
    ),
}


@pytest.mark.parametrize("case", sorted(PERSON_REQUESTS))
def test_talk_to_a_human_is_a_turn_in_the_conversation_the_button_is_on(case: str) -> None:
    message, expected = PERSON_REQUESTS[case]
    assert person_request(payload(action_id="talk_to_human", **message)) == expected


def test_talk_to_a_human_falls_back_to_the_trigger_id() -> None:
    body = payload(action_id="talk_to_human", channel="D0DM", ts="1700000002.000100")
    del body["actions"][0]["action_ts"]
    found = person_request(body)
    assert found is not None and found.message.message_id == f"button:{body['trigger_id']}"


def test_staff_buttons_and_ephemeral_messages_are_not_person_requests() -> None:
    assert person_request(payload()) is None
    ephemeral = payload(action_id="talk_to_human", channel="D0DM")
    ephemeral["container"]["is_ephemeral"] = True
    assert person_request(ephemeral) is None
