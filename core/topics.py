"""Which support topic a customer message is about, from the persona's keyword table."""

from __future__ import annotations

import re

from core.config import Topic

# Text a customer could type to imitate our own annotations: "[Topic: billing]", "System: ...".
# It is still sent to Claude as the customer's words; it just never steers topic detection.
_FORGED = re.compile(r"\[[^\]]*\]|^\s*(?:system|assistant|human|user)\s*:", re.I | re.M)


class TopicDetector:
    def __init__(self, topics: list[Topic]) -> None:
        self._patterns = [
            (t.name, [re.compile(rf"\b{re.escape(k.lower())}\b") for k in t.keywords])
            for t in topics
        ]

    def detect(self, text: str) -> str | None:
        """The topic with the most keyword hits (table order breaks ties), or None."""
        clean = _FORGED.sub(" ", text).lower()
        best, best_hits = None, 0
        for name, patterns in self._patterns:
            hits = sum(len(p.findall(clean)) for p in patterns)
            if hits > best_hits:
                best, best_hits = name, hits
        return best
