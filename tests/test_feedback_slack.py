"""👍 / 👎 under answers on Slack: FakeSlack → Bolt (signed ``block_actions`` and
``view_submission`` payloads) → SlackBot → the real engine, desk and database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bots.slack.feedback import (
    PERSON,
    PERSON_BLOCK,
    PERSON_INPUT,
    WHY,
    WHY_BLOCK,
    WHY_INPUT,
    explained,
    rated,
)
from bots.slack.render import FEEDBACK
from core.config import Settings
from core.desk import Desk
from core.engine import Engine
from core.feedback import Rating
from storage.database import create_engine
from storage.models import FeedbackRow
from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack, Params, post_action
from tests.slack_helpers import FIXTURES, SECRET, Harness, load_body, running_bot

CUSTOMER = "U0CUSTOMER"


@pytest.fixture
async def bot(slack: FakeSlack, engine: Engine, desk: Desk) -> AsyncIterator[Harness]:
    async with running_bot(slack, engine, desk=desk) as harness:
        yield harness


async def ratings(database_url: str) -> list[tuple[int, str, str, str | None]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(
                    FeedbackRow.message_id,
                    FeedbackRow.user_id,
                    FeedbackRow.rating,
                    FeedbackRow.comment,
                ).order_by(FeedbackRow.id)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        await engine.dispose()


async def answer(bot: Harness, fake_claude: FakeAnthropic) -> tuple[Params, int]:
    """The customer asks in their DM; the answer and the id its 👍 / 👎 carry."""
    fake_claude.queue(text("Returns are free within 30 days."))
    await bot.deliver(load_body("message_im", text="Can I return a rug?", ts="1700000001.000100"))
    [posted] = bot.posts("D0DM")
    [feedback] = [b for b in posted["blocks"] if b["type"] == "context_actions"]
    [element] = feedback["elements"]
    assert element["type"] == "feedback_buttons" and element["action_id"] == FEEDBACK
    value = element["positive_button"]["value"]
    assert element["negative_button"]["value"] == value.replace("up:", "down:")
    return posted, int(value.removeprefix("up:"))


async def rate(
    bot: Harness, message: Params, word: str, *, user: str = CUSTOMER, trigger: str | None = None
) -> None:
    """Press 👍 (``up``) or 👎 (``down``) on ``message`` as Slack sends it."""
    body = json.loads((FIXTURES / "block_actions.json").read_text(encoding="utf-8"))
    body["container"] |= {"channel_id": message["channel"], "message_ts": message["ts"]}
    body["channel"]["id"] = message["channel"]
    body["message"] = {k: v for k, v in message.items() if k != "channel"}
    [block] = [b for b in message["blocks"] if b["type"] == "context_actions"]
    [element] = block["elements"]
    button = element["positive_button" if word == "up" else "negative_button"]
    body["user"] |= {"id": user}
    body["trigger_id"] = trigger if trigger is not None else bot.fake.trigger()
    body["actions"] = [
        {
            "type": "feedback_buttons",
            "action_id": FEEDBACK,
            "block_id": block["block_id"],
            "text": button["text"],
            "value": button["value"],
            "action_ts": "1700000520.000100",
        }
    ]
    assert await post_action(bot.events_url, body, secret=SECRET) == 200
    await bot.bot.drain()


async def test_pressing_twice_keeps_one_row_with_the_last_rating(
    bot: Harness, fake_claude: FakeAnthropic, database_url: str, settings: Settings
) -> None:
    posted, answer_id = await answer(bot, fake_claude)

    await rate(bot, posted, "up")
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "up", None)]
    assert bot.fake.views == [], "a 👍 opens nothing: Slack shows the pressed button"
    await rate(bot, posted, "down")
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "down", None)]
    await rate(bot, posted, "up")
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "up", None)]

    # Someone else's press is not stored, and they are told so privately.
    await rate(bot, posted, "down", user="U0OTHER")
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "up", None)]
    [told] = bot.fake.calls_to("chat.postEphemeral")
    assert settings.persona is not None
    assert (told["user"], told["text"]) == ("U0OTHER", settings.persona.feedback.not_yours)


async def test_thumbs_down_opens_the_form_whose_comment_is_stored_and_which_asks_for_a_person(
    bot: Harness, fake_claude: FakeAnthropic, database_url: str, settings: Settings
) -> None:
    posted, answer_id = await answer(bot, fake_claude)
    await rate(bot, posted, "down")
    [view] = bot.fake.views
    assert (
        view["callback_id"] == WHY and json.loads(view["private_metadata"])["answer"] == answer_id
    )

    values = {
        WHY_BLOCK: {WHY_INPUT: {"type": "plain_text_input", "value": "  It was   about a sofa "}},
        PERSON_BLOCK: {
            PERSON_INPUT: {
                "type": "checkboxes",
                "selected_options": [
                    {"text": {"type": "plain_text", "text": "Pass me"}, "value": PERSON}
                ],
            }
        },
    }
    submission = {
        "type": "view_submission",
        "team": {"id": "T0TEAM", "domain": "fake"},
        "user": {"id": CUSTOMER, "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "token": "unused",
        "trigger_id": bot.fake.trigger(),
        "view": {**view, "state": {"values": values}},
    }
    assert await post_action(bot.events_url, submission, secret=SECRET) == 200
    await bot.bot.drain()

    assert await ratings(database_url) == [(answer_id, CUSTOMER, "down", "It was about a sofa")]
    # "Talk to a person" took the "Talk to a human" path: the hand-off, and the staff notice.
    assert settings.persona is not None
    handed = bot.posts("D0DM")[-1]
    assert handed["text"] == settings.persona.handoff
    [notice] = bot.notifications()
    assert "The customer asked for a person" in notice["text"]

    # A later 👍 changes the rating and keeps what was wrong.
    await rate(bot, posted, "up")
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "up", "It was about a sofa")]


async def test_the_form_needs_a_fresh_trigger_as_on_slack(
    bot: Harness, fake_claude: FakeAnthropic, database_url: str, slack: FakeSlack
) -> None:
    posted, answer_id = await answer(bot, fake_claude)
    used = slack.trigger()
    await rate(bot, posted, "down", trigger=used)
    assert len(slack.views) == 1
    # The same trigger again, or one Slack never issued: refused, nothing opens; the rating
    # is stored all the same.
    await rate(bot, posted, "down", trigger=used)
    await rate(bot, posted, "down", trigger="1234.made-up")
    assert len(slack.views) == 1
    assert await ratings(database_url) == [(answer_id, CUSTOMER, "down", None)]
    assert len(slack.calls_to("views.open")) == 3


def _press(value: str, **changes: Any) -> dict[str, Any]:
    body = json.loads((FIXTURES / "block_actions.json").read_text(encoding="utf-8"))
    body["actions"] = [{"type": "feedback_buttons", "action_id": FEEDBACK, "value": value}]
    return body | changes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_press("up:7"), (7, Rating.UP)),
        (_press("down:12"), (12, Rating.DOWN)),
        (_press("sideways:7"), None),
        (_press("up:seven"), None),
        (_press("up:7", user={}), None),
        (_press("up:7", type="view_submission"), None),
        (_press("up:7", actions=[]), None),
    ],
)
def test_a_press_is_read_from_the_payload_or_refused(
    body: dict[str, Any], expected: tuple[int, Rating] | None
) -> None:
    found = rated(body)
    assert (found.answer_id, found.rating) == expected if found else expected is None


@pytest.mark.parametrize(
    "metadata", ["", "not json", json.dumps({"answer": "x"}), json.dumps({"channel": "D1"})]
)
def test_a_form_without_its_answer_is_ignored(metadata: str) -> None:
    view = {"callback_id": WHY, "private_metadata": metadata, "state": {"values": {}}}
    assert explained({"type": "view_submission", "user": {"id": CUSTOMER}, "view": view}) is None
