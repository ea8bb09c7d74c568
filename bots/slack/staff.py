"""Who is on the support team, and what they are called: they may take over threads, press
the escalation buttons and answer customers through the staff thread."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_ERRORS, error_code

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300.0
"""How long a fetched member list is trusted."""
RETRY_SECONDS = 10.0
"""After a failed fetch, the next check tries again once this much time has passed: soon
enough that a Slack hiccup does not treat staff as customers for long, not so soon that a
missing scope costs a failing call on every message."""


class StaffDirectory:
    """Members of the support user group (``usergroups.users.list``), and staff names.

    After an escalation, staff answer the customer in the same thread. Those replies carry no
    bot mention, so without this check the bot would answer each of them as customer text;
    with it they hand the conversation to people. The same check guards the Claim / Resolve /
    Hand back buttons and the DM relay. Without a group id nobody counts as staff. When Slack
    refuses (e.g. ``missing_scope`` for ``usergroups:read``) a warning is logged, the last list
    fetched (at first: nobody) stays in use, and the fetch is tried again after
    ``RETRY_SECONDS``; a failure is never kept for the full ``REFRESH_SECONDS``.
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
        self._next_fetch: float | None = None
        self._lock = asyncio.Lock()
        self._names: dict[str, str] = {}

    async def is_staff(self, user_id: str) -> bool:
        if self._group_id is None:
            return False
        async with self._lock:
            now = self._clock()
            if self._next_fetch is None or now >= self._next_fetch:
                members = await self._fetch(self._group_id)
                if members is None:
                    self._next_fetch = now + RETRY_SECONDS
                else:
                    self._members, self._next_fetch = members, now + REFRESH_SECONDS
        return user_id in self._members

    async def name(self, user_id: str) -> str:
        """The name customers see on a staff member's relayed reply (``users.info``, kept
        once found); the user id when Slack will not say."""
        known = self._names.get(user_id)
        if known is not None:
            return known
        try:
            response = await self._client.users_info(user=user_id)
        except SLACK_ERRORS as exc:
            log.warning("users.info for %s failed: %s", user_id, error_code(exc))
            return user_id
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        found = profile.get("display_name") or profile.get("real_name") or user.get("name")
        self._names[user_id] = name = str(found or user_id)
        return name

    async def _fetch(self, group_id: str) -> frozenset[str] | None:
        try:
            response = await self._client.usergroups_users_list(usergroup=group_id)
        except SLACK_ERRORS as exc:
            log.warning("usergroups.users.list for %s failed: %s", group_id, error_code(exc))
            return None
        return frozenset(response.get("users") or [])
