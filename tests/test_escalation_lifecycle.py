"""The escalation lifecycle in the core: triggers, one live escalation, handoff, relay, re-ping."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from bots.app import Runtime, open_runtime
from core.config import Settings
from core.desk import Desk
from core.engine import Engine, Limits
from core.escalation import Action, State
from core.hours import SupportHours, describe
from core.types import ConversationKey, StaffPost
from tests.engine_helpers import KEY, message, texts
from tests.fakes.anthropic_api import FakeAnthropic, overloaded, text, tool_use

DM = ConversationKey("test", "T1", "D9", "-")
STAFF = StaffPost("C-staff", "1700000001.000200")


def limited_at(runtime: Runtime, settings: Settings, now: list[datetime]) -> tuple[Engine, Desk]:
    """A limited-mode engine and a desk over ``runtime``'s store, both on the clock ``now[0]``
    (re-pings due after the default 10 minutes)."""
    assert settings.persona is not None
    limits = Limits(token_budget=12000, idle_timeout=timedelta(hours=24), max_input_chars=8000)
    engine = Engine(
        store=runtime.store, llm=None, persona=settings.persona, limits=limits, clock=lambda: now[0]
    )
    return engine, Desk(store=runtime.store, clock=lambda: now[0])


async def test_asking_for_a_person_escalates_without_asking_claude_to_answer(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(text("Customer asked for a human about a chair."))
    reply = await engine.handle(message("This chair is wobbly, can I talk to a human please?"))

    assert reply is not None and reply.text == settings.persona.handoff
    assert reply.escalation is not None and reply.escalation.new
    assert reply.escalation.reason == "The customer asked for a person"
    # The only Claude call wrote the staff note; none answered the customer.
    assert len(fake_claude.requests) == 1
    assert fake_claude.requests[0].body["system"][0]["text"].startswith("You write hand-off")


async def test_the_talk_to_a_human_button_escalates(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(text("Customer pressed the button after asking about rugs."))
    pressed = replace(message("(button)"), wants_person=True)
    reply = await engine.handle(pressed)

    assert reply is not None and reply.escalation is not None
    assert reply.text == settings.persona.handoff
    assert len(fake_claude.requests) == 1


async def test_a_second_trigger_updates_the_live_escalation_instead_of_pinging(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Billing dispute"}),
        text("Double charge on HG-5."),
        overloaded(),
        overloaded(),
    )
    first = await engine.handle(message("I was charged twice for HG-5!"))
    second = await engine.handle(message("Hello??"))

    assert first is not None and first.escalation is not None and first.escalation.new
    assert second is not None and second.escalation is not None
    assert not second.escalation.new and second.escalation.id == first.escalation.id
    [live] = await desk.live()
    assert live.reason == "Billing dispute; Claude unavailable (overloaded)"


async def test_two_dont_knows_in_a_row_escalate(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(
        text("I'm not sure which finish that lamp has."),
        text("I don't know whether it comes in brass."),
        text("Customer asks about lamp finishes."),
    )
    first = await engine.handle(message("What finish does the Arlo lamp have?"))
    second = await engine.handle(message("Does it come in brass?"))

    assert first is not None and first.escalation is None
    assert second is not None and second.escalation is not None
    assert second.text.startswith("I don't know whether it comes in brass.")
    assert second.text.endswith(settings.persona.handoff)
    assert second.escalation.reason == "The bot could not answer twice in a row"


async def test_an_answer_between_dont_knows_resets_the_count(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        text("I'm not sure."), text("Express takes 2–3 business days."), text("I'm not sure.")
    )
    replies = [await engine.handle(message(q)) for q in ("Brass?", "Express?", "Oak?")]
    assert all(r is not None and r.escalation is None for r in replies)


async def test_claimed_thread_goes_quiet_and_resolving_brings_the_bot_back_with_context(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Refund is late"}),
        text("Late refund for HG-9."),
    )
    reply = await engine.handle(message("My refund for HG-9 is two weeks late."))
    assert reply is not None and reply.escalation is not None and reply.escalation.id is not None
    escalation_id = reply.escalation.id

    claimed = await desk.claim(escalation_id, staff_id="U-dana")
    assert claimed is not None and claimed.state == "claimed" and claimed.claimed_by == "U-dana"
    assert await desk.staff_said(
        KEY, staff_name="Dana", text="I've reissued it today.", message_id="staff-1"
    )
    assert await engine.handle(message("Thanks, when will I see it?")) is None
    assert len(fake_claude.requests) == 2

    resolved = await desk.resolve(escalation_id, staff_id="U-dana")
    assert resolved is not None and resolved.state == "resolved" and not resolved.live
    fake_claude.queue(text("It should arrive within 5–7 business days."))
    back = await engine.handle(message("One more question: is shipping free?"))

    assert back is not None and back.text == "It should arrive within 5–7 business days."
    sent = texts(fake_claude.requests[-1].body["messages"])
    assert ("assistant", "Dana (support team): I've reissued it today.") in sent
    assert sent[-1] == (
        "user",
        "Thanks, when will I see it? | One more question: is shipping free?",
    )


async def test_a_staff_post_alone_silences_the_bot_until_handed_back(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    fake_claude.queue(tool_use("escalate_to_human", {"reason": "Wants a person"}), text("Note."))
    reply = await engine.handle(message("Is the Oslo sofa back in stock?"))
    assert reply is not None and reply.escalation is not None and reply.escalation.id
    await desk.staff_said(KEY, staff_name="Sam", text="Checking stock now.", message_id="s-1")

    assert await engine.handle(message("ok")) is None
    handed = await desk.hand_back(reply.escalation.id, staff_id="U-sam")
    assert handed is not None and handed.state == "handed_back"
    assert await engine.handle(message("Anything else I should know?")) is not None


async def test_a_staff_post_without_an_escalation_is_context_not_a_takeover(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    await engine.handle(message("Do you ship to Canada?"))
    await desk.staff_said(KEY, staff_name="Sam", text="We do, since May.", message_id="s-9")
    fake_claude.queue(text("Yes — standard shipping to Canada takes 5–7 business days."))

    reply = await engine.handle(message("Great, how long does it take?"))
    assert reply is not None and reply.text.startswith("Yes")
    # The bot's answer ("OK") and the staff message merge into one assistant turn.
    assert texts(fake_claude.requests[-1].body["messages"]) == [
        ("user", "Do you ship to Canada?"),
        ("assistant", "OK | Sam (support team): We do, since May."),
        ("user", "Great, how long does it take?"),
    ]


async def test_a_staff_reply_cancels_the_reping(runtime: Runtime, settings: Settings) -> None:
    now = [datetime(2026, 3, 2, 15, 0)]
    engine, desk = limited_at(runtime, settings, now)
    await engine.handle(message("Talk to a person please."))
    await desk.staff_said(KEY, staff_name="Dana", text="Here, how can I help?", message_id="s-1")

    now[0] += timedelta(hours=1)
    assert await desk.due_repings({"test"}) == []
    assert await engine.handle(message("My sofa leg broke.")) is None


async def test_a_live_escalation_outlives_the_idle_timeout_and_start_over(
    runtime: Runtime, settings: Settings, fake_claude: FakeAnthropic
) -> None:
    now = [datetime(2026, 3, 2, 15, 0)]
    engine, desk = limited_at(runtime, settings, now)
    first = await engine.handle(message("Talk to a person please.", key=DM, direct=True))
    assert first is not None and first.escalation is not None and first.escalation.id
    await desk.attach(first.escalation.id, STAFF)
    await desk.claim(first.escalation.id, staff_id="U-dana")

    now[0] += timedelta(hours=25)
    later = await engine.handle(message("Any news on my refund?", key=DM, direct=True))
    restart = await engine.handle(message("start over", key=DM, direct=True))

    assert (later.text, later.relay) == ("", STAFF) and (restart.text, restart.relay) == ("", STAFF)
    assert later.relayed and restart.relayed, "both relays are kept in the staff outbox"
    [live] = await desk.live()
    assert live.state == "claimed"


async def test_dm_relay_both_ways_until_resolved(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Billing dispute"}), text("Double charge.")
    )
    reply = await engine.handle(message("You charged me twice.", key=DM, direct=True))
    assert reply is not None and reply.escalation is not None and reply.escalation.id
    await desk.attach(reply.escalation.id, STAFF)

    # Unclaimed: the bot still answers, and staff see what the customer wrote.
    fake_claude.queue(text("A person will look at the charge."))
    meanwhile = await engine.handle(message("It was $240 each time.", key=DM, direct=True))
    assert meanwhile is not None and meanwhile.relay == STAFF
    assert meanwhile.text == "A person will look at the charge."

    relayed = await desk.staff_replied(
        STAFF, staff_name="Dana", text="I see both charges; refunding one.", message_id="st-1"
    )
    assert relayed is not None and relayed.key == DM
    assert relayed.text == "I see both charges; refunding one."
    # The same staff message delivered twice is relayed once.
    assert await desk.staff_replied(STAFF, staff_name="Dana", text="dup", message_id="st-1") is None

    # A person is talking now: the customer's messages go to staff, the bot says nothing.
    quiet = await engine.handle(message("Thank you!", key=DM, direct=True))
    assert quiet is not None and quiet.text == "" and quiet.relay == STAFF
    requests_so_far = len(fake_claude.requests)

    await desk.resolve(reply.escalation.id, staff_id="U-dana")
    assert await desk.staff_replied(STAFF, staff_name="Dana", text="x", message_id="st-2") is None
    fake_claude.queue(text("Glad that's sorted."))
    after = await engine.handle(message("All good now.", key=DM, direct=True))
    assert after is not None and after.relay is None and after.text == "Glad that's sorted."
    assert len(fake_claude.requests) == requests_so_far + 1


async def test_repings_fire_once_and_survive_a_restart(
    runtime: Runtime, settings: Settings, fake_claude: FakeAnthropic
) -> None:
    now = [datetime(2026, 3, 2, 15, 0)]
    engine, desk = limited_at(runtime, settings, now)
    unclaimed = await engine.handle(message("I need a person about my invoice."))
    claimed = await engine.handle(
        message("Another person please.", key=ConversationKey("test", "T1", "C7", "-"))
    )
    assert unclaimed and unclaimed.escalation and claimed and claimed.escalation
    assert claimed.escalation.id is not None
    await desk.claim(claimed.escalation.id, staff_id="U-dana")

    now[0] += timedelta(minutes=9)
    assert await desk.due_repings({"test"}) == []

    now[0] += timedelta(minutes=2)
    async with open_runtime(settings) as restarted:
        later = Desk(store=restarted.store, clock=lambda: now[0])
        assert await later.due_repings({"slack", "discord"}) == []
        [due] = await later.due_repings({"test"})
        assert due.id == unclaimed.escalation.id and due.state == "open"
        assert await later.due_repings({"test"}) == []


async def test_off_hours_escalation_says_when_the_team_is_back(
    runtime: Runtime, settings: Settings
) -> None:
    assert settings.persona is not None
    persona = settings.persona.model_copy(
        update={
            "support_hours": SupportHours(
                timezone="Europe/Berlin", days=["mon", "tue"], start="09:00", end="17:00"
            )
        }
    )
    saturday_noon_utc = datetime(2026, 3, 7, 12, 0)
    limits = Limits(token_budget=12000, idle_timeout=timedelta(hours=24), max_input_chars=8000)
    engine = Engine(
        store=runtime.store,
        llm=None,
        persona=persona,
        limits=limits,
        clock=lambda: saturday_noon_utc,
    )
    reply = await engine.handle(message("I want to speak to a person about a delivery."))

    assert reply is not None and reply.escalation is not None
    assert reply.text == (
        f"{persona.handoff} Our support team is offline right now and will be back "
        "Monday at 09:00 (Europe/Berlin)."
    )


def test_support_hours_name_today_and_tomorrow() -> None:
    hours = SupportHours(timezone="Asia/Tokyo", days=["mon", "tue"], start="09:00", end="17:00")
    early_monday = datetime(2026, 3, 1, 22, 0)  # 07:00 Monday in Tokyo
    late_monday = datetime(2026, 3, 2, 9, 0)  # 18:00 Monday in Tokyo
    assert describe(hours.back_at(early_monday), now=early_monday) == (
        "today at 09:00 (Asia/Tokyo)"
    )
    assert describe(hours.back_at(late_monday), now=late_monday) == (
        "tomorrow at 09:00 (Asia/Tokyo)"
    )
    assert hours.back_at(datetime(2026, 3, 2, 1, 0)) is None  # 10:00 Monday in Tokyo


async def test_start_over_while_an_escalation_is_open_reaches_claude_as_customer_text(
    engine: Engine, fake_claude: FakeAnthropic, desk: Desk
) -> None:
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Billing dispute"}),
        text("Double charge on HG-5."),
        text("Of course: what would you like to start with?"),
    )
    first = await engine.handle(message("I was charged twice for HG-5!"))
    assert first is not None and first.escalation is not None

    again = await engine.handle(message("start over"))

    # The open escalation keeps the conversation, so the phrase is answered like any text.
    assert again is not None and again.text == "Of course: what would you like to start with?"
    assert fake_claude.requests[-1].last_user_text == "start over"
    [live] = await desk.live()
    assert live.id == first.escalation.id


async def test_claim_and_resolve_pressed_at_once_end_resolved(
    runtime: Runtime, settings: Settings
) -> None:
    now = [datetime(2026, 3, 2, 15, 0)]
    engine, desk = limited_at(runtime, settings, now)
    reply = await engine.handle(message("A person please."))
    assert reply is not None and reply.escalation is not None and reply.escalation.id
    escalation_id = reply.escalation.id
    async with open_runtime(settings) as replica:
        other = Desk(store=replica.store, clock=lambda: now[0])
        claimed, resolved = await asyncio.gather(
            desk.claim(escalation_id, staff_id="U-dana"),
            other.resolve(escalation_id, staff_id="U-sam"),
        )

    # Whichever press landed first, a resolve always applies after a claim, never the reverse.
    assert resolved is not None and resolved.state == State.RESOLVED
    assert resolved.closed_by == "U-sam"
    assert claimed is not None and claimed.state in {State.CLAIMED, State.RESOLVED}
    final = await desk.get(escalation_id)
    assert final is not None and final.state == State.RESOLVED and not final.live
    # A closed escalation refuses every action, unchanged.
    assert await desk.claim(escalation_id, staff_id="U-lee") == final
    assert await desk.act(escalation_id, Action.HAND_BACK, staff_id="U-lee") == final
