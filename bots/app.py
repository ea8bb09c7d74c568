"""The composition root: settings → database → Claude → engine, with one owner of each lifetime."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from bots.health import Health
from bots.registry import Adapter, platforms
from core.actions import Toolbox
from core.config import ClaudeSettings, Settings
from core.desk import Desk, watch_repings
from core.engine import Engine, Limits, watch_held
from core.feedback import Feedback
from core.files import MB, FileLimits
from core.flood import FloodGate
from core.housekeeping import watch_housekeeping
from core.metrics import HELD
from core.ports import LLMResult, Unanswered
from core.recovery import watch_staff_outbox, watch_unanswered, watch_undelivered
from core.stream import ClaudeEvents
from core.types import EscalationView
from storage.actions import SqlActionStore
from storage.database import open_database
from storage.feedback import SqlFeedbackStore
from storage.locks import AdvisoryLocks
from storage.repository import SqlStore

if TYPE_CHECKING:
    from core.claude import ClaudeClient

log = logging.getLogger("supportbot")

HELD_RETRY_SECONDS = 5.0
"""How often messages a database outage held back are offered to the database again."""


@dataclass(frozen=True, slots=True)
class Runtime:
    engine: Engine
    desk: Desk
    store: SqlStore
    settings: Settings
    tools: Toolbox | None = None
    """The MCP servers' tools and the action store, when servers are configured and Claude is."""
    llm: DeferredClaude | None = None


class DeferredClaude:
    """The engine's Claude, whose client is built on first use.

    The anthropic SDK takes most of a second to import, which neither a start (the bot is
    ready without it), limited mode nor the CLI's database commands should wait for. ``warm``
    imports it in a worker thread once the bot is up; a turn that comes sooner waits for it.
    """

    def __init__(self, settings: ClaudeSettings) -> None:
        self._settings = settings
        self._loading: asyncio.Future[ModuleType] | None = None
        self._client: ClaudeClient | None = None

    def warm(self) -> None:
        """Start importing the SDK, if nothing has yet."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(
                asyncio.to_thread(importlib.import_module, "core.claude")
            )

    async def client(self) -> ClaudeClient:
        if self._client is None:
            self.warm()
            assert self._loading is not None
            module = await self._loading
            if self._client is None:
                self._client = module.ClaudeClient(settings=self._settings)
        return self._client

    async def respond(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        events: ClaudeEvents | None = None,
    ) -> LLMResult:
        claude = await self.client()
        return await claude.respond(system=system, messages=messages, tools=tools, events=events)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


@asynccontextmanager
async def open_runtime(settings: Settings, *, flood: bool = False) -> AsyncIterator[Runtime]:
    """Migrate the database, then build the engine; everything is closed on exit.

    ``flood``: hold customers to ``SUPPORTBOT_FLOOD_PER_MINUTE`` (the platforms; not the
    console, whose one local user may paste several lines at once).

    A database that cannot be opened is a ``StartError`` naming ``SUPPORTBOT_DATABASE_URL``.
    """
    assert settings.persona is not None
    database = await open_database(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout_seconds,
        command_timeout=settings.database_command_timeout_seconds,
    )
    llm = DeferredClaude(settings.claude) if settings.claude.api_key else None
    store = SqlStore(engine=database)
    locks = _turn_locks(settings)
    try:
        async with AsyncExitStack() as stack:
            if llm is None:
                log.info("no ANTHROPIC_API_KEY: running in limited (knowledge-base) mode")
            tools = await _toolbox(settings, database, stack) if llm is not None else None
            engine = Engine(
                store=store,
                llm=llm,
                persona=settings.persona,
                limits=Limits(
                    token_budget=settings.claude.token_budget,
                    idle_timeout=timedelta(hours=settings.idle_timeout_hours),
                    max_input_chars=settings.max_input_chars,
                    reping_after=timedelta(minutes=settings.reping_minutes),
                    cache_ttl_prefix=settings.claude.cache_ttl_prefix,
                    cache_ttl_conversation=settings.claude.cache_ttl_conversation,
                    files=FileLimits(
                        max_files=settings.max_files,
                        image_bytes=int(settings.max_image_mb * MB),
                        pdf_bytes=int(settings.max_pdf_mb * MB),
                        pdf_pages=settings.max_pdf_pages,
                    ),
                ),
                tools=tools,
                locks=locks,
                rate_answers=True,
                flood=(
                    FloodGate(per_minute=settings.flood_per_minute, burst=settings.flood_burst)
                    if flood and settings.flood_per_minute > 0
                    else None
                ),
            )
            feedback = Feedback(
                store=SqlFeedbackStore(engine=database), texts=settings.persona.feedback
            )
            stack.push_async_callback(engine.settle)
            yield Runtime(
                engine=engine,
                desk=Desk(store=store, feedback=feedback),
                store=store,
                settings=settings,
                tools=tools,
                llm=llm,
            )
    finally:
        if llm is not None:
            await llm.aclose()
        if locks is not None:
            await locks.aclose()
        await store.close()
        await database.dispose()


def _turn_locks(settings: Settings) -> AdvisoryLocks | None:
    """On PostgreSQL, where replicas share the database: one turn at a time per conversation
    across them. SQLite is one process's file, and the engine's own lock is enough."""
    if not settings.database_url.startswith("postgresql"):
        return None
    return AdvisoryLocks(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout_seconds,
        command_timeout=settings.database_command_timeout_seconds,
        pool_size=settings.claude.max_concurrency,
        wait=settings.turn_lock_wait_seconds,
    )


async def _toolbox(
    settings: Settings, database: AsyncEngine, stack: AsyncExitStack
) -> Toolbox | None:
    """The configured MCP servers' tools (``None`` without any), connected for the runtime's
    lifetime; waits up to the slowest server's timeout for their first tool lists."""
    actions = settings.actions
    if actions is None or not actions.servers:
        return None
    # Imported only with servers configured: the mcp SDK takes a second or two to import.
    from core.mcp_tools import McpTools

    tools = await stack.enter_async_context(McpTools(actions.servers))
    await tools.ready(max(s.timeout_seconds for s in actions.servers.values()))
    return Toolbox(
        port=tools,
        store=SqlActionStore(engine=database),
        max_rounds=actions.max_rounds,
        proposal_ttl=timedelta(minutes=actions.proposal_minutes),
    )


