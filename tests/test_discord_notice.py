"""Pure rendering of what staff see: notifications, state lines, buttons, re-pings, links."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import discord
import pytest

from bots.discord.buttons import EscalationButton, escalation_notice
from bots.discord.notice import (
    ACCENT,
    age,
    jump_url,
    notification,
    reminder,
    state_line,
)
from core.types import ConversationKey, EscalationView, StaffPost

CREATED = datetime(2026, 3, 2, 15, 0)  # naive UTC, as stored
LATER = CREATED + timedelta(minutes=7)
CREATED_T, LATER_T = 1772463600, 1772464020  # the same moments as Unix time
DM = ConversationKey("discord", "@me", "60", "-")
THREAD = ConversationKey("discord", "1", "10", "30")
VIEW = EscalationView(
    id=12,
    key=DM,
    customer_id="50",
    customer_message_id="40",
    reason="Billing dispute",
    summary="Charged twice\nfor order 42.",
    state="open",
    claimed_by=None,
    closed_by=None,
    created_at=CREATED,
    updated_at=CREATED,
    staff=StaffPost("70", "80"),
)


def at(**changes: Any) -> EscalationView:
    return replace(VIEW, **changes)


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, f"open since <t:{CREATED_T}:f>, nobody has claimed it yet"),
        (
            {"state": "claimed", "claimed_by": "90", "updated_at": LATER},
            f"claimed by <@90> <t:{LATER_T}:f>",
        ),
        (
            {"state": "resolved", "claimed_by": "90", "closed_by": "90", "updated_at": LATER},
            f"resolved by <@90> <t:{LATER_T}:f>",
        ),
        (
            {"state": "resolved", "claimed_by": "90", "closed_by": "91", "updated_at": LATER},
            f"resolved by <@91> <t:{LATER_T}:f> (claimed by <@90>)",
        ),
        (
            {"state": "handed_back", "closed_by": "U-cli", "updated_at": LATER},
            f"handed back to the bot by U-cli <t:{LATER_T}:f>",
        ),
    ],
    ids=["open", "claimed", "resolved", "resolved-by-another", "handed-back-elsewhere"],
)
def test_state_line_says_who_and_when(changes: dict[str, Any], line: str) -> None:
    assert state_line(at(**changes)) == line


@pytest.mark.parametrize(
    ("state", "colour", "buttons"),
    [
        (
            "open",
            0xE67E22,
            [("Claim", "claim"), ("Resolve", "resolve"), ("Hand back to bot", "handback")],
        ),
        ("claimed", 0x3498DB, [("Resolve", "resolve"), ("Hand back to bot", "handback")]),
        ("resolved", 0x2ECC71, []),
        ("handed_back", 0x95A5A6, []),
    ],
)
def test_the_notice_container_follows_the_state(
    state: str, colour: int, buttons: list[tuple[str, str]]
) -> None:
    layout = escalation_notice(at(state=state), "the notice")
    assert layout.timeout is None and layout.has_components_v2()
    [container] = layout.children
    assert isinstance(container, discord.ui.Container)
    assert container.accent_colour == colour == ACCENT[state]
    texts = [i.content for i in layout.walk_children() if isinstance(i, discord.ui.TextDisplay)]
    assert texts == ["the notice"]
    # The custom_id format predates this code: buttons posted before an upgrade keep working;
    # a closed escalation's notice has none.
    pressable = [i.item for i in layout.walk_children() if isinstance(i, EscalationButton)]
    assert [(button.label, button.custom_id) for button in pressable] == [
        (label, f"supportbot:esc:{action}:12") for label, action in buttons
    ]


def test_notification_lists_everything_staff_need() -> None:
    out = notification(VIEW, role_id=5, ping=True)
    assert out.ping_role_id == 5
    assert out.content.splitlines() == [
        "<@&5> **Escalation #12**: a customer needs a person.",
        "Customer: <@50>",
        "Platform: Discord, direct message",
        "Reason: Billing dispute",
        "Summary: Charged twice for order 42.",
        # Staff cannot open the customer's DM; the bot relays it into the staff thread.
        "DM: the conversation is relayed in this thread",
        f"State: {state_line(VIEW)}",
    ]


@pytest.mark.parametrize(
    ("role_id", "ping", "starts"),
    [(5, False, "<@&5> **Escalation"), (None, True, "**Escalation")],
    ids=["shown-not-pinged", "no-role"],
)
def test_notification_that_pings_no_one(role_id: int | None, ping: bool, starts: str) -> None:
    out = notification(at(key=THREAD), role_id=role_id, ping=ping)
    assert out.content.startswith(starts)
    assert out.ping_role_id is None
    assert "Platform: Discord, thread <#30> in <#10>" in out.content
    assert "\nMessage: https://discord.com/channels/1/30/40\n" in out.content


def test_a_huge_summary_stays_within_one_message() -> None:
    out = notification(at(summary="word " * 3000, reason="why " * 400), role_id=5, ping=True)
    assert len(out.content) < 2000


@pytest.mark.parametrize(
    ("key", "message_id", "url"),
    [
        (DM, "40", "https://discord.com/channels/@me/60/40"),
        (THREAD, "40", "https://discord.com/channels/1/30/40"),
        (THREAD, "30", "https://discord.com/channels/1/30"),  # the thread's starter message
        (THREAD, "button:77", "https://discord.com/channels/1/30"),  # a button press
        (DM, None, "https://discord.com/channels/@me/60"),
    ],
    ids=["dm", "in-thread", "starter", "button", "none"],
)
def test_jump_url(key: ConversationKey, message_id: str | None, url: str) -> None:
    assert jump_url(key, message_id) == url


@pytest.mark.parametrize(
    ("after", "text"),
    [(timedelta(seconds=20), "less than a minute"), (timedelta(minutes=1), "1 minute")],
)
def test_reminder_pings_the_role_with_the_age(after: timedelta, text: str) -> None:
    out = reminder(at(key=THREAD), role_id=5, now=CREATED + after)
    assert out.ping_role_id == 5
    assert out.content == (
        f"<@&5> Escalation #12 is still unclaimed after {text}. "
        "Message: https://discord.com/channels/1/30/40"
    )


def test_a_dm_reminder_points_at_the_staff_thread() -> None:
    out = reminder(VIEW, role_id=5, now=LATER)
    assert out.content == (
        "<@&5> Escalation #12 is still unclaimed after 7 minutes. "
        "DM: the conversation is relayed in this thread"
    )


def test_age() -> None:
    assert [age(m) for m in (0, 1, 10)] == ["less than a minute", "1 minute", "10 minutes"]
