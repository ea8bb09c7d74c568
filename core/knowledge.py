"""Lexical retrieval over the persona's knowledge entries, for limited (no-Claude) mode."""

from __future__ import annotations

import bm25s
import Stemmer

from core.config import KnowledgeEntry


class KnowledgeBase:
    """BM25 over each entry's question and keywords; only a confident match counts."""

    def __init__(self, entries: list[KnowledgeEntry], *, min_score: float) -> None:
        self._entries = entries
        self._min_score = min_score
        self._stemmer = Stemmer.Stemmer("english")
        self._index: bm25s.BM25 | None = None
        if entries:
            self._index = bm25s.BM25()
            docs = [" ".join([e.question, *e.keywords]) for e in entries]
            self._index.index(self._tokenize(docs), show_progress=False)

    def _tokenize(self, texts: list[str]) -> bm25s.tokenization.Tokenized:
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)

    def lookup(self, question: str) -> KnowledgeEntry | None:
        if self._index is None:
            return None
        results, scores = self._index.retrieve(self._tokenize([question]), k=1, show_progress=False)
        if float(scores[0][0]) < self._min_score:
            return None
        return self._entries[int(results[0][0])]
