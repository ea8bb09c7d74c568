"""Posting one rendered message, with exactly the pings it allows, and logging what failed."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import aiohttp
import discord

from bots.common.platform import Refused
from bots.discord.render import Outgoing
from core.types import Attachment

log = logging.getLogger(__name__)

# What a REST call can fail with: an error answer, (past max_ratelimit_timeout) a rate limit,
# or a connection lost on the way (discord.py retries only a reset connection itself).
SEND_ERRORS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, TimeoutError)
FILES_PER_MESSAGE = 10  # Discord refuses more files on one message
GONE = frozenset({10003, 10008, 50001, 50007})
"""Refusals that trying again will not cure: unknown channel (deleted), unknown message (a
notice deleted), missing access (the bot was removed from it), cannot send messages to this
user (they closed their DMs, or left)."""


def allowed_mentions(out: Outgoing) -> discord.AllowedMentions:
    """Exactly the ping ``out`` may make: at most its one role, never users or @everyone."""
    roles = [discord.Object(out.ping_role_id)] if out.ping_role_id is not None else False
    return discord.AllowedMentions(everyone=False, users=False, roles=roles, replied_user=False)


def describe(exc: BaseException) -> str:
    """Status and Discord error code (50013 missing permissions, 50007 DMs closed...), or the
    kind of connection failure."""
    if isinstance(exc, discord.RateLimited):
        return f"rate limited for {exc.retry_after:.0f} s"
    if isinstance(exc, discord.HTTPException):
        return f"status {exc.status}, code {exc.code}"
    return f"connection lost ({type(exc).__name__})"


def gone(exc: BaseException) -> bool:
    """Whether Discord refused for good (``GONE``)."""
    return isinstance(exc, discord.HTTPException) and exc.code in GONE


def refused(exc: BaseException, *, strict: bool) -> None:
    """With ``strict``, raise ``Refused`` for a refusal trying again cannot cure (``GONE``)."""
    if strict and gone(exc):
        raise Refused(describe(exc)) from None


def unknown_outcome(exc: BaseException) -> bool:
    """Whether a failed write may have been made all the same: the connection was lost after
    the request went out (Discord said nothing), as opposed to an answer refusing it."""
    return not isinstance(exc, discord.HTTPException | discord.RateLimited)


async def post(
    target: discord.abc.Messageable,
    out: Outgoing,
    *,
    reference: discord.MessageReference | None = None,
    view: discord.ui.View | None = None,
    files: Sequence[Attachment] = (),
    context: object,
    strict: bool = False,
) -> bool:
    """Send ``out`` (with the buttons of ``view``, and up to ``FILES_PER_MESSAGE`` ``files``);
    on failure log it with ``context`` (a conversation key or escalation) and return False
    (``strict``: raise ``Refused`` for a refusal for good)."""
    extra = {"files": [_file(f) for f in files]} if files else {}
    try:
        await target.send(
            out.content,
            reference=reference,
            allowed_mentions=allowed_mentions(out),
            view=view,
            **extra,
        )
    except SEND_ERRORS as exc:
        log_failure(exc, getattr(target, "id", None), context)
        refused(exc, strict=strict)
        return False
    return True


async def post_files(
    target: discord.abc.Messageable, files: Sequence[Attachment], *, context: object
) -> bool:
    """Post ``files`` (with ``data``) to ``target``, as many messages as Discord needs."""
    for first in range(0, len(files), FILES_PER_MESSAGE):
        chunk = files[first : first + FILES_PER_MESSAGE]
        if not await post(target, Outgoing(""), files=chunk, context=context):
            return False
    return True


def _file(attachment: Attachment) -> discord.File:
    assert attachment.data is not None
    return discord.File(io.BytesIO(attachment.data), filename=attachment.name)


def log_failure(exc: BaseException, channel_id: int | None, context: object) -> None:
    log.error("could not post to channel %s for %s (%s)", channel_id, context, describe(exc))