def build_adapter(name: str, settings: BaseSettings, runtime: Runtime) -> Adapter:
    """Platform ``name``'s adapter with its ``settings``, wired to the runtime's engine and desk."""
    return platforms()[name].adapter(settings, runtime.engine, runtime.desk)


async def serve(
    settings: Settings,
    chosen: Mapping[str, BaseSettings],
    *,
    make_adapter: Callable[[str, BaseSettings, Runtime], Adapter] = build_adapter,
) -> None:
    """Run an adapter for each platform in ``chosen`` (its name and its settings) and the
    watchers until SIGTERM or SIGINT, or until cancelled.

    On SIGTERM or SIGINT (every deploy sends one) the adapters stop taking events, the turns in
    progress finish within ``SUPPORTBOT_SHUTDOWN_GRACE_SECONDS`` and post their answers, and
    this returns. If an adapter's ``wait`` raises, everything else is cancelled and awaited,
    then the adapters are closed and the database disposed, and the failure is raised (in an
    ``ExceptionGroup``). ``make_adapter`` builds each platform's adapter.
    """
    grace = settings.shutdown_grace_seconds
    async with open_runtime(settings, flood=True) as runtime:
        HELD.set_function(lambda: runtime.engine.held)
        async with AsyncExitStack() as stack:
            adapters: dict[str, Adapter] = {}
            checks = {name: _connected(adapters, name) for name in chosen}
            health = Health({"database": runtime.store.ping, **checks})
            await health.start(settings.health_host, settings.health_port)
            stack.push_async_callback(health.close)
            for platform in sorted(chosen):
                adapter = make_adapter(platform, chosen[platform], runtime)
                await adapter.start()
                stack.push_async_callback(adapter.close, grace=grace)
                adapters[platform] = adapter
            if runtime.llm is not None:
                runtime.llm.warm()  # the bot is up: now load the Claude client beside it

            async def reping(view: EscalationView) -> None:
                await adapters[view.key.platform].reping(view)

            # Check a few times per re-ping interval, never less often than every 30 s.
            every = min(30.0, settings.reping_minutes * 60 / 5)
            try:
                # A task group, not gather: one failure cancels the watchers and the other
                # adapters before the database they use is disposed.
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(_until_signalled())
                    tasks.create_task(
                        watch_repings(runtime.desk, reping, platforms=set(chosen), every=every)
                    )
                    tasks.create_task(watch_held(runtime.engine, every=HELD_RETRY_SECONDS))
                    late_after = timedelta(minutes=settings.late_after_minutes)

                    def recover(unanswered: Unanswered) -> None:
                        adapters[unanswered.key.platform].recover(unanswered, late_after=late_after)

                    # What a dead process left, and posts that failed: looked for by the
                    # same watchers on every replica.
                    left: dict[str, Any] = {
                        "platforms": set(chosen),
                        "after": timedelta(seconds=settings.recover_after_seconds),
                        "every": min(10.0, settings.recover_after_seconds / 3),
                    }
                    give_up = timedelta(minutes=settings.outbox_give_up_minutes)
                    within = timedelta(hours=settings.recover_within_hours)
                    tasks.create_task(
                        watch_unanswered(runtime.store, recover, within=within, **left)
                    )
                    tasks.create_task(
                        watch_undelivered(
                            runtime.store,
                            lambda u: adapters[u.turn.key.platform].redeliver(u),
                            give_up_after=give_up,
                            **left,
                        )
                    )
                    tasks.create_task(
                        watch_staff_outbox(
                            runtime.store,
                            lambda p: adapters[p.escalation.key.platform].resend(p),
                            give_up_after=give_up,
                            **left,
                        )
                    )
                    retention = timedelta(days=settings.delivery_retention_days)
                    tasks.create_task(
                        watch_housekeeping(runtime.store, retention=retention, every=3600.0)
                    )
                    for adapter in adapters.values():
                        tasks.create_task(adapter.wait())
            except* Signalled as group:
                [signalled] = group.exceptions
                health.draining()
                log.info(
                    "%s: taking no new events; finishing the turns in progress (up to %g s)",
                    signalled,
                    grace,
                )
        # Closing the adapters above let their turns finish and post.
        log.info("shut down cleanly")


def _connected(adapters: Mapping[str, Adapter], name: str) -> Callable[[], Awaitable[bool]]:
    """The readiness check of platform ``name``: started and connected."""

    async def check() -> bool:
        adapter = adapters.get(name)
        return adapter is not None and await adapter.connected()

    return check


class Signalled(Exception):
    """SIGTERM or SIGINT arrived: stop and drain."""


async def _until_signalled() -> None:
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[signal.Signals] = asyncio.Queue()
    wanted = (signal.SIGTERM, signal.SIGINT)
    for each in wanted:
        loop.add_signal_handler(each, arrived.put_nowait, each)
    try:
        raise Signalled((await arrived.get()).name)
    finally:
        for each in wanted:
            loop.remove_signal_handler(each)
