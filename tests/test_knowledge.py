"""The knowledge base behind limited mode."""

from __future__ import annotations

import logging

import pytest

from core.config import DEMO_PERSONA, KnowledgeEntry, Persona
from core.knowledge import KnowledgeBase


def test_looking_up_logs_nothing_below_warning(caplog: pytest.LogCaptureFixture) -> None:
    persona = Persona.load(DEMO_PERSONA)
    with caplog.at_level(logging.DEBUG):
        found = KnowledgeBase(persona.knowledge, min_score=1.0).lookup("Is shipping free?")
    assert found is not None and found.id == "free-shipping"
    assert [r.getMessage() for r in caplog.records if r.name.startswith("bm25s")] == []


def test_an_empty_knowledge_base_finds_nothing() -> None:
    assert KnowledgeBase([], min_score=1.0).lookup("Is shipping free?") is None


def test_a_weak_match_does_not_count() -> None:
    entry = KnowledgeEntry(id="rugs", question="Do you sell rugs?", answer="Yes.")
    knowledge = KnowledgeBase([entry], min_score=100.0)
    assert knowledge.lookup("Do you sell rugs?") is None
