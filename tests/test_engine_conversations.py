"""The acceptance conversations, asserted on what the fake Claude actually received."""

from __future__ import annotations

from bots.app import Runtime, open_runtime
from core import prompt
from core.config import Settings
from core.engine import Engine
from core.types import Usage
from tests.engine_helpers import KEY, message, note_text, texts
from tests.fakes.anthropic_api import FakeAnthropic, text, tool_use


async def test_refund_question_carries_the_return_turn(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        text("You can return the lamp within 30 days of delivery if it's unused."),
        text("Your refund arrives 5–7 business days after the lamp reaches us."),
    )
    first = await engine.handle(message("I'd like to return a lamp I bought."))
    second = await engine.handle(message("How long will the refund take after you get it back?"))

    assert first is not None and "30 days" in first.text
    assert second is not None and "5–7 business days" in second.text
    sent = fake_claude.requests[1].body
    assert texts(sent["messages"]) == [
        ("user", "I'd like to return a lamp I bought."),
        ("assistant", "You can return the lamp within 30 days of delivery if it's unused."),
        ("user", "How long will the refund take after you get it back?"),
    ]
    assert sent["model"] == "claude-sonnet-4-6"
    assert [t["name"] for t in sent["tools"]] == ["escalate_to_human"]
    # Cache breakpoints (an hour each by default): the persona, and the end of the conversation
    # prefix, the customer's latest words; only the topic note follows it.
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    latest = sent["messages"][-1]["content"]
    assert latest[0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert [prompt.is_note(b) for b in latest] == [False, True]


async def test_topic_switch_moves_the_note_after_the_cached_prefix(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(text("Could you send the order number?"), text("Yes, over $75."))
    await engine.handle(message("My order is late, where is it?"))
    await engine.handle(
        message("Actually forget that, I want a new couch — is there free shipping?")
    )

    first, second = (r.body for r in fake_claude.requests)
    assert note_text(first) == "Current topic of this conversation: orders."
    note = note_text(second)
    assert "Current topic of this conversation: shipping." in note
    assert "moved on from orders to shipping" in note
    # The customer's own words reach Claude untouched, with no note mixed in.
    assert second["messages"][-1]["content"][0]["text"] == (
        "Actually forget that, I want a new couch — is there free shipping?"
    )


async def test_escalate_tool_call_becomes_the_configured_sentence(
    engine: Engine, fake_claude: FakeAnthropic, settings: Settings
) -> None:
    assert settings.persona is not None
    fake_claude.queue(
        tool_use("escalate_to_human", {"reason": "Warehouse location is not public"}, id="tu_1"),
        text("Customer wants the warehouse's GPS coordinates."),
        text("Anything else about your order?"),
    )
    reply = await engine.handle(message("What are the exact GPS coordinates of your warehouse?"))

    assert reply is not None
    assert reply.text == settings.persona.dont_know
    assert reply.escalation is not None and reply.escalation.new
    assert reply.escalation.reason == "Warehouse location is not public"
    # Staff get a hand-off note that Claude wrote from the transcript, without tools.
    assert reply.escalation.summary == "Customer wants the warehouse's GPS coordinates."
    note_request = fake_claude.requests[1].body
    assert "tools" not in note_request or note_request["tools"] == []
    assert (
        "Customer: What are the exact GPS coordinates"
        in note_request["messages"][0]["content"][0]["text"]
    )

    await engine.handle(message("Ok, thanks."))
    follow_up = fake_claude.requests[2].body["messages"]
    # The tool call is answered at the top of the next user turn, so the API accepts it.
    assert follow_up[1]["content"][0]["type"] == "tool_use"
    assert follow_up[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "tu_1",
        "content": "Handed to the team.",
    }
    assert follow_up[2]["content"][1]["text"] == "Ok, thanks."


async def test_it_refers_to_the_damaged_table_with_full_history(
    engine: Engine, fake_claude: FakeAnthropic
) -> None:
    fake_claude.queue(
        text("Thanks! Both are on order HG-2211."),
        text("Sorry to hear that. Please send a photo of the table."),
        text("Yes — damaged items can always be returned."),
    )
    await engine.handle(message("I ordered a coffee table and a sofa last week."))
    await engine.handle(message("The table arrived damaged."))
    await engine.handle(message("Can I return it?"))

    assert texts(fake_claude.requests[2].body["messages"]) == [
        ("user", "I ordered a coffee table and a sofa last week."),
        ("assistant", "Thanks! Both are on order HG-2211."),
        ("user", "The table arrived damaged."),
        ("assistant", "Sorry to hear that. Please send a photo of the table."),
        ("user", "Can I return it?"),
    ]


async def test_history_survives_a_restart(settings: Settings, fake_claude: FakeAnthropic) -> None:
    fake_claude.queue(text("Noted: order HG-7."), text("HG-7 ships express."))
    async with open_runtime(settings) as runtime:
        await runtime.engine.handle(message("My order number is HG-7."))
    async with open_runtime(settings) as restarted:
        await restarted.engine.handle(message("Which order did I mention?"))

    assert texts(fake_claude.requests[1].body["messages"]) == [
        ("user", "My order number is HG-7."),
        ("assistant", "Noted: order HG-7."),
        ("user", "Which order did I mention?"),
    ]


async def test_answer_is_stored_with_its_token_usage(
    runtime: Runtime, fake_claude: FakeAnthropic
) -> None:
    usage = {
        "input_tokens": 21,
        "output_tokens": 8,
        "cache_read_input_tokens": 2048,
        "cache_creation_input_tokens": 300,
    }
    fake_claude.queue(text("Express takes 2–3 business days.", usage=usage))
    await runtime.engine.handle(message("How fast is express?"))

    stored = await runtime.store.history(KEY)
    assert [(t.role, t.kind) for t in stored] == [("user", "customer"), ("assistant", "model")]
    assert stored[1].usage == Usage(
        input_tokens=21, output_tokens=8, cache_read_tokens=2048, cache_write_tokens=300
    )
