"""Split long answers into platform-sized messages without breaking words or code fences."""

from __future__ import annotations

import re

FENCE = "```"
# Preferred cut points, best first: a blank line, a line end, a sentence end, a space.
# Each pattern matches the text the cut falls *after*, so the cut is at the match's end.
_BREAKS = tuple(re.compile(p) for p in (r"(?=\n\s*\n)", r"(?=\n)", r"[.!?](?=\s)", r"(?= )"))


def split_text(text: str, limit: int) -> list[str]:
    """Cut ``text`` into chunks of at most ``limit`` characters.

    Cuts fall at paragraph, line, sentence or word boundaries (a word is cut only when it alone
    is longer than a chunk). A chunk that ends inside a code fence is closed with ``` and the next
    chunk reopens it with the same info string, so every chunk renders on its own.
    """
    if limit < 20:
        raise ValueError("limit too small to split sensibly")
    chunks: list[str] = []
    reopen = ""
    rest = text.strip()
    while rest:
        body = reopen + rest
        if len(body) <= limit:
            chunks.append(body)
            break
        # Leave room for a closing fence in case the cut lands inside a code block.
        room = limit - len(FENCE) - 1
        cut = _cut_point(body, room, floor=len(reopen))
        chunk = body[:cut].rstrip()
        fence = _open_fence(chunk)
        if fence is not None:
            chunk += "\n" + FENCE
            reopen = fence + "\n"
        else:
            reopen = ""
        chunks.append(chunk)
        rest = body[cut:].lstrip() if not reopen else body[cut:].lstrip("\n")
    return chunks


def _cut_point(body: str, room: int, *, floor: int) -> int:
    window = body[: room + 1]
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(window) if floor < m.end() <= room]
        # A cut in the first quarter makes a stub chunk, so a finer boundary is tried first;
        # but a stub beats cutting a word in two.
        if ends and (ends[-1] > room // 4 or pattern is _BREAKS[-1]):
            return ends[-1]
    return room


# A fence line is ``` with at most a short info string; a longer line starting with ``` is
# text, and must never be copied into every following chunk.
_FENCE_LINE = re.compile(r"^```[\w+#.-]{0,20}$")


def _open_fence(chunk: str) -> str | None:
    """The opening fence line (```lang) if ``chunk`` ends inside a code block, else None."""
    opened: str | None = None
    for line in chunk.splitlines():
        stripped = line.strip()
        if _FENCE_LINE.match(stripped):
            opened = None if opened is not None else stripped
    return opened
