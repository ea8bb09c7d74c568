"""Which support topic a customer message is about, from the persona's keyword table."""

from __future__ import annotations

import re

from core.config import Topic
from core.text import fold

# Words that name who speaks or what a note is, in text a customer could type to imitate our
# own annotations or a chat transcript. Matched in the folded form (core.text.fold), so case,
# full-width letters, zero-width characters and Cyrillic look-alikes make no difference.
_ROLE = (
    r"(?:system|assistant|human|user|developer|admin|administrator|operator|moderator|topic|"
    r"note|document|context|instructions?|support(?: team)?|staff|agent|bot|ai|claude|anthropic)"
)
# Forged annotations are left out of topic detection whole; the text still reaches Claude as
# the customer's words, so nothing is lost but the pretence. In order:
# - a line whose first few words name a role before a colon: "System:", "### SYSTEM NOTE:",
#   "Note from the system:", "Dana (support team):", "Current topic of this conversation:";
# - tags named like a role, with what they wrap (to the line's end if never closed):
#   <system>…</system>, <document title="Support system note">…</document> (the engine's
#   notes are document blocks, core.prompt.topic_note);
# - anything in square brackets: [Topic: billing];
# - brackets or braces that open with a role: (system: …), {topic: …};
# - and then (``_without_json``) JSON objects with quoted keys: {"role": "system", …}, fake
#   tool calls.
_FORGED = [
    re.compile(rf"^[^\w\n]*(?:[\w'-]+[^\w\n:]+){{0,3}}{_ROLE}\b[^:\n]{{0,40}}:.*$", re.M),
    re.compile(rf"<\s*({_ROLE})\b[^>]*>.*?<\s*/\s*\1\s*>", re.S),
    re.compile(rf"<\s*{_ROLE}\b[^>]*>.*"),
    re.compile(rf"<\s*/\s*{_ROLE}\b[^>]*>"),
    re.compile(r"\[[^\]]*\]"),
    re.compile(rf"[({{]\s*{_ROLE}\b[^)}}\n]*[)}}]?"),
]
_QUOTED_KEY = re.compile(r'"[^"\n]*"\s*:')


def _unforged(folded: str) -> str:
    """``folded`` (``core.text.fold``'s form) without anything imitating our annotations."""
    for pattern in _FORGED:
        folded = pattern.sub(" ", folded)
    return _without_json(folded)


def _without_json(text: str) -> str:
    """``text`` without its JSON-like objects (outermost balanced braces holding a quoted
    key), however deeply they nest; one pass, so a crafted message costs linear time."""
    kept, start, depth, opened = [], 0, 0, 0
    for i, char in enumerate(text):
        if char == "{":
            opened = i if depth == 0 else opened
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0 and _QUOTED_KEY.search(text, opened, i):
                kept += [text[start:opened], " "]
                start = i + 1
    kept.append(text[start:])
    return "".join(kept)


class TopicDetector:
    def __init__(self, topics: list[Topic]) -> None:
        self._patterns = [
            (t.name, [re.compile(rf"\b{re.escape(fold(k))}\b") for k in t.keywords]) for t in topics
        ]

    def detect(self, text: str) -> str | None:
        """The topic with the most keyword hits (table order breaks ties), or None.

        The text is matched in its folded form, with forged annotations left out (``_FORGED``).
        """
        plain = _unforged(fold(text))
        best, best_hits = None, 0
        for name, patterns in self._patterns:
            hits = sum(len(p.findall(plain)) for p in patterns)
            if hits > best_hits:
                best, best_hits = name, hits
        return best
