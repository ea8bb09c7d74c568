"""👍 / 👎 under answers, the 👎's form, and "Did we solve it?" on Slack.

A 👍 is stored and Slack shows the pressed state itself. A 👎 is stored and opens a modal
(``views.open`` with the press's ``trigger_id``, within Slack's 3 seconds): an optional one-line
"What was wrong?" and "Talk to a person", which asks for a person exactly like the "Talk to a
human" button. Only the conversation's customer's presses count; anyone else is told so in an
ephemeral message. Yes / No under "Did we solve it?" are stored, and the question is replaced
by the thanks. The parsing is pure functions over the raw payloads, like ``actions``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from bots.common import Inbound, Workflow
from bots.slack.events import is_direct
from bots.slack.render import FEEDBACK, SOLVED, TALK_TO_HUMAN_LABEL, SlackMessage, escape
from bots.slack.web import SlackWeb
from core.feedback import COMMENT_LIMIT, Feedback, Rating
from core.types import IncomingMessage, StaffPost

log = logging.getLogger(__name__)

WHY = "answer_feedback_why"
"""``callback_id`` of the 👎's modal; its ``private_metadata`` is the answer and message."""
WHY_BLOCK, WHY_INPUT = "why", "why_text"
PERSON_BLOCK, PERSON_INPUT, PERSON = "person", "person_choice", "person"
SOLVED_ACTIONS = f"^{SOLVED}_(yes|no)$"


@dataclass(frozen=True, slots=True)
class Rated:
    """A press of 👍 or 👎: the answer's id, who, where (the message), and the trigger."""

    answer_id: int
    rating: Rating
    user_id: str
    channel: str
    ts: str
    thread: str | None
    trigger_id: str


def rated(body: Mapping[str, Any]) -> Rated | None:
    """The 👍 or 👎 pressed in a ``block_actions`` body (``None``: anything else)."""
    action = _first_action(body)
    if action is None or action.get("action_id") != FEEDBACK:
        return None
    word, _, number = str(action.get("value") or "").partition(":")
    container = body.get("container") or {}
    user = str((body.get("user") or {}).get("id") or "")
    if word not in (Rating.UP, Rating.DOWN) or not number.isdigit() or not user:
        return None
    return Rated(
        answer_id=int(number),
        rating=Rating(word),
        user_id=user,
        channel=str(container.get("channel_id") or ""),
        ts=str(container.get("message_ts") or ""),
        thread=(body.get("message") or {}).get("thread_ts"),
        trigger_id=str(body.get("trigger_id") or ""),
    )


def why_modal(press: Rated, texts_sorry: str) -> dict[str, Any]:
    """The 👎's modal: what was wrong (optional, one line) and "Talk to a person"."""
    metadata = {"answer": press.answer_id, "channel": press.channel, "ts": press.ts}
    return {
        "type": "modal",
        "callback_id": WHY,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": "Sorry about that"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [
            {"type": "section", "text": {"type": "plain_text", "text": texts_sorry}},
            {
                "type": "input",
                "block_id": WHY_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What was wrong?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": WHY_INPUT,
                    "max_length": COMMENT_LIMIT,
                },
            },
            {
                "type": "input",
                "block_id": PERSON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Talk to a person"},
                "element": {
                    "type": "checkboxes",
                    "action_id": PERSON_INPUT,
                    "options": [
                        {
                            "text": {"type": "plain_text", "text": "Pass me to the support team"},
                            "value": PERSON,
                        }
                    ],
                },
            },
        ],
    }


@dataclass(frozen=True, slots=True)
class Explained:
    """The 👎's modal, sent: the answer, what was wrong, whether a person was asked for."""

    answer_id: int
    user_id: str
    comment: str
    person: bool
    channel: str
    ts: str
    view_id: str


