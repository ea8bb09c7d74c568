"""render: escaping that defuses pings, the code-built mentions, and splitting to Slack's limits."""

from __future__ import annotations

import re

import pytest

from bots.slack.render import (
    MARKDOWN_LIMIT,
    TEXT_LIMIT,
    SlackMessage,
    group_mention,
    render_reply,
    staff_notice,
    user_mention,
)
from core.types import Escalation
from tests.slack_helpers import unescape

PINGS = ["<!channel>", "<!here>", "<!everyone>", "<@U0ALL>", "<!subteam^S0ALL>", "<#C0GEN>"]
# After escaping, no Slack control sequence may start anywhere in what we post.
CONTROL = re.compile(r"<[!@#]")


def all_text(message: SlackMessage) -> list[str]:
    texts = [message.text]
    for block in message.blocks:
        texts.append(block["text"] if block["type"] == "markdown" else block["text"]["text"])
    return texts


@pytest.mark.parametrize("ping", PINGS)
def test_model_output_cannot_ping(ping: str) -> None:
    [message] = render_reply(f"Sure {ping} here you go, {ping.replace('<', '&lt;')}")
    for text in all_text(message):
        assert not CONTROL.search(text)
        assert "&lt;" in text
    assert unescape(message.text) == f"Sure {ping} here you go, {ping.replace('<', '&lt;')}"


def test_plain_reply_is_a_markdown_block_with_the_same_fallback() -> None:
    [message] = render_reply("**Bold** and `code` & more")
    assert message.text == "**Bold** and `code` &amp; more"
    assert message.blocks == [{"type": "markdown", "text": message.text}]


def test_ping_ends_the_last_message_in_text_and_an_mrkdwn_section() -> None:
    messages = render_reply("word " * 2000, ping=group_mention("S0SUPPORT"))
    assert len(messages) > 1
    assert all("subteam" not in t for m in messages[:-1] for t in all_text(m))
    last = messages[-1]
    assert last.text.endswith("\n\n<!subteam^S0SUPPORT>")
    assert last.blocks[-1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "<!subteam^S0SUPPORT>"},
    }


def test_empty_reply_with_ping_is_just_the_ping_and_without_is_nothing() -> None:
    assert render_reply("  ") == []
    [only] = render_reply("", ping="<!subteam^S1>")
    assert only.text == "<!subteam^S1>"


def test_three_thousand_line_answer_is_split_within_limits_and_loses_nothing() -> None:
    lines = [f"Line {i:04d}: check <setting> & retry if needed." for i in range(3000)]
    lines[1500:1500] = ["```python", *(f"x_{i} = {i} < {i + 1}" for i in range(200)), "```"]
    answer = "\n".join(lines)
    messages = render_reply(answer, ping="<!subteam^S0SUPPORT>")

    assert len(messages) > 10
    for message in messages:
        assert len(message.text) <= TEXT_LIMIT
        markdown = [b["text"] for b in message.blocks if b["type"] == "markdown"]
        assert sum(map(len, markdown)) <= MARKDOWN_LIMIT
        assert len(message.blocks) <= 50
        assert not CONTROL.search(markdown[0])
        assert markdown[0].count("```") % 2 == 0, "every chunk keeps its code fences balanced"
    # Splitting only adds fences (closing and reopening a code block) and trims whitespace.
    posted = "\n".join(unescape(m.blocks[0]["text"]) for m in messages)
    posted_lines = [line for line in posted.splitlines() if line.strip()]
    assert [line for line in posted_lines if not line.startswith("```")] == [
        line for line in lines if not line.startswith("```")
    ]


def test_text_that_grows_when_escaped_is_split_further() -> None:
    answer = " ".join(["<&>"] * 3000)  # 12,000 characters that escape to 36,000
    messages = render_reply(answer)
    assert all(len(m.text) <= TEXT_LIMIT for m in messages)
    assert " ".join(unescape(m.text) for m in messages) == answer


def test_staff_notice_names_everything_staff_need() -> None:
    escalation = Escalation(
        reason="Refund over <$500> & angry",
        summary="Topic: billing. Customer's last message: “<!channel> help”",
        customer_id="U0CUSTOMER",
    )
    text = staff_notice(
        escalation,
        customer_id="U0CUSTOMER",
        ping="<!subteam^S0SUPPORT>",
        permalink="https://x.slack.test/archives/D0DM/p1?thread_ts=1&cid=D0DM",
    )
    assert text.startswith("<!subteam^S0SUPPORT> Escalation from <@U0CUSTOMER>")
    assert "*Reason:* Refund over &lt;$500&gt; &amp; angry" in text
    assert "&lt;!channel&gt; help" in text
    assert "<https://x.slack.test/archives/D0DM/p1?thread_ts=1&amp;cid=D0DM|" in text
    assert text.count("<!") == 1


def test_staff_notice_without_ping_or_link_and_with_long_text() -> None:
    escalation = Escalation(reason="x" * 5000, summary="", customer_id="")
    text = staff_notice(escalation, customer_id="not-a-user-id", ping=None, permalink=None)
    assert text.startswith("Escalation from not-a-user-id")
    assert len(text) < TEXT_LIMIT
    assert "*Summary:* (none given)" in text


def test_mentions_are_only_built_from_real_ids() -> None:
    assert user_mention("U0CUSTOMER") == "<@U0CUSTOMER>"
    assert user_mention("<!channel>") == "&lt;!channel&gt;"
    with pytest.raises(ValueError, match="user group"):
        group_mention("S1> <!channel")
