"""Lexical retrieval over the persona's knowledge entries, for limited (no-Claude) mode."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.config import KnowledgeEntry

if TYPE_CHECKING:
    import bm25s


class KnowledgeBase:
    """BM25 over each entry's question and keywords; only a confident match counts.

    The index is built at the first lookup: with Claude up, most processes never need it,
    and bm25s (with numpy) is slow to import.
    """

    def __init__(self, entries: list[KnowledgeEntry], *, min_score: float) -> None:
        self._entries = entries
        self._min_score = min_score
        self._index: _Index | None = None

    def lookup(self, question: str) -> KnowledgeEntry | None:
        if not self._entries:
            return None
        if self._index is None:
            self._index = _Index([" ".join([e.question, *e.keywords]) for e in self._entries])
        position, score = self._index.best(question)
        if score < self._min_score:
            return None
        return self._entries[position]


class _Index:
    def __init__(self, docs: list[str]) -> None:
        import bm25s
        import Stemmer

        # bm25s sets its own logger to DEBUG when imported; its index-building chatter is noise.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25s = bm25s
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25s.BM25()
        self._bm25.index(self._tokenize(docs), show_progress=False)

    def _tokenize(self, texts: list[str]) -> bm25s.tokenization.Tokenized:
        return self._bm25s.tokenize(
            texts, stopwords="en", stemmer=self._stemmer, show_progress=False
        )

    def best(self, question: str) -> tuple[int, float]:
        """The best-matching document's position and its score."""
        results, scores = self._bm25.retrieve(self._tokenize([question]), k=1, show_progress=False)
        return int(results[0][0]), float(scores[0][0])
