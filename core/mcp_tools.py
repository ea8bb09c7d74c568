"""``McpTools``: the team's MCP servers as one :class:`~core.actions.ToolPort`.

Imported only when servers are configured (the ``mcp`` SDK takes a second or two to import).
Each server runs under a supervisor task that owns its ``mcp.Client``: it connects (starting
the command, for stdio), lists the tools, re-lists them whenever the server sends
``notifications/tools/list_changed``, and reconnects with a growing pause when the connection
is lost (the process died, the URL stopped answering). A call to a server that is not
connected, that does not answer within its ``timeout_seconds`` or that fails, comes back as an
``is_error`` outcome with a sentence Claude can act on; the details go to the log only.

The handshake is the ``initialize`` one (``mode="legacy"``): on it a server may send
``list_changed`` whenever its tools change, which the 2026-07-28 protocol only does on a
``subscriptions/listen`` stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TextIO

import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from core import logs
from core.actions import (
    SEPARATOR,
    TOOL_NAME,
    Caller,
    ServerConfig,
    ToolOutcome,
    ToolSpec,
)
from core.text import sanitize

log = logging.getLogger("supportbot.tools")

PLATFORM_META_KEY = "supportbot/platform"
CUSTOMER_META_KEY = "supportbot/customer"
RESULT_LIMIT = 6000
"""Characters of a tool result passed to Claude; the rest is cut (and said so)."""
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 30.0
STDERR_LINE_LIMIT = 500
"""Characters of a line a stdio server writes to its stderr kept in the bot's log."""
STDERR_LOG = logging.getLogger("supportbot.tools.stderr")


def unavailable(server: str) -> str:
    return (
        f"The {server} system is unavailable right now, so this was not done. Apologise, say "
        "it could not be checked or changed just now, and offer to hand the customer to the "
        "support team (escalate_to_human)."
    )


def too_slow(server: str, seconds: float) -> str:
    return (
        f"The {server} system did not answer within {seconds:g} seconds, so the result is "
        "unknown. Apologise and offer to hand the customer to the support team "
        "(escalate_to_human); do not say it was done."
    )


