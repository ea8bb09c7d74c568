"""A support forum as a ticket desk: a customer's post shows where its escalation stands.

A hand-off tags the post "Escalated"; a resolve swaps that for "Solved" and archives the post
(and locks it with ``DISCORD_LOCK_SOLVED_POSTS``); a hand back takes "Escalated" off. When the
customer writes in a solved post again, "Solved" comes off and the post is unarchived. The
tags are added to the forum the first time they are needed (``manage_channels``); tagging,
archiving and locking someone else's post needs ``manage_threads``. Posts in plain text
channels' threads and DMs are left alone. Failures are logged and never stop a turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeGuard

import discord

from bots.discord.routing import DM_SPACE
from bots.discord.send import SEND_ERRORS, describe
from core.escalation import State
from core.types import EscalationView

log = logging.getLogger(__name__)

ESCALATED, SOLVED = "Escalated", "Solved"
TAGS_PER_FORUM, TAGS_PER_POST = 20, 5  # Discord's limits
# Each state: the tags it puts on the post, and those it takes off.
_TAGS: dict[State, tuple[tuple[str, ...], tuple[str, ...]]] = {
    State.OPEN: ((ESCALATED,), (SOLVED,)),
    State.CLAIMED: ((ESCALATED,), (SOLVED,)),
    State.RESOLVED: ((SOLVED,), (ESCALATED,)),
    State.HANDED_BACK: ((), (ESCALATED,)),
}


class ForumDesk:
    """Tags, archives and reopens customers' forum posts (see the module docstring)."""

    def __init__(self, *, client: discord.Client, lock_solved: bool) -> None:
        self._client = client
        self._lock_solved = lock_solved
        self._creating = asyncio.Lock()
        self._made: dict[tuple[int, str], discord.ForumTag] = {}

    async def follow(self, view: EscalationView) -> None:
        """Make the customer's forum post (if the conversation is one) show ``view``'s state."""
        post = await self._post(view)
        if post is None:
            return
        state = State(view.state)
        add, drop = _TAGS[state]
        solved = state == State.RESOLVED
        try:
            tags = [await self._tag(post.parent, name) for name in add]
            changes = _retagged(post, [t for t in tags if t is not None], drop)
            # Discord edits an archived post (Discord archives idle ones) only in a request
            # that unarchives it: a solved one is unarchived first, then archived again.
            if solved and post.archived:
                post = await post.edit(archived=False)
            if solved:
                changes.update(archived=True, locked=self._lock_solved)
            elif changes and post.archived:
                changes["archived"] = False
            if changes:
                await post.edit(**changes)
        except SEND_ERRORS as exc:
            log.warning("could not tag forum post %s (%s)", post.id, describe(exc))

    async def unarchive(self, view: EscalationView) -> None:
        """Unarchive the customer's forum post, locked or not (the bot moderates), so that the
        bot can post in it; the cache may not have seen the archive yet, so it is not asked."""
        post = await self._post(view)
        if post is None:
            return
        try:
            await post.edit(archived=False)
        except SEND_ERRORS as exc:
            log.warning("could not unarchive forum post %s (%s)", post.id, describe(exc))

    async def reopen(self, channel: object) -> None:
        """The customer wrote in ``channel`` again: a solved forum post loses "Solved" and is
        unarchived (a post the bot never tagged is left as it is)."""
        if not _is_post(channel):
            return
        changes = _retagged(channel, [], (SOLVED,))
        if not changes:
            return
        try:
            await channel.edit(archived=False, **changes)
        except SEND_ERRORS as exc:
            log.warning("could not reopen forum post %s (%s)", channel.id, describe(exc))

    async def _post(self, view: EscalationView) -> discord.Thread | None:
        key = view.key
        if key.space_id == DM_SPACE or key.thread_id == "-":
            return None
        post_id = int(key.thread_id)
        try:
            channel = self._client.get_channel(post_id) or await self._client.fetch_channel(post_id)
        except SEND_ERRORS as exc:
            log.warning("cannot find the thread of %s (%s)", key, describe(exc))
            return None
        return channel if _is_post(channel) else None

    async def _tag(self, forum: discord.ForumChannel, name: str) -> discord.ForumTag | None:
        """The forum's tag called ``name``, created (moderators only) when it has none."""
        async with self._creating:
            found = _named(forum, name) or self._made.get((forum.id, name))
            if found is not None:
                return found
            if len(forum.available_tags) >= TAGS_PER_FORUM:
                log.warning("forum %s has no room for a %r tag", forum.id, name)
                return None
            # The gateway's CHANNEL_UPDATE refreshes the cache later: remembered till then.
            made = self._made[forum.id, name] = await forum.create_tag(name=name, moderated=True)
            log.info("added the %r tag to forum %s", name, forum.id)
            return made


def _is_post(channel: object) -> TypeGuard[discord.Thread]:
    """A post in a forum channel (a thread whose parent is a forum)."""
    return isinstance(channel, discord.Thread) and isinstance(channel.parent, discord.ForumChannel)


def _named(forum: discord.ForumChannel, name: str) -> discord.ForumTag | None:
    wanted = name.casefold()
    return next((t for t in forum.available_tags if t.name.casefold() == wanted), None)


def _retagged(
    post: discord.Thread, add: list[discord.ForumTag], drop: tuple[str, ...]
) -> dict[str, object]:
    """``{"applied_tags": …}`` with ``add`` on and the tags named ``drop`` off; empty when
    that changes nothing. The post keeps its other tags as far as Discord's 5 allow."""
    dropped = {name.casefold() for name in drop}
    applied = post.applied_tags
    ours = {t.id for t in add}
    kept = [t for t in applied if t.name.casefold() not in dropped and t.id not in ours]
    tags = kept[: TAGS_PER_POST - len(add)] + add
    if {t.id for t in tags} == {t.id for t in applied}:
        return {}
    return {"applied_tags": tags}