def explained(body: Mapping[str, Any]) -> Explained | None:
    """The submitted 👎 modal in a ``view_submission`` body (``None``: anything else)."""
    view = body.get("view") or {}
    if body.get("type") != "view_submission" or view.get("callback_id") != WHY:
        return None
    try:
        metadata = json.loads(view.get("private_metadata") or "")
        answer_id = int(metadata["answer"])
    except (ValueError, KeyError, TypeError):
        return None
    values = (view.get("state") or {}).get("values") or {}
    comment = ((values.get(WHY_BLOCK) or {}).get(WHY_INPUT) or {}).get("value") or ""
    chosen = ((values.get(PERSON_BLOCK) or {}).get(PERSON_INPUT) or {}).get("selected_options")
    return Explained(
        answer_id=answer_id,
        user_id=str((body.get("user") or {}).get("id") or ""),
        comment=str(comment),
        person=any(o.get("value") == PERSON for o in chosen or []),
        channel=str(metadata.get("channel") or ""),
        ts=str(metadata.get("ts") or ""),
        view_id=str(view.get("id") or ""),
    )


def solved_press(body: Mapping[str, Any]) -> tuple[int, bool, str, StaffPost] | None:
    """Yes or No under "Did we solve it?": escalation id, the answer, who, the message."""
    action = _first_action(body)
    container = body.get("container") or {}
    value = str((action or {}).get("value") or "")
    user = str((body.get("user") or {}).get("id") or "")
    if action is None or not value.isdigit() or not user:
        return None
    where = StaffPost(
        str(container.get("channel_id") or ""), str(container.get("message_ts") or "")
    )
    return int(value), action.get("action_id") == f"{SOLVED}_yes", user, where


class FeedbackListeners:
    """Bolt's listeners for the feedback buttons, the 👎's modal and "Did we solve it?"."""

    def __init__(self, *, workflow: Workflow, feedback: Feedback, web: SlackWeb) -> None:
        self._workflow = workflow
        self._feedback = feedback
        self._web = web

    async def on_rated(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = rated(body)
        if press is not None:
            self._workflow.track(self._rated(press), f"rating of answer {press.answer_id}")

    async def _rated(self, press: Rated) -> None:
        texts = self._feedback.texts
        answer = await self._feedback.rate(
            press.answer_id, user_id=press.user_id, rating=press.rating
        )
        if answer is None:
            await self._web.whisper(
                press.channel, press.user_id, texts.not_yours, thread=press.thread, about=press
            )
        elif press.rating is Rating.DOWN:
            modal = why_modal(press, texts.sorry)
            await self._web.open_view(press.trigger_id, modal, about=answer.key)

    async def on_explained(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        sent = explained(body)
        if sent is not None:
            self._workflow.track(self._explained(sent), f"why of answer {sent.answer_id}")

    async def _explained(self, sent: Explained) -> None:
        answer = await self._feedback.rate(
            sent.answer_id, user_id=sent.user_id, rating=Rating.DOWN, comment=sent.comment
        )
        if answer is None or not sent.person:
            return
        key = answer.key
        # "Talk to a person" is the "Talk to a human" button's turn, in the answer's thread.
        message = IncomingMessage(
            key=key,
            author_id=sent.user_id,
            text=TALK_TO_HUMAN_LABEL,
            message_id=f"button:{sent.view_id}",
            direct=is_direct({"channel": key.channel_id}),
            wants_person=True,
        )
        await self._workflow.customer_turn(Inbound(message=message, context=sent.ts))

    async def on_solved(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        found = solved_press(body)
        if found is not None:
            self._workflow.track(self._solved(*found), f"solved answer on {found[0]}")

    async def _solved(self, escalation_id: int, solved: bool, user: str, where: StaffPost) -> None:
        texts = self._feedback.texts
        if not await self._feedback.solved(escalation_id, user_id=user, solved=solved):
            await self._web.whisper(where.channel_id, user, texts.not_yours, about=where)
            return
        said = escape(texts.solved_thanks)
        thanks = SlackMessage(said, [{"type": "section", "text": {"type": "mrkdwn", "text": said}}])
        await self._web.update(where, thanks, about=f"escalation {escalation_id}")


def _first_action(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    actions = body.get("actions")
    if body.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return None
    return actions[0] if isinstance(actions[0], Mapping) else None
