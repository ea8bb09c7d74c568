"""Who is on the support team: they may take over threads, press the escalation buttons and
answer customers through the staff thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_ERRORS, error_code

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0


class StaffDirectory:
    """Members of the support user group (``usergroups.users.list``), cached for a while.

    After an escalation, staff answer the customer in the same thread. Those replies carry no
    bot mention, so without this check the bot would answer each of them as customer text;
    with it they hand the conversation to people. The same check guards the Claim / Resolve /
    Hand back buttons and the DM relay. Without a group id, or when Slack refuses (e.g.
    ``missing_scope`` for ``usergroups:read``), nobody counts as staff and a warning is logged;
    the next try waits for the refresh.
    """

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        group_id: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._group_id = group_id
        self._clock = clock
        self._members: frozenset[str] = frozenset()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def is_staff(self, user_id: str) -> bool:
        if self._group_id is None:
            return False
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= REFRESH_SECONDS:
                self._fetched_at = now
                self._members = await self._fetch(self._group_id)
        return user_id in self._members

    async def _fetch(self, group_id: str) -> frozenset[str]:
        try:
            response = await self._client.usergroups_users_list(usergroup=group_id)
        except SLACK_ERRORS as exc:
            log.warning("usergroups.users.list for %s failed: %s", group_id, error_code(exc))
            return frozenset()
        return frozenset(response.get("users") or [])
