"""The platforms the bot runs on, each described once: its settings, what must be set to run
it, how to link to one of its conversations, how to build its adapter, and its own commands.

The composition root, the CLI and the links look platforms up here instead of branching on
their names; adding a platform is its package (a ``Platform`` port, translation, rendering and
transport, an ``ENTRY``) plus one line in :func:`platforms`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_settings import BaseSettings

from core.desk import Desk
from core.ports import StaffPending, Unanswered, Undelivered
from core.types import ConversationKey, ConversationPort, EscalationView

if TYPE_CHECKING:
    import typer


class Adapter(Protocol):
    """A platform adapter as the composition root runs it."""

    async def start(self) -> None: ...

    async def wait(self) -> None:
        """Return (or raise) when the platform connection has ended for good."""
        ...

    async def connected(self) -> bool:
        """Whether events can arrive now (readiness: false while reconnecting)."""
        ...

    async def close(self, *, grace: float | None = None) -> None:
        """Stop taking events; let accepted work finish for ``grace`` seconds, then cancel it."""
        ...

    async def reping(self, view: EscalationView) -> None:
        """Remind staff of an escalation nobody has claimed."""
        ...

    def recover(self, unanswered: Unanswered, *, late_after: timedelta) -> None:
        """Answer, in the background, a customer turn a dead process left unanswered."""
        ...

    def redeliver(self, undelivered: Undelivered) -> None:
        """Deliver, in the background, a reply the platform has not taken yet."""
        ...

    def resend(self, pending: StaffPending) -> None:
        """Try again, in the background, a relay, staff reply or notice re-draw that has not
        got through."""
        ...


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    """One platform. ``adapter`` imports the platform's SDK only when called, so running one
    platform (or the console) never imports another's."""

    name: str
    title: str
    settings: type[BaseSettings]
    required: Callable[[Any], Mapping[str, object]]
    """The settings that must be set to run, by environment variable name."""
    link: Callable[[ConversationKey], str]
    adapter: Callable[[Any, ConversationPort, Desk], Adapter]
    commands: Callable[[], typer.Typer] | None = None
    """The platform's own ``supportbot NAME …`` commands, if it has any."""

    def missing(self, settings: BaseSettings) -> list[str]:
        return [name for name, value in self.required(settings).items() if value is None]


def platforms() -> dict[str, PlatformEntry]:
    """Every platform the bot can run on, by name."""
    from bots import discord, slack

    return {entry.name: entry for entry in (slack.ENTRY, discord.ENTRY)}


def conversation_link(key: ConversationKey) -> str:
    """A link a person can open to reach the conversation; the key itself where there is none
    (the console)."""
    entry = platforms().get(key.platform)
    return entry.link(key) if entry is not None else str(key)
