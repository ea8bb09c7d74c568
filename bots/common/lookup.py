"""Finding a reply among the bot's messages on the platform (``Platform.posted_reply``).

A reply shows either as the messages ``post_reply`` renders it into, or as the messages a
stream wrote, which split it elsewhere (Slack streams up to ~11,000 characters a message;
Discord's stream cuts the text as it stood) and ping in a message of their own. So the bot's
messages are read as one text and compared with the reply's, leaving out what a split changes:
whitespace (dropped at its cuts) and code-fence lines (added to close a block and open it
again in the next message).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

M = TypeVar("M")

_FENCE_LINE = re.compile(r"^[ \t]*```[\w+#.-]{0,20}[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Match:
    """Where a reply shows among the messages looked at (indexes into them)."""

    start: int
    """Its first message."""
    end: int
    """One past its last."""
    whole: bool
    """All of it shows (a ping may follow)."""
    stale: tuple[int, ...]
    """Messages that do not read the reply's part at their place (a stream's own split, or
    one cut short) when not all of it shows: written over with that part before the rest is
    posted."""


def answers(
    messages: Iterable[M], author: Callable[[M], str], *, me: str, customer: str | None
) -> list[M]:
    """The bot's (``me``) ``messages``, oldest first after a message of ``customer``'s, up to
    that customer's next message in the same place: only those can answer it. An answer to a
    later message that reads the same (the same fallback twice) comes after that next one.
    ``customer`` ``None``: all of them (no later message has been answered yet)."""
    ours = []
    for message in messages:
        if customer is not None and author(message) == customer:
            break
        if author(message) == me:
            ours.append(message)
    return ours


def find_reply(said: Sequence[str], parts: Sequence[str]) -> Match | None:
    """Where ``said`` (the bot's messages after the customer's, oldest first, as the platform
    shows them) reads the reply rendered as ``parts``: the latest message that reads its
    beginning, and the messages after it as long as they go on reading it. ``None`` when no
    message reads its beginning."""
    whole = "".join(flat(part) for part in parts)
    flats = [flat(s) for s in said]
    starts = [i for i, f in enumerate(flats) if reads(f, whole)]
    if not starts:
        return None
    start = end = starts[-1]
    shown = ""
    while end < len(flats) and reads(shown + flats[end], whole):
        shown += flats[end]
        end += 1
        if shown.startswith(whole):
            break
    if shown.startswith(whole):
        return Match(start, end, whole=True, stale=())
    stale = tuple(
        i for i in range(start, min(end, start + len(parts))) if flats[i] != flat(parts[i - start])
    )
    return Match(start, end, whole=False, stale=stale)


def flat(text: str) -> str:
    """``text`` without whitespace and code-fence lines: what every split of it keeps."""
    return "".join(_FENCE_LINE.sub("", text).split())


def reads(shown: str, whole: str) -> bool:
    """Whether ``shown`` (not empty) is the start of ``whole``, or all of it and more (a
    ping)."""
    return bool(shown) and (shown.startswith(whole) or whole.startswith(shown))
