"""notice: the staff notification, its state line and buttons, and the re-ping, table-driven."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bots.slack.notice import (
    NOTE_LIMIT,
    TEAM_NAME,
    customer_message,
    cut,
    notification,
    reping,
    state_line,
    waited,
)
from bots.slack.render import TEXT_LIMIT
from core.types import ConversationKey, EscalationView
from tests.slack_helpers import unescape

PING = "<!subteam^S0SUPPORT>"
# The staff buttons' action_ids, literally: buttons posted before an upgrade carry these.
CLAIM, RESOLVE, HAND_BACK = "escalation_claim", "escalation_resolve", "escalation_hand_back"
LINK = "https://fake.slack.test/archives/D0DM/p1700000001000100?a=1&b=2"
OPENED = datetime(2026, 3, 2, 15, 0)
DM = ConversationKey("slack", "T0TEAM", "D0DM", "-")
THREAD = ConversationKey("slack", "T0TEAM", "C0SUPPORT", "1700000100.000100")
OPEN = EscalationView(
    id=7,
    key=DM,
    customer_id="U0CUSTOMER",
    customer_message_id="D0DM:1700000001.000100",
    reason="Refund over <$500> & angry",
    summary="Topic: billing. Customer said “<!channel> help <@U0ALL>”",
    state="open",
    claimed_by=None,
    closed_by=None,
    created_at=OPENED,
    updated_at=OPENED,
    staff=None,
)
LATER = OPENED + timedelta(minutes=5)
CLAIMED = replace(OPEN, state="claimed", claimed_by="U0STAFF1", updated_at=LATER)
RESOLVED = replace(CLAIMED, state="resolved", closed_by="U0STAFF2")
HANDED_BACK = replace(OPEN, state="handed_back", closed_by="U0STAFF1", updated_at=LATER)
# Slack control sequences: the only ones allowed are built in code.
CONTROL = re.compile(r"<[!@#][^>]*>")


def texts(message) -> list[str]:  # type: ignore[no-untyped-def]
    shown = [message.text]
    for block in message.blocks:
        if block["type"] == "section":
            shown.append(block["text"]["text"])
        elif block["type"] == "context":
            shown.extend(e["text"] for e in block["elements"])
    return shown


def buttons(message) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_dm_notification_pings_and_names_everything_staff_need() -> None:
    message = notification(OPEN, team=PING, link=LINK)
    assert message.text.startswith(f"{PING} Escalation #7 from <@U0CUSTOMER> (Slack DM)")
    assert "*Reason:* Refund over &lt;$500&gt; &amp; angry" in message.text
    assert "&lt;!channel&gt; help &lt;@U0ALL&gt;" in message.text
    assert f"<{LINK.replace('&', '&amp;')}|Open the customer's message>" in message.text
    for shown in texts(message):
        assert {m for m in CONTROL.findall(shown) if not m.startswith("<!date^")} <= {
            PING,
            "<@U0CUSTOMER>",
        }
    assert message.text.count("<!subteam") == 1
    assert buttons(message) == [CLAIM, RESOLVE, HAND_BACK]
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert {e["value"] for e in actions["elements"]} == {"7"}
    assert [e.get("style") for e in actions["elements"]] == ["primary", None, None]


def test_channel_thread_notification_names_the_team_without_pinging() -> None:
    message = notification(replace(OPEN, key=THREAD), team=TEAM_NAME, link=LINK)
    assert message.text.startswith(
        "Support team Escalation #7 from <@U0CUSTOMER> (Slack, thread in <#C0SUPPORT>)"
    )
    assert "subteam" not in message.text


@pytest.mark.parametrize(
    ("view", "line", "shown_buttons"),
    [
        (OPEN, ":red_circle: *Open* since <!date^", [CLAIM, RESOLVE, HAND_BACK]),
        (CLAIMED, ":large_yellow_circle: *Claimed* by <@U0STAFF1> <!date^", [RESOLVE, HAND_BACK]),
        (RESOLVED, ":white_check_mark: *Resolved* by <@U0STAFF2> <!date^", []),
        (HANDED_BACK, ":white_check_mark: *Handed back to the bot* by <@U0STAFF1> <!date^", []),
    ],
    ids=["open", "claimed", "resolved", "handed_back"],
)
def test_state_line_and_buttons_follow_the_state(
    view: EscalationView, line: str, shown_buttons: list[str]
) -> None:
    assert state_line(view).startswith(line)
    message = notification(view, team=PING, link=LINK)
    assert buttons(message) == shown_buttons
    assert state_line(view) in message.text


def test_state_line_says_when_in_each_readers_time_zone() -> None:
    stamp = int((LATER - datetime(1970, 1, 1)).total_seconds())
    assert f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|2026-03-02 15:05 UTC>" in (
        state_line(CLAIMED)
    )
    assert state_line(OPEN).endswith("; replies in this thread go to the customer")
    assert state_line(CLAIMED).endswith("; replies in this thread go to the customer")
    assert "replies in this thread" not in state_line(replace(CLAIMED, key=THREAD))
    assert "replies in this thread" not in state_line(RESOLVED)
    assert "(claimed by <@U0STAFF1>)" in state_line(RESOLVED)


def test_long_reason_and_summary_are_cut_within_slacks_limits() -> None:
    huge = replace(OPEN, reason="&" * 5000, summary="<x> " * 3000)
    message = notification(huge, team=PING, link=LINK)
    assert len(message.text) <= TEXT_LIMIT
    assert all(len(shown) <= 3000 for shown in texts(message)[1:])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("short & sweet", "short &amp; swe…"),
        ("short and sweet!", "short and sweet!"),
        ("", "(none given)"),
        ("&" * 10, "&amp;&amp;&amp;…"),
        ("abc<" * 5, "abc&lt;abc&lt;a…"),
    ],
)
def test_cut_never_splits_an_entity(raw: str, expected: str) -> None:
    shown = cut(raw, limit=16)
    assert shown == expected
    assert len(shown) <= 16
    assert unescape(shown.removesuffix("…")) in raw or raw == ""


def test_cut_keeps_text_at_the_limit_whole() -> None:
    assert cut("x" * NOTE_LIMIT) == "x" * NOTE_LIMIT


@pytest.mark.parametrize(
    ("key", "message_id", "expected"),
    [
        (DM, "D0DM:1700000001.000100", ("D0DM", "1700000001.000100")),
        (THREAD, "C0SUPPORT:1700000150.000100", ("C0SUPPORT", "1700000150.000100")),
        (THREAD, "button:1700000510.000200", ("C0SUPPORT", "1700000100.000100")),
        (DM, "button:1700000510.000200", None),
        (DM, None, None),
    ],
)
def test_customer_message_is_linked_when_slack_has_one(
    key: ConversationKey, message_id: str | None, expected: tuple[str, str] | None
) -> None:
    assert customer_message(replace(OPEN, key=key, customer_message_id=message_id)) == expected


@pytest.mark.parametrize(
    ("elapsed", "said"),
    [
        (timedelta(seconds=7), "less than a minute"),
        (timedelta(minutes=1, seconds=30), "1 minute"),
        (timedelta(minutes=12), "12 minutes"),
    ],
)
def test_waited(elapsed: timedelta, said: str) -> None:
    assert waited(OPENED, OPENED + elapsed) == said


def test_reping_pings_and_links() -> None:
    message = reping(OPEN, team=PING, link=LINK, now=OPENED + timedelta(minutes=10))
    assert message.text.startswith(f"{PING} Escalation #7 from <@U0CUSTOMER> is still unclaimed")
    assert "after 10 minutes" in message.text
    assert "Open the customer's message>" in message.text
