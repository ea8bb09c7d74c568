"""The failures a Slack Web API call can end in, and how to name one in a log line."""

from __future__ import annotations

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError

SLACK_ERRORS = (SlackApiError, ClientError, TimeoutError)
"""Slack said no, the connection failed, or the call timed out."""

GONE = frozenset(
    {"channel_not_found", "is_archived", "not_in_channel", "message_not_found", "account_inactive"}
)
"""Slack's refusals that trying again cannot cure: the channel or message is gone or archived,
the bot was removed from it, the customer's account is deactivated."""


def error_code(exc: BaseException) -> str:
    """Slack's error code (``not_in_channel``, ``ratelimited``…) or the exception's type.

    Never the exception text: it can quote the request, and so the customer's words.
    """
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown_error"))
    return type(exc).__name__
