"""Liveness, readiness and metrics over HTTP, for ``supportbot run`` in every mode.

- ``GET /healthz``: 200 while the process's event loop answers (liveness).
- ``GET /readyz``: 200 when the database answers, every platform connection is up and the bot
  is not draining for shutdown; otherwise 503 naming what is not ready (readiness: a load
  balancer or Kubernetes stops sending it events).
- ``GET /metrics``: the Prometheus metrics of ``core.metrics`` and the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.types import StartError

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
"""A readiness check that takes longer than this counts as failed."""

Check = Callable[[], Awaitable[bool]]


class Health:
    """The HTTP endpoints; ``checks`` (by name) all pass for the bot to be ready."""

    def __init__(self, checks: Mapping[str, Check]) -> None:
        self._checks = checks
        self._draining = False
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The port once listening (``SUPPORTBOT_HEALTH_PORT=0`` picks a free one)."""

    def draining(self) -> None:
        """Shutdown has begun: not ready from now on."""
        self._draining = True

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._live)
        app.router.add_get("/readyz", self._ready)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:
            await self.close()
            raise StartError(
                f"SUPPORTBOT_HEALTH_PORT: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        self.port = self._runner.addresses[0][1]
        log.info("health and metrics on %s:%s (/healthz, /readyz, /metrics)", host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def not_ready(self) -> list[str]:
        """The names of the checks that fail now (``draining`` first, when it applies)."""
        failing = ["draining"] if self._draining else []
        names = list(self._checks)
        results = await asyncio.gather(*(self._passes(name) for name in names))
        return failing + [name for name, ok in zip(names, results, strict=True) if not ok]

    async def _passes(self, name: str) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return await self._checks[name]()
        except Exception as exc:
            # Probes come every few seconds: an outage is one line per probe, not a traceback.
            log.info("readiness: %s check failed (%s)", name, type(exc).__name__)
            return False

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _ready(self, request: web.Request) -> web.Response:
        failing = await self.not_ready()
        if failing:
            return web.json_response({"status": "not ready", "failing": failing}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
