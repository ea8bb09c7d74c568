"""Actions on the shop's own systems: the tools Claude may use, and the rules around them.

SDK-free: the MCP client (``core/mcp_tools.py``) implements :class:`ToolPort`, the store
(``storage/actions.py``) implements :class:`ActionStore`, and the engine enforces the rules:

- a tool is read-only only when its server annotates it ``readOnlyHint`` or the team's config
  lists it under ``read_only``; every other tool is a write;
- a read runs at once; a write never runs on Claude's say-so: it becomes a stored
  :class:`Proposal` (arguments frozen) that the customer (or, for ``staff_approval`` tools, a
  support-team member) confirms with a button, within the proposal's lifetime, exactly once;
- ``staff_only`` tools are never offered to Claude.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from core.types import ConversationKey

SEPARATOR = "__"
"""Between a server's name and its tool's in the name Claude sees: ``shop__cancel_order``."""
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What the Messages API accepts as a tool name."""
DEMO_SHOP = "shop"
"""The server name of the demo shop (``--demo-shop``, ``SUPPORTBOT_DEMO_SHOP``)."""


class Access(StrEnum):
    READ = "read-only"
    WRITE = "write"
    STAFF_APPROVAL = "write, staff approval"
    STAFF_ONLY = "staff-only"


class ServerConfig(BaseModel):
    """One MCP server: a command the bot starts (stdio) or a streamable HTTP URL."""

    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: Path | None = None
    url: str | None = None
    token_env: str | None = None
    """The environment variable holding the bearer token for ``url`` (never the token)."""
    timeout_seconds: float = Field(10.0, gt=0)
    read_only: list[str] = []
    staff_only: list[str] = []
    staff_approval: list[str] = []

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (stdio) or url (streamable HTTP)")
        if self.token_env is not None and self.url is None:
            raise ValueError("token_env only goes with url")
        return self

    def access(self, tool: str, *, read_only_hint: bool) -> Access:
        if tool in self.staff_only:
            return Access.STAFF_ONLY
        if read_only_hint or tool in self.read_only:
            return Access.READ
        if tool in self.staff_approval:
            return Access.STAFF_APPROVAL
        return Access.WRITE


class ActionsConfig(BaseModel):
    """The team's tool servers (the TOML file ``SUPPORTBOT_MCP_CONFIG`` names)."""

    servers: dict[str, ServerConfig] = {}
    max_rounds: int = Field(4, ge=1, le=20)
    """Claude calls per customer turn that may end in tool use."""
    proposal_minutes: float = Field(10.0, gt=0)
    """How long a proposed write waits for its Confirm."""

    @field_validator("servers")
    @classmethod
    def _names(cls, servers: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for name in servers:
            if not _SERVER_NAME.match(name):
                raise ValueError(f"server name {name!r}: use 1-20 of a-z, 0-9 and -")
        return servers

    @classmethod
    def load(cls, path: Path) -> ActionsConfig:
        from core.config import ConfigError, describe

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"mcp_config: cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"mcp_config: {path} is not valid TOML: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, prefix=f"mcp_config ({path})")) from exc


def demo_shop(python: str, db: Path) -> ServerConfig:
    """The shipped demo shop (``bots/demo_shop``) over stdio, on the SQLite file ``db``."""
    return ServerConfig(command=python, args=["-m", "bots.demo_shop", "--db", str(db)])


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool as offered to Claude (``name`` is namespaced by server)."""

    name: str
    server: str
    tool: str
    title: str
    description: str
    input_schema: dict[str, Any]
    access: Access

    def definition(self) -> dict[str, Any]:
        """The Messages API tool definition."""
        description = self.description
        who = {
            Access.WRITE: "the customer is shown",
            Access.STAFF_APPROVAL: "the support team must approve it first, and is shown",
        }.get(self.access)
        if who is not None:
            description += (
                f"\n\nThis changes the shop's records, so it does not run when you call it: {who} "
                "exactly this action with Confirm and Cancel buttons, and you hear the outcome "
                "once they decide. Call it only with the exact values agreed."
            )
        return {"name": self.name, "description": description, "input_schema": self.input_schema}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool call's result as Claude reads it: text, and whether it failed."""

    text: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is for: the conversation's platform and customer (sent in ``_meta``)."""

    platform: str
    customer: str


class ToolPort(Protocol):
    def tools(self) -> list[ToolSpec]:
        """Every tool the servers list now, staff-only ones included."""
        ...

    async def call(self, spec: ToolSpec, arguments: dict[str, Any], caller: Caller) -> ToolOutcome:
        """Run one tool; a down, slow or failing server is an ``is_error`` outcome, never
        an exception, and never waits past the server's timeout."""
        ...


class ProposalState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Proposal:
    """A write Claude asked for, waiting for its Confirm: the exact call, frozen."""

    key: ConversationKey
    conversation_id: int
    customer_id: str
    direct: bool
    tool: str
    arguments: dict[str, Any]
    summary: str
    staff_approval: bool
    expires_at: datetime
    created_at: datetime
    id: int = 0
    state: ProposalState = ProposalState.PENDING


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log: who, where, which tool, with what, and what came of it."""

    conversation_id: int
    key: ConversationKey
    customer_id: str
    tool: str
    arguments: dict[str, Any]
    outcome: str
    detail: str
    at: datetime
    actor: str = ""
    """Who made it happen: the customer's id, a staff member's for staff approval."""


class ActionStore(Protocol):
    async def propose(self, proposal: Proposal) -> int:
        """Store a pending proposal; its id."""
        ...

    async def proposal(self, proposal_id: int) -> Proposal | None: ...

    async def settle(self, proposal_id: int, *, to: ProposalState, by: str, now: datetime) -> bool:
        """Move a pending proposal to ``to`` (compare-and-set): False if it was not pending."""
        ...

    async def audit(self, entry: AuditEntry) -> None: ...

    async def audit_log(self, *, limit: int = 100) -> list[AuditEntry]:
        """The newest entries, oldest first."""
        ...


@dataclass(slots=True)
class Toolbox:
    """What the engine needs for actions: the tools, the store, and the limits."""

    port: ToolPort
    store: ActionStore
    max_rounds: int = 4
    proposal_ttl: timedelta = timedelta(minutes=10)

    def offered(self) -> list[ToolSpec]:
        """The tools Claude may call now (never the staff-only ones)."""
        return [s for s in self.port.tools() if s.access is not Access.STAFF_ONLY]

    def find(self, name: str) -> ToolSpec | None:
        return next((s for s in self.offered() if s.name == name), None)

    def spec(self, name: str) -> ToolSpec:
        """The tool called ``name``, whatever its access; while its server does not list it,
        a stand-in whose call reports what the server says (or that it is unavailable)."""
        found = next((s for s in self.port.tools() if s.name == name), None)
        if found is not None:
            return found
        server, _, tool = name.partition(SEPARATOR)
        return ToolSpec(name, server, tool, tool, "", {}, Access.WRITE)


def describe_call(spec: ToolSpec, arguments: dict[str, Any]) -> str:
    """The action in plain words, as the customer sees it before confirming."""
    lines = [f"**{spec.title}**"]
    for name, value in arguments.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"- {name.replace('_', ' ')}: {shown}")
    return "\n".join(lines)
