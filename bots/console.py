"""The terminal chat: the same engine as Slack and Discord, one conversation per name."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from core.types import ConversationKey, ConversationPort, IncomingMessage

QUIT = {"quit", "exit", "bye"}


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
    """Read lines until quit/exit/bye or end of input; empty lines are skipped."""
    key = console_key(name)
    write(f"Chatting as conversation '{name}' (key {key}). Type quit to leave.")
    while True:
        try:
            line = (await asyncio.to_thread(read, "you> ")).strip()
        except EOFError:
            break
        if not line:
            continue
        if line.casefold() in QUIT:
            break
        message = IncomingMessage(
            key=key, author_id="console", text=line, message_id=f"console-{uuid.uuid4()}"
        )
        reply = await port.handle(message)
        if reply is None:
            continue
        write(f"{bot_name}> {reply.text}")
        if reply.escalation is not None:
            write(f"  [handed to the support team: {reply.escalation.reason}]")
