"""render: escaping that defuses pings, the code-built mentions, and splitting to Slack's limits."""

from __future__ import annotations

import re

import pytest

from bots.slack.render import (
    MARKDOWN_LIMIT,
    TALK_TO_HUMAN,
    TEXT_LIMIT,
    SlackMessage,
    channel_mention,
    group_mention,
    render_reply,
    render_said,
    user_mention,
)
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


def test_talk_to_human_button_goes_under_the_last_message_only() -> None:
    messages = render_reply("word " * 2000, offer_person=True)
    assert len(messages) > 1
    assert all(len(m.blocks) == 1 for m in messages[:-1])
    button = messages[-1].blocks[-1]
    assert button["type"] == "actions"
    [element] = button["elements"]
    assert element["action_id"] == TALK_TO_HUMAN
    assert element["text"] == {"type": "plain_text", "text": "Talk to a human"}
    assert render_reply("", offer_person=True) == []


def test_said_keeps_the_code_built_prefix_and_escapes_the_words() -> None:
    [message] = render_said("<@U0CUSTOMER> wrote:", "<!channel> my order & more", empty="x")
    assert message.text == "<@U0CUSTOMER> wrote: &lt;!channel&gt; my order &amp; more"
    long = render_said("*Dana* (support team):", "word " * 2000, empty="x")
    assert len(long) > 1 and long[0].text.startswith("*Dana* (support team): word")
    assert not any(m.text.startswith("*Dana*") for m in long[1:])
    [blank] = render_said("<@U0CUSTOMER> wrote:", "  ", empty="a file <here>")
    assert blank.text == "<@U0CUSTOMER> wrote: _a file &lt;here&gt;_"


def test_mentions_are_only_built_from_real_ids() -> None:
    assert user_mention("U0CUSTOMER") == "<@U0CUSTOMER>"
    assert user_mention("<!channel>") == "&lt;!channel&gt;"
    assert channel_mention("C0SUPPORT") == "<#C0SUPPORT>"
    assert channel_mention("#general>") == "#general&gt;"
    with pytest.raises(ValueError, match="user group"):
        group_mention("S1> <!channel")
