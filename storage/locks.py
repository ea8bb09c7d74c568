"""One turn at a time per conversation across replicas: PostgreSQL advisory locks.

The lock is a session lock held on a connection of its own for the whole turn (the customer's
turn stored, Claude's answer, the answer stored), so a second replica that receives the next
message of the same conversation waits for the first to finish and then sees its answer.
PostgreSQL grants a contended advisory lock in the order it was asked for, which is the order
the messages arrived in. A replica that dies mid-turn loses its connection, and PostgreSQL
releases the lock with it.

The connections come from a pool of their own: a turn waiting for a lock holds nothing the
turns in progress need. When there is no connection to spare (this pool's are all holding
locks, or the server is at ``max_connections``) the turn waits for one instead of going on
unlocked, which under load would let two replicas answer one message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

log = logging.getLogger(__name__)

_LOCK = text("SELECT pg_advisory_lock(hashtextextended(:key, 0))")
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
_TOO_MANY_CONNECTIONS = "53300"
_PAUSE_FIRST, _PAUSE_MAX = 0.1, 2.0
"""Seconds between tries for a connection when there is none to spare: doubling, capped."""


class AdvisoryLocks:
    """Implements ``core.ports.TurnLocks`` on a PostgreSQL database.

    When the lock cannot be had (the database is down; a connection cannot be checked out
    and pinged within ``connect_timeout`` + ``command_timeout`` seconds; the lock is not
    granted within ``wait`` seconds) the turn goes on without it and is logged: it meets the
    same outage when it stores the message, and takes the engine's fallback path, instead of
    hanging. A database that is up but has no connection to spare is waited for, up to
    ``wait`` seconds, before the lock itself is. ``try_hold`` (recoveries) never goes on
    without it, and does not wait.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float,
        command_timeout: float,
        pool_size: int,
        wait: float,
    ) -> None:
        self._checkout = connect_timeout + command_timeout
        self._command_timeout = command_timeout
        self._wait = wait
        self._engine = create_async_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            pool_size=pool_size,
            max_overflow=3 * pool_size,
            # A pool with every connection out says so, rather than outwait ``_checkout``.
            pool_timeout=connect_timeout,
            connect_args={"timeout": connect_timeout},
        )

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        connection = await self._connected(busy_for=self._wait)
        if connection is not None and not await self._ask(connection, _LOCK, key, self._wait):
            connection = None
        try:
            yield connection is not None
        finally:
            if connection is not None:
                await self._unlock(connection, key)

    @asynccontextmanager
    async def try_hold(self, key: str) -> AsyncIterator[bool]:
        connection = await self._connected()
        if connection is not None:
            got = await self._ask(connection, _TRY_LOCK, key, self._command_timeout)
            if not got:
                connection = None
        try:
            yield connection is not None
        finally:
            if connection is not None:
                await self._unlock(connection, key)

    async def _connected(self, *, busy_for: float = 0.0) -> AsyncConnection | None:
        """A connection to hold a lock on; while there is none to spare, tried again for up
        to ``busy_for`` seconds. ``None`` when the database cannot be reached."""
        loop = asyncio.get_running_loop()
        give_up, pause = loop.time() + busy_for, _PAUSE_FIRST
        while True:
            try:
                async with asyncio.timeout(self._checkout):
                    return await self._engine.connect()
            except Exception as exc:
                if not _busy(exc) or loop.time() + pause > give_up:
                    log.warning("no turn lock (%s): going on without it", _why(exc))
                    return None
                log.debug("no connection to spare for a turn lock (%s): waiting", _why(exc))
            await asyncio.sleep(pause)
            pause = min(pause * 2, _PAUSE_MAX)

    async def _ask(
        self, connection: AsyncConnection, statement: TextClause, key: str, within: float
    ) -> bool:
        """Whether ``connection`` now holds ``key``'s lock; closed when it does not."""
        try:
            async with asyncio.timeout(within):
                got = (await connection.execute(statement, {"key": key})).scalar()
                await connection.commit()
        except BaseException as exc:
            # Cancelled or failed while asking: the lock may have been granted anyway, and
            # closing the session is the one sure way to let it go.
            await _close(connection)
            if not isinstance(exc, Exception):
                raise
            log.warning("no turn lock (%s): going on without it", type(exc).__name__)
            return False
        if got is False:
            await connection.close()
            return False
        return True

    async def _unlock(self, connection: AsyncConnection, key: str) -> None:
        try:
            async with asyncio.timeout(self._command_timeout):
                await connection.execute(_UNLOCK, {"key": key})
                await connection.commit()
        except BaseException as exc:
            # Closing the session releases the lock whatever went wrong.
            await _close(connection)
            if not isinstance(exc, Exception):
                raise
            log.warning(
                "releasing a turn lock failed (%s): its session was closed", type(exc).__name__
            )
        else:
            await connection.close()

    async def aclose(self) -> None:
        await self._engine.dispose()


def _busy(exc: Exception) -> bool:
    """Whether ``exc`` says the database is there but has no connection to spare now."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and _sqlstate(exc) == _TOO_MANY_CONNECTIONS


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _why(exc: Exception) -> str:
    state = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
    return f"{type(exc).__name__}, SQLSTATE {state}" if state else type(exc).__name__


async def _close(connection: AsyncConnection) -> None:
    await connection.invalidate()
    await connection.close()