class McpTools:
    """The tools of every configured server; ``async with`` runs the supervisors."""

    def __init__(self, servers: dict[str, ServerConfig]) -> None:
        self._updated = asyncio.Condition()
        self._servers = {
            name: _Server(name, config, self._updated) for name, config in servers.items()
        }
        self._tasks: list[asyncio.Task[None]] = []
        # At DEBUG these log every message, and tool arguments and results quote customers.
        logs.quiet("mcp", "httpx2", "httpcore2")

    async def __aenter__(self) -> McpTools:
        for server in self._servers.values():
            self._tasks.append(asyncio.create_task(server.supervise(), name=f"mcp {server.name}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def ready(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every server has connected once, or ``timeout`` passes (a server still
        down then is offered as soon as it comes up)."""
        try:
            async with asyncio.timeout(timeout):
                await self.wait_until(lambda: all(self.connections(n) for n in self._servers))
        except TimeoutError:
            down = [n for n in self._servers if not self.connections(n)]
            log.warning("MCP servers not ready after %g s: %s", timeout, ", ".join(down))

    async def wait_until(self, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` holds, asking again whenever a server (re)lists its tools."""
        async with self._updated:
            await self._updated.wait_for(check)

    def tools(self) -> list[ToolSpec]:
        return [spec for server in self._servers.values() for spec in server.specs]

    def status(self) -> dict[str, bool]:
        """Each server's name and whether it is connected now."""
        return {name: s.client is not None for name, s in self._servers.items()}

    def connections(self, server: str) -> int:
        """How many times ``server`` has connected (a reconnect after a crash counts)."""
        return self._servers[server].connections

    async def call(self, spec: ToolSpec, arguments: dict[str, Any], caller: Caller) -> ToolOutcome:
        server = self._servers.get(spec.server)
        if server is None:
            return ToolOutcome(unavailable(spec.server), is_error=True)
        return await server.call(spec.tool, arguments, caller)


class _Server:
    def __init__(self, name: str, config: ServerConfig, updated: asyncio.Condition) -> None:
        self.name = name
        self.config = config
        self.client: Client | None = None
        self.specs: list[ToolSpec] = []
        self.connections = 0
        self._updated = updated
        self._changed = asyncio.Event()
        self._lost = asyncio.Event()

    async def supervise(self) -> None:
        pause = RECONNECT_FIRST
        while True:
            try:
                async with self._connect() as client:
                    await self._list(client)
                    self.client = client
                    self.connections += 1
                    await self._notify()
                    pause = RECONNECT_FIRST
                    log.info("MCP server %s connected: %d tools", self.name, len(self.specs))
                    await self._watch(client)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # anyio wraps transport failures in groups
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # a cancellation anyio wrapped in a group: still ours to obey
                log.warning("MCP server %s: connection lost (%s)", self.name, _what(exc))
            finally:
                self.client = None
            self._lost.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX)

    async def _watch(self, client: Client) -> None:
        """Until the connection is lost: re-list the tools whenever the server says so."""
        while True:
            changed = asyncio.create_task(self._changed.wait())
            lost = asyncio.create_task(self._lost.wait())
            try:
                await asyncio.wait({changed, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                lost.cancel()
            if self._lost.is_set():
                return
            self._changed.clear()
            await self._list(client)
            await self._notify()
            log.info("MCP server %s changed its tools: %d now", self.name, len(self.specs))

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[Client]:
        config = self.config
        options: dict[str, Any] = {
            "mode": "legacy",
            "message_handler": self._on_message,
            "read_timeout_seconds": config.timeout_seconds,
            "cache": None,
        }
        if config.command is not None:
            params = StdioServerParameters(
                command=config.command,
                args=config.args,
                env={**os.environ, **config.env} if config.env else None,
                cwd=config.cwd,
            )
            async with (
                _stderr_logged(self.name) as errlog,
                Client(stdio_client(params, errlog=errlog), **options) as client,
            ):
                errlog.close()  # the server holds its own end: EOF comes when it exits
                yield client
            return
        assert config.url is not None
        headers = {}
        if config.token_env is not None:
            token = os.environ.get(config.token_env)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            else:
                log.warning(
                    "MCP server %s: %s is not set; no token sent", self.name, config.token_env
                )
        async with (
            create_mcp_http_client(headers=headers) as http,
            Client(streamable_http_client(config.url, http_client=http), **options) as client,
        ):
            yield client

    async def _on_message(self, message: object) -> None:
        # Runs in the session's receive loop: asking the server anything here would wait on
        # that same loop, so the supervisor does the re-listing.
        if isinstance(message, types.ToolListChangedNotification):
            self._changed.set()
        elif isinstance(message, Exception):
            log.warning("MCP server %s: transport error (%s)", self.name, _what(message))

    async def _list(self, client: Client) -> None:
        specs: list[ToolSpec] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            specs += [s for s in map(self._spec, page.tools) if s is not None]
            cursor = page.next_cursor
            if cursor is None:
                break
        self.specs = specs

    async def _notify(self) -> None:
        async with self._updated:
            self._updated.notify_all()

    def _spec(self, tool: types.Tool) -> ToolSpec | None:
        name = f"{self.name}{SEPARATOR}{tool.name}"
        if not TOOL_NAME.match(name):
            log.warning(
                "MCP server %s: tool %r has an unusable name; skipped", self.name, tool.name
            )
            return None
        annotations = tool.annotations
        title = tool.title or (annotations.title if annotations else None) or tool.name
        read_only = bool(annotations and annotations.read_only_hint)
        return ToolSpec(
            name=name,
            server=self.name,
            tool=tool.name,
            title=sanitize(title),
            description=sanitize(tool.description or title),
            input_schema=tool.input_schema,
            access=self.config.access(tool.name, read_only_hint=read_only),
        )

    async def call(self, tool: str, arguments: dict[str, Any], caller: Caller) -> ToolOutcome:
        client = self.client
        if client is None:
            return ToolOutcome(unavailable(self.name), is_error=True)
        meta = {PLATFORM_META_KEY: caller.platform, CUSTOMER_META_KEY: caller.customer}
        seconds = self.config.timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                result = await client.call_tool(tool, arguments, meta=meta)
        except TimeoutError:
            log.warning("MCP %s.%s: no answer within %g s", self.name, tool, seconds)
            return ToolOutcome(too_slow(self.name, seconds), is_error=True)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                log.warning("MCP %s.%s: no answer within %g s", self.name, tool, seconds)
                return ToolOutcome(too_slow(self.name, seconds), is_error=True)
            if exc.code == types.CONNECTION_CLOSED:
                self._lost.set()
            log.warning("MCP %s.%s failed: %s", self.name, tool, _what(exc))
            return ToolOutcome(unavailable(self.name), is_error=True)
        except (httpx2.HTTPError, OSError, ValueError) as exc:
            log.warning("MCP %s.%s failed: %s", self.name, tool, _what(exc))
            self._lost.set()
            return ToolOutcome(unavailable(self.name), is_error=True)
        text = _result_text(result)
        if result.is_error:
            return ToolOutcome(f"The {self.name} system refused: {text}", is_error=True)
        return ToolOutcome(text)


@asynccontextmanager
async def _stderr_logged(server: str) -> AsyncIterator[TextIO]:
    """A pipe for a stdio server's stderr (its write end, yielded) whose lines become INFO
    lines of the ``supportbot.tools.stderr`` log: never the bot's own stderr, where they would
    land in the console chat. Secrets are masked, control characters dropped, long lines cut."""
    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024)
    # Pipe ends, not files on disk: opening them does not block.
    with os.fdopen(read_fd, "rb") as read_end, os.fdopen(write_fd, "w") as write_end:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), read_end
        )
        task = asyncio.create_task(_log_lines(server, reader), name=f"mcp {server} stderr")
        try:
            yield write_end
        finally:
            write_end.close()
            try:
                # The server has stopped: the rest of what it wrote is in the pipe already.
                await asyncio.wait_for(asyncio.shield(task), 1)
            except TimeoutError:
                task.cancel()
            finally:
                transport.close()


async def _log_lines(server: str, reader: asyncio.StreamReader) -> None:
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line past the reader's limit: the rest of it is dropped
            line = b"(a line too long to keep)"
        if not line:
            return
        said = sanitize(logs.masked(line.decode("utf-8", errors="replace"))).strip()
        if said:
            if len(said) > STDERR_LINE_LIMIT:
                said = said[:STDERR_LINE_LIMIT] + "…"
            STDERR_LOG.info("MCP server %s: %s", server, said)


def _result_text(result: types.CallToolResult) -> str:
    parts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content)]
    text = sanitize("\n".join(parts)) or "(no content)"
    if len(text) > RESULT_LIMIT:
        text = text[:RESULT_LIMIT] + "\n(cut: the result was longer)"
    return text


def _what(exc: BaseException) -> str:
    """An exception's type (and an MCP error's code): never its text, which can quote data."""
    if isinstance(exc, BaseExceptionGroup):
        return ", ".join(_what(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return f"MCPError {exc.code}"
    return type(exc).__name__
