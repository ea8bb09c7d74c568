"""The shipped demo persona: Aria of ShopNova, and what limited mode can answer without Claude."""

from __future__ import annotations

import pytest

from core.config import DEMO_PERSONA, Persona
from core.knowledge import KnowledgeBase

PERSONA = Persona.load(DEMO_PERSONA)


def test_demo_is_aria_of_shopnova_with_its_dont_know_sentence() -> None:
    assert (PERSONA.name, PERSONA.company) == ("Aria", "ShopNova")
    assert PERSONA.dont_know == (
        "I don't have that information, but our support team at support@shopnova.com "
        "can help within 24 hours."
    )
    # The engine counts an answer as "I don't know" by these markers, casefolded.
    assert any(m.casefold() in PERSONA.dont_know.casefold() for m in PERSONA.dont_know_markers)


@pytest.mark.parametrize(
    ("question", "facts"),
    [
        ("What is your return policy?", ["30 days of delivery", "unused", "original packaging"]),
        ("How long does a refund take?", ["5–7 business days", "receive your return"]),
        ("How long does shipping take?", ["5–7 business days", "express", "2–3 business days"]),
        ("Is shipping free?", ["free", "over $75"]),
        ("How do I track my order?", ["shopnova.com/track", "order number"]),
    ],
)
def test_limited_mode_answers_each_published_fact(question: str, facts: list[str]) -> None:
    knowledge = KnowledgeBase(PERSONA.knowledge, min_score=PERSONA.knowledge_min_score)
    entry = knowledge.lookup(question)
    assert entry is not None
    assert all(fact in entry.answer for fact in facts)


def test_billing_disputes_are_left_to_the_human_team() -> None:
    knowledge = KnowledgeBase(PERSONA.knowledge, min_score=PERSONA.knowledge_min_score)
    assert knowledge.lookup("I want to dispute a charge on my card") is None
    assert "billing problems or disputes" in PERSONA.instructions
