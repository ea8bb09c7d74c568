"""Fetching a customer's file from its platform: only from the platform's own hosts, never
more than the limit, and never an exception (``Attachment.problem`` says what went wrong).

Each platform names its file hosts (``https`` only) and passes its configured API URL, whose
host is allowed as well (a gateway, or the tests' fake server); anything else an event names
is refused before a connection is opened, so a credential sent with the request (Slack's bot
token) never leaves for a host the platform does not own.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import replace

import aiohttp
from yarl import URL

from core.files import Problem
from core.types import Attachment

log = logging.getLogger(__name__)

TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
_CHUNK = 64 * 1024


def allowed(url: str, *, hosts: Collection[str], api_url: str | None) -> bool:
    """Whether ``url`` is on one of ``hosts`` over https, or on ``api_url``'s own origin."""
    try:
        target = URL(url)
    except ValueError:
        return False
    if not target.is_absolute():
        return False
    if target.scheme == "https" and target.host in hosts and target.port == 443:
        return True
    if api_url:
        api = URL(api_url)
        return (target.scheme, target.host, target.port) == (api.scheme, api.host, api.port)
    return False


async def download(
    session: aiohttp.ClientSession,
    attachment: Attachment,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    about: object,
) -> Attachment:
    """``attachment`` with its bytes, or with the ``Problem`` that stopped the download.

    The caller has checked the URL with ``allowed``. Redirects are not followed (they could
    lead off the platform's hosts with the credentials); an HTML answer is a login page (a
    token without the scope to read files), not the file.
    """
    if attachment.size is not None and attachment.size > max_bytes:
        return replace(attachment, problem=Problem.TOO_LARGE)
    try:
        async with session.get(
            attachment.url, headers=headers, allow_redirects=False, timeout=TIMEOUT
        ) as response:
            if response.status != 200 or response.content_type == "text/html":
                log.warning(
                    "file download for %s failed: HTTP %s, %s",
                    about,
                    response.status,
                    response.content_type,
                )
                return replace(attachment, problem=Problem.UNAVAILABLE)
            if (response.content_length or 0) > max_bytes:
                return replace(attachment, problem=Problem.TOO_LARGE)
            data = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    return replace(attachment, problem=Problem.TOO_LARGE)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("file download for %s failed: %s", about, type(exc).__name__)
        return replace(attachment, problem=Problem.UNAVAILABLE)
    return replace(attachment, data=bytes(data), size=len(data))


def refused(attachment: Attachment, *, about: object) -> Attachment:
    """``attachment`` marked unavailable because its URL is not on the platform's hosts."""
    host = _host(attachment.url)
    log.warning("file for %s not fetched: %s is not one of the platform's hosts", about, host)
    return replace(attachment, problem=Problem.UNAVAILABLE)


def _host(url: str) -> str:
    try:
        return URL(url).host or "no host"
    except ValueError:
        return "no host"
