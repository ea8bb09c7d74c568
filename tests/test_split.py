"""Splitting long answers: limits, word and sentence boundaries, balanced code fences."""

from __future__ import annotations

import re

import pytest

from core.split import split_text

FENCE = "```"


def _words(text: str) -> list[str]:
    return re.findall(r"\S+", text.replace(FENCE + "python", "").replace(FENCE, ""))


@pytest.mark.parametrize("limit", [100, 2000, 3500])
def test_prose_is_cut_at_sentence_boundaries_within_the_limit(limit: int) -> None:
    prose = " ".join(f"Sentence number {i} talks about sofas." for i in range(400))
    chunks = split_text(prose, limit)

    assert all(len(c) <= limit for c in chunks)
    assert all(c.endswith(".") for c in chunks)
    assert " ".join(chunks) == prose


def test_paragraph_breaks_are_preferred() -> None:
    text = "First paragraph is here.\n\n" + "Second paragraph. " * 5
    assert split_text(text, 60)[0] == "First paragraph is here."


def test_code_fences_stay_balanced_and_reopen_with_their_language() -> None:
    code = "\n".join(f"print('line {i}')" for i in range(300))
    text = f"Run this:\n\n{FENCE}python\n{code}\n{FENCE}\n\nThat is all."
    chunks = split_text(text, 2000)

    assert len(chunks) > 2
    assert all(len(c) <= 2000 for c in chunks)
    assert all(c.count(FENCE) % 2 == 0 for c in chunks)
    assert all(c.startswith(FENCE + "python") for c in chunks[1:-1])
    assert _words(" ".join(chunks)) == _words(text)


def test_a_word_is_only_cut_when_it_is_longer_than_a_chunk() -> None:
    assert split_text("short " + "x" * 50, 30) == ["short", "x" * 26, "x" * 24]


def test_short_text_is_one_chunk() -> None:
    assert split_text("  Hello there.  ", 2000) == ["Hello there."]


def test_a_long_line_starting_with_backticks_is_text_not_a_fence() -> None:
    chunks = split_text("hi\n```" + "z" * 12_000, 3900)
    assert len(chunks) == 4 and all(len(c) <= 3900 for c in chunks)
