"""Replies that are never lost and never sent twice: the outbox (issue 9).

The real ``supportbot run slack`` process is killed after it stored its answer, with the post
held by the fake Slack (never made) or made and never answered (an unknown outcome); started
again, it delivers the answer exactly once, asking Slack first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.anthropic_api import FakeAnthropic, text
from tests.fakes.slack_api import FakeSlack
from tests.slack_helpers import load_body
from tests.test_recovery import ANSWER, restarted_after_a_kill


@pytest.mark.parametrize(
    "made", [False, True], ids=["killed-before-the-post", "killed-during-the-post"]
)
async def test_an_answer_stored_when_the_process_was_killed_is_posted_once_after_restart(
    tmp_path: Path, fake_claude: FakeAnthropic, made: bool
) -> None:
    question = load_body("message_im", text="How long does a refund take?")
    channel = question["event"]["channel"]

    async def posting(slack: FakeSlack, _: FakeAnthropic) -> None:
        await slack.wait_for("chat.postMessage", lambda p: p["channel"] == channel, timeout=30)

    async with FakeSlack() as slack:
        slack.hang("chat.postMessage", record=made)
        async with restarted_after_a_kill(
            tmp_path,
            fake_claude,
            slack,
            question,
            first=text(ANSWER),
            killed=posting,
            SUPPORTBOT_RECOVER_AFTER_SECONDS="1",
        ) as second:
            await second.read_until("delivered late")
            looked = slack.calls_to("conversations.history")

    assert [m["text"] for m in slack.messages if m["channel"] == channel] == [ANSWER]
    assert len(fake_claude.requests) == 1, "the stored answer is sent, Claude is not asked again"
    assert [p["channel"] for p in looked] == [channel], "Slack was asked before posting again"
    assert len(slack.calls_to("chat.postMessage")) == (1 if made else 2)
    assert slack.statuses == {}, "no loading status is left behind"
