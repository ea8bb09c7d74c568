"""Customer turns a dead process left unanswered, found and answered.

A process killed mid-turn (``kill -9``, a crash, an out-of-memory kill, a lost machine) leaves
the customer's turn stored and unanswered: the platform will not deliver the message again,
since it was acknowledged. Every replica looks for such turns at start and then every few
seconds, and hands each to its adapter, which answers it where it was asked. The same watcher
finds replies stored and never taken by the platform (a post that failed past its retries, a
process killed between storing the answer and the platform taking it) and hands them over to be
delivered, after a look at the platform for one that got through; one too old to be worth
saying is given up (``core.outbox.give_up``); and, beside it, the staff outbox's relays, staff
replies and notice re-draws (``watch_staff_outbox``). A turn younger than ``after`` is left
alone (its process may still be answering it); one that a live replica is answering is found
answered once its lock is free (``Engine.recover``), so nothing is answered twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

from core.clock import utcnow
from core.metrics import OUTBOX_AGE, OUTBOX_DEPTH, STAFF_OUTBOX_AGE, STAFF_OUTBOX_DEPTH
from core.outbox import give_up
from core.ports import ConversationStore, StaffKind, StaffPending, Unanswered, Undelivered

log = logging.getLogger(__name__)


async def watch_unanswered(
    store: ConversationStore,
    recover: Callable[[Unanswered], None],
    *,
    platforms: set[str],
    after: timedelta,
    within: timedelta,
    every: float,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Hand ``recover`` each unanswered customer turn on ``platforms`` stored more than
    ``after`` and less than ``within`` ago, now and every ``every`` seconds, until cancelled."""

    async def look(now: datetime) -> None:
        found = await store.unanswered(platforms=platforms, since=now - within, before=now - after)
        for unanswered in found:
            log.info(
                "message %s in %s unanswered since %s: answering it, unless the turn that "
                "has it is still running",
                unanswered.message_id,
                unanswered.key,
                unanswered.at.isoformat(timespec="seconds"),
            )
            recover(unanswered)

    await _every(every, clock, look, "unanswered turns")


async def watch_undelivered(
    store: ConversationStore,
    redeliver: Callable[[Undelivered], None],
    *,
    platforms: set[str],
    after: timedelta,
    every: float,
    give_up_after: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Hand ``redeliver`` each reply on ``platforms`` stored more than ``after`` ago and not
    delivered yet, now and every ``every`` seconds, until cancelled; give up those stored more
    than ``give_up_after`` ago (what they say is out of date by now), and keep the outbox
    gauges (``core.metrics``) on the rest, however young."""

    async def look(now: datetime) -> None:
        waiting = await store.undelivered(platforms=platforms, before=now)
        waiting = [u for u in waiting if not await _too_old(store, u, give_up_after, now)]
        OUTBOX_DEPTH.set(len(waiting))
        OUTBOX_AGE.set((now - waiting[0].at).total_seconds() if waiting else 0)
        for undelivered in waiting:
            if now - undelivered.at > after:
                redeliver(undelivered)

    await _every(every, clock, look, "undelivered replies")


async def watch_staff_outbox(
    store: ConversationStore,
    resend: Callable[[StaffPending], None],
    *,
    platforms: set[str],
    after: timedelta,
    every: float,
    give_up_after: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Hand ``resend`` each staff outbox post on ``platforms`` that is due (its try failed,
    or its process died holding it) and each notice re-draw pending for more than ``after``,
    marked ``expired`` past ``give_up_after``, now and every ``every`` seconds, until
    cancelled; keep the staff outbox gauges (``core.metrics``) on what waits."""

    async def look(now: datetime) -> None:
        waiting = await store.staff_waiting(platforms=platforms)
        STAFF_OUTBOX_DEPTH.set(len(waiting))
        STAFF_OUTBOX_AGE.set((now - waiting[0].at).total_seconds() if waiting else 0)
        for pending in waiting:
            notice = pending.kind is StaffKind.NOTICE
            if (now - pending.at > after) if notice else (pending.due <= now):
                resend(replace(pending, expired=now - pending.at > give_up_after))

    await _every(every, clock, look, "staff posts to retry")


async def _every(
    every: float,
    clock: Callable[[], datetime],
    look: Callable[[datetime], Awaitable[None]],
    what: str,
) -> None:
    """``look`` now and every ``every`` seconds until cancelled; a failed look (the database
    is down) is logged and made again at the next."""
    while True:
        try:
            await look(clock())
        except Exception as exc:
            log.warning("looking for %s failed (%s); trying again", what, type(exc).__name__)
        await asyncio.sleep(every)


async def _too_old(
    store: ConversationStore, undelivered: Undelivered, limit: timedelta, now: datetime
) -> bool:
    """Whether ``undelivered`` is past ``limit``, and so given up now."""
    if now - undelivered.at <= limit:
        return False
    why = f"not delivered within {limit}"
    await give_up(store, undelivered.id, undelivered.turn.key, why, now=now)
    return True
