"""One piece of work at a time per key (a conversation, a staff thread, an escalation)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from weakref import WeakValueDictionary


class Serial:
    """``async with serial(key):`` runs blocks with the same key one at a time, in arrival
    order (``asyncio.Lock`` wakes waiters first come, first served, and a free lock is taken
    without yielding). A lock lives only while someone holds or awaits it, so idle keys cost
    nothing."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[Hashable, asyncio.Lock] = WeakValueDictionary()

    def __call__(self, key: Hashable) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
