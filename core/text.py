"""Text from outside — customers, staff, platforms, Claude — as the bot keeps and matches it.

Two forms. :func:`sanitize` is what is stored, sent and shown: the sender's words, minus what
would break a database or mislead a reader. :func:`fold` is only ever matched against (topics,
"I want a person", "start over", "I don't know"): it makes look-alike spellings the same.
"""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 controls but tab and newline (carriage returns become newlines first), and the bidi
# embedding, override and isolate controls, which reorder what staff read around them.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Terminal escape sequences go whole, before the controls, so their parameters do not remain as
# text: strings (OSC, DCS, SOS, PM, APC) up to their terminator, CSI, then any other ESC
# sequence (not one with a space after the ESC, which in a message is a stray ESC before a
# word, not an escape). Payloads stop at the next control character, so every scan ends
# there and hostile input costs linear time.
_SEQUENCE = re.compile(
    r"(?:\x1b[]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x00-\x1f\x7f-\x9f]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[!-/]*[0-~]"
)
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_INTRODUCER = re.compile(r"[\x1b\x90\x98\x9b\x9d\x9e\x9f]")
# How far back an escape sequence still open at the end of a stream is held (a longer one is
# let through as the text it would be if it never ended).
_OPEN_SEQUENCE_HOLD = 256
_UNENDED = {f"\x1b{c}" for c in "]P^_X["}
_SPACES = re.compile(r"[^\S\n]+")

# Latin look-alikes from Cyrillic and Greek that NFKC leaves alone ("Ѕуѕtеm:"), and typographic
# quotes ("I don’t know", as Claude often writes it); matching only.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһѵмтвкпαεοριτυν‘’ʼ′“”″",
    "aeopcyxijsdhvmtbknaeopitvn''''\"\"\"",
)


def sanitize(text: str) -> str:
    """Text safe to store and show, still the sender's words.

    Lone or reversed UTF-16 surrogates (which no database can store and UTF-8 cannot encode)
    become U+FFFD, a valid pair becomes its character; the result is NFC; carriage returns
    become newlines; terminal escape sequences (colours, titles, links, screen clears) are
    removed whole; other control characters but tabs and newlines, and the bidi controls
    U+202A–U+202E and U+2066–U+2069, are removed. Idempotent, so every layer may apply it.
    """
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = _NEWLINES.sub("\n", unicodedata.normalize("NFC", text))
    return _UNSAFE.sub("", _SEQUENCE.sub("", text))


def settled(text: str) -> int:
    """The length of ``text``'s beginning that :func:`sanitize` turns into the same words
    whatever text comes after it: all but a carriage return at its end (the line feed of a
    CR LF may follow) and an escape sequence that has not ended yet."""
    end = len(text) - text.endswith("\r")
    at = max(0, end - _OPEN_SEQUENCE_HOLD)
    while (start := _INTRODUCER.search(text, at, end)) is not None:
        whole = _SEQUENCE.match(text, start.start())
        # ESC ] or ESC [ alone is what is left when the string or CSI it starts has not ended.
        if whole is None or whole.group() in _UNENDED:
            return start.start()
        at = whole.end()
    return end


def clean(text: str) -> str:
    """A customer message as the engine stores it: :func:`sanitize`, then trimmed."""
    return sanitize(text).strip()


def fold(text: str) -> str:
    """The form text is matched in, never stored or shown: compatibility forms folded
    (NFKC: full-width ``Ｓｙｓｔｅｍ``, ligatures), format characters (zero-width spaces and
    joiners, soft hyphens, bidi controls) and combining marks dropped, common Cyrillic and
    Greek look-alikes and typographic quotes mapped to ASCII (after case folding), runs of
    spaces made one.
    """
    decomposed = unicodedata.normalize("NFKD", sanitize(text))
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Cf", "Mn", "Me"))
    folded = unicodedata.normalize("NFKC", kept).casefold().translate(_CONFUSABLES)
    return _SPACES.sub(" ", folded)
