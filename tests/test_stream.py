"""``core.stream.Shown``: what the customer has seen of an answer, and the reply that ends it."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.stream import Shown, continuation

STEP = "Passing you to our team…"


@dataclass
class Screen:
    """An adapter's sink that keeps what it was given, as a customer would read it."""

    said: str = ""
    steps: list[str] = field(default_factory=list)

    async def text(self, delta: str) -> None:
        self.said += delta

    async def step(self, label: str) -> None:
        self.steps.append(label)


async def test_a_plain_answer_is_shown_as_it_comes_and_ends_as_stored() -> None:
    screen = Screen()
    shown = Shown(screen, handoff_step=STEP)
    for delta in ["\n Sure", " — returns", " are free.", "\n\n"]:
        await shown.text(delta)

    # Leading and trailing whitespace wait for words; the final text is the stored answer.
    assert screen.said == shown.shown == "Sure — returns are free."
    final = shown.final("Sure — returns are free.")
    assert continuation(screen.said, final) == ""


async def test_words_before_a_tool_call_stay_and_the_next_round_is_a_new_paragraph() -> None:
    screen = Screen()
    shown = Shown(screen, handoff_step=STEP)
    await shown.text("Let me look that up.")
    await shown.tool("order_status")
    await shown.text("It shipped today.")

    assert screen.said == "Let me look that up.\n\nIt shipped today."
    assert screen.steps == []
    assert shown.final("It shipped today.") == screen.said


async def test_a_hand_off_is_a_step_and_its_sentence_follows_the_words() -> None:
    screen = Screen()
    shown = Shown(screen, handoff_step=STEP)
    await shown.text("That needs a person.")
    await shown.tool("escalate_to_human")

    assert screen.steps == [STEP]
    final = shown.final("I've asked our support team to take over.")
    assert continuation(screen.said, final) == "\n\nI've asked our support team to take over."


async def test_a_fallback_after_half_an_answer_follows_it() -> None:
    screen = Screen()
    shown = Shown(screen, handoff_step=STEP)
    await shown.text("Let me check your")

    final = shown.final("We're very busy right now; a person will follow up.")
    assert final == "Let me check your\n\nWe're very busy right now; a person will follow up."
    assert continuation(screen.said, final) is not None


async def test_nothing_shown_leaves_the_reply_as_it_is() -> None:
    shown = Shown(Screen(), handoff_step=STEP)
    await shown.text("  \n")
    assert shown.shown == "" and shown.final("Hello.") == "Hello."
