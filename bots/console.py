"""The terminal chat: the same engine as Slack and Discord, one conversation per name."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable

from core.types import ConversationKey, ConversationPort, IncomingMessage

log = logging.getLogger(__name__)

QUIT = {"quit", "exit", "bye"}
SORRY = "Sorry, something went wrong; please try again."

# Whole escape sequences first, so their parameters do not show as text: strings (OSC, DCS, SOS,
# PM, APC) up to their terminator, CSI, then any other ESC sequence. Payloads stop at the next
# control character, so every scan ends there and hostile input costs linear time. What is left
# of C0 and C1 (a lone ESC, an unterminated string's introducer, NUL, BEL, CR…) goes next, then
# lone surrogates, which no terminal encoding can carry.
_SEQUENCE = re.compile(
    r"(?:\x1b[]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x00-\x1f\x7f-\x9f]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def terminal_safe(text: str) -> str:
    """``text`` without terminal control: no escape sequences, no C0 or C1 control characters
    but newline and tab, and U+FFFD for lone surrogates."""
    text = _SEQUENCE.sub("", text.replace("\r\n", "\n"))
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def console_key(name: str) -> ConversationKey:
    """The key of the console conversation called ``name``; any name round-trips through text.

    ``:`` separates a key's parts, so it is percent-encoded in the name (and ``%`` with it, to
    keep the encoding reversible); names without either keep the key they always had.
    """
    return ConversationKey("console", "local", name.replace("%", "%25").replace(":", "%3A"), "-")


async def chat(
    port: ConversationPort,
    *,
    name: str,
    bot_name: str,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> None:
    """Read lines until quit/exit/bye or end of input; empty lines are skipped.

    Everything written goes through `terminal_safe`, and so does what is read: control in a
    terminal line comes from keys such as the arrows, not from the customer's words. A message
    that fails for any reason is answered with one line, and the chat goes on. The name is
    cleaned the same way, so the key shown is the key used.
    """
    name = terminal_safe(name)
    key = console_key(name)

    def show(text: str) -> None:
        write(terminal_safe(text))

    show(f"Chatting as conversation '{name}' (key {key}). Type quit to leave.")
    while True:
        try:
            line = terminal_safe(await asyncio.to_thread(read, "you> ")).strip()
        except EOFError:
            break
        if not line:
            continue
        if line.casefold() in QUIT:
            break
        message = IncomingMessage(
            key=key, author_id="console", text=line, message_id=f"console-{uuid.uuid4()}"
        )
        try:
            reply = await port.handle(message)
        except Exception as exc:
            # One line for the operator (the exception's type, never its text, which can quote
            # the message), one for the person at the keyboard.
            log.error("console message failed in %s (%s)", key, type(exc).__name__)
            show(SORRY)
            continue
        if reply is None:
            continue
        show(f"{bot_name}> {reply.text}")
        if reply.escalation is not None:
            show(f"  [handed to the support team: {reply.escalation.reason}]")
