"""The terminal chat: the same engine as Slack and Discord, one conversation per name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from core.stream import continuation
from core.text import sanitize
from core.types import ConversationKey, ConversationPort, IncomingMessage, PendingAction

log = logging.getLogger(__name__)

QUIT = {"quit", "exit", "bye"}
YES, NO = {"yes", "y", "confirm"}, {"no", "n", "cancel"}
SORRY = "Sorry, something went wrong; please try again."
ASK = "  [type yes to confirm, or no to cancel]"
CUSTOMER = "console"


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
    type_out: Callable[[str], None] | None = None,
) -> None:
    """Read lines until quit/exit/bye or end of input; empty lines are skipped.

    Everything written goes through `core.text.sanitize`, and so does what is read: control in a
    terminal line comes from keys such as the arrows, not from the customer's words. A message
    that fails for any reason is answered with one line, and the chat goes on. The name is
    cleaned the same way, so the key shown is the key used. A proposed change is confirmed by
    typing yes (no cancels it; anything else is the next message and leaves it waiting); one
    that needs the support team's approval is not offered (nobody at the console is on it).

    With ``type_out`` (which writes without adding a line break), answers are shown as Claude
    writes them, and the answer's line is finished there; otherwise each is one ``write``.
    """
    name = sanitize(name)
    key = console_key(name)

    def show(text: str) -> None:
        write(sanitize(text))

    show(f"Chatting as conversation '{name}' (key {key}). Type quit to leave.")
    pending: PendingAction | None = None
    while True:
        try:
            line = sanitize(await asyncio.to_thread(read, "you> ")).strip()
        except EOFError:
            break
        if not line:
            continue
        if line.casefold() in QUIT:
            break
        answer = line.casefold()
        message = IncomingMessage(
            key=key, author_id=CUSTOMER, text=line, message_id=f"console-{uuid.uuid4()}"
        )
        sink = _Typed(type_out, prefix=f"{bot_name}> ") if type_out else None
        try:
            if pending is not None and answer in YES | NO:
                decision = await port.decide(
                    pending.id, user_id=CUSTOMER, confirm=answer in YES, is_staff=_nobody
                )
                pending = None
                if decision.note is not None:
                    show(f"  [{decision.note}]")
                reply = decision.reply
            else:
                reply = await port.handle(message, sink=sink)
        except Exception as exc:
            # One line for the operator (the exception's type, never its text, which can quote
            # the message), one for the person at the keyboard.
            log.error("console message failed in %s (%s)", key, type(exc).__name__)
            show(f"\n{SORRY}" if sink is not None and sink.shown else SORRY)
            continue
        if reply is None:
            continue
        if sink is not None and sink.shown:
            sink.finish(reply.text)
        else:
            show(f"{bot_name}> {reply.text}")
        if reply.outbox is not None:
            with contextlib.suppress(Exception):  # shown all the same; nobody redelivers it
                await port.delivered(reply.outbox, None)
        if reply.escalation is not None:
            show(f"  [handed to the support team: {reply.escalation.reason}]")
        if reply.proposal is not None and not reply.proposal.staff_approval:
            pending = reply.proposal
            show(ASK)


class _Typed:
    """An answer typed out as Claude writes it (the engine's `core.stream.Shown` hands over
    sanitized words only). A step such as the hand-off is not typed: the chat says it in its
    own line once the answer is done."""

    def __init__(self, type_out: Callable[[str], None], *, prefix: str) -> None:
        self._type_out = type_out
        self._prefix = prefix
        self.shown = ""

    async def text(self, delta: str) -> None:
        self._type_out(delta if self.shown else self._prefix + delta)
        self.shown += delta

    async def step(self, label: str) -> None:
        return None

    def finish(self, final: str) -> None:
        """End the line with what ``final`` adds to the words shown; a reply that does not
        continue them (the engine always makes it one) goes on a line of its own."""
        rest = continuation(self.shown, final)
        if rest is None:
            rest = f"\n{self._prefix}{final}"
        self._type_out(sanitize(rest) + "\n")


async def _nobody() -> bool:
    """Nobody at the console is on the support team."""
    return False
