"""The failures a Slack Web API call can end in, and how to name one in a log line."""

from __future__ import annotations

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

SLACK_ERRORS = (SlackApiError, ClientError, TimeoutError)
"""Slack said no, the connection failed, or the call timed out."""


def error_code(exc: BaseException) -> str:
    """Slack's error code (``not_in_channel``, ``ratelimited``…) or the exception's type.

    Never the exception text: it can quote the request, and so the customer's words.
    """
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown_error"))
    return type(exc).__name__
