"""Answers shown while Claude writes them.

The engine hands Claude's words to an adapter's :class:`AnswerSink` as they arrive and still
returns the whole :class:`~core.types.Reply` at the end; what is stored is only ever the final
text. :class:`Shown` sits between the two: it forwards the words (sanitized, a round's leading
and trailing whitespace held back), remembers exactly what the customer has seen, and makes the
final reply a continuation of it. So an adapter finishes a streamed message by appending what
``continuation`` says is left, and a reply that says something else after the words already
shown (a fallback after a broken stream, the hand-off after Claude asked for a person) follows
them instead of replacing them: the customer never reads half an answer without its ending.
"""

from __future__ import annotations

from typing import Protocol

from core.prompt import ESCALATE_TOOL
from core.text import sanitize, settled


class AnswerSink(Protocol):
    """Where an adapter shows an answer while it is written. Both methods must return quickly
    (buffer, and let the platform calls happen beside the turn): Claude's stream waits on them."""

    async def text(self, delta: str) -> None:
        """More words of the answer, to show after those already shown."""
        ...

    async def step(self, label: str) -> None:
        """A step the bot is taking ("Passing you to our team…"), shown until the answer ends."""
        ...


class ClaudeEvents(Protocol):
    """What the LLM port reports while a reply streams in."""

    async def text(self, delta: str) -> None: ...

    async def tool(self, name: str) -> None:
        """Claude started calling tool ``name``."""
        ...


def join(*parts: str) -> str:
    """The non-empty ``parts`` as paragraphs."""
    return "\n\n".join(p for p in parts if p)


def continuation(shown: str, final: str) -> str | None:
    """What to append to ``shown`` so that it reads ``final``; ``None`` when ``final`` does not
    start with it (the adapter then replaces the text)."""
    return final[len(shown) :] if final.startswith(shown) else None


class Shown:
    """The engine's tap between Claude's stream and an adapter's sink (see the module doc).

    Each Claude call is a round; a round that ends in a tool call is followed by the next one's
    words as a new paragraph.
    """

    def __init__(self, sink: AnswerSink, *, handoff_step: str) -> None:
        self._sink = sink
        self._handoff_step = handoff_step
        self._before = ""
        """What earlier rounds showed."""
        self._current = ""
        """What this round showed."""
        self._unsettled = ""
        """Claude's latest words, as written, that the next ones may still change once
        sanitized (an escape sequence not ended yet, a carriage return)."""
        self._held = ""
        """Trailing whitespace, shown only once more words follow it."""

    @property
    def shown(self) -> str:
        """Exactly what the sink has been given."""
        return join(self._before, self._current)

    async def text(self, delta: str) -> None:
        """Show the words ``delta`` settles, sanitized: sanitizing each piece on its own would
        let an escape sequence or a CR LF split across two pieces through half-removed, and the
        final reply would then not continue what was shown."""
        written = self._unsettled + delta
        cut = settled(written)
        said, self._unsettled = sanitize(written[:cut]), written[cut:]
        if not self._current:
            said = said.lstrip()
        pending = self._held + said
        body = pending.rstrip()
        self._held = pending[len(body) :]
        if not body:
            return
        if not self._current and self._before:
            await self._sink.text(f"\n\n{body}")
        else:
            await self._sink.text(body)
        self._current += body

    async def tool(self, name: str) -> None:
        """A tool call ends the round; a hand-off is shown as a step."""
        self._before, self._current, self._unsettled, self._held = self.shown, "", "", ""
        if name == ESCALATE_TOOL["name"]:
            await self._sink.step(self._handoff_step)

    def final(self, said: str) -> str:
        """The reply text that continues what was shown: ``said`` itself when it starts with
        this round's words, else those words, then ``said``, after the earlier rounds'."""
        body = said if said.startswith(self._current) else join(self._current, said)
        return join(self._before, body)
