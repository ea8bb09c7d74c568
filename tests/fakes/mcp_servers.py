"""Small MCP servers that misbehave on purpose, built with the real ``mcp`` package.

``trouble_server()`` has a read that works (``echo``), one that crashes its process
(``crash``: only over stdio, ``python -m tests.fakes.mcp_servers``; its last words, on its
stderr, are ``LAST_WORDS``), one that never answers
(``hang``), one that fails (``fail``), a write (``poke``) and one that adds a tool and says so
(``grow``, which sends ``notifications/tools/list_changed``). ``serve_http`` serves any
``MCPServer`` over streamable HTTP on 127.0.0.1, optionally behind a bearer token.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

READ = ToolAnnotations(read_only_hint=True)
LAST_WORDS = "trouble: going down mid-call, Authorization: Bearer tr0uble-t0ken"


def trouble_server() -> MCPServer:
    server = MCPServer("trouble", log_level="CRITICAL")

    @server.tool(annotations=READ)
    def echo(text: str) -> str:
        """Say ``text`` back."""
        return f"echo: {text}"

    @server.tool(annotations=READ)
    def crash() -> str:
        """Say so on stderr, then end the server's process mid-call."""
        print(LAST_WORDS, file=sys.stderr, flush=True)
        os._exit(3)

    @server.tool(annotations=READ)
    async def hang() -> str:
        """Never answer."""
        await asyncio.Event().wait()
        return "never"

    @server.tool(annotations=READ)
    def fail() -> str:
        """Refuse with a reason."""
        raise ToolError("the warehouse system is closed for maintenance")

    @server.tool()
    def poke(target: str) -> str:
        """A write: poke ``target``."""
        return f"poked {target}"

    @server.tool(annotations=READ)
    async def grow(ctx: Context) -> str:
        """Add the ``fresh`` tool and tell the client its tools changed."""

        def fresh() -> str:
            """A tool that was not there at first."""
            return "fresh"

        server.add_tool(fresh, annotations=READ)
        await ctx.session.send_tool_list_changed()
        return "grown"

    return server


def _with_bearer(app: Any, token: str) -> Any:
    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


@asynccontextmanager
async def serve_http(server: MCPServer, *, token: str | None = None) -> AsyncIterator[str]:
    """Serve ``server`` over streamable HTTP; yields its URL."""
    app: Any = server.streamable_http_app()
    if token is not None:
        app = _with_bearer(app, token)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="critical", timeout_graceful_shutdown=1)
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    try:
        while not running.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    finally:
        running.should_exit = True
        await task


if __name__ == "__main__":
    trouble_server().run("stdio")
