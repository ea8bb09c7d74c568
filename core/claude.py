"""``ClaudeClient``: the one module that talks to the Anthropic Messages API.

Replies are streamed (no 21k ``max_tokens`` ceiling, and an overload that arrives mid-stream is
seen as such). Retries are ours, not the SDK's, so that a ``retry-after`` longer than the
configured cap ends the turn with a fallback instead of hanging it for minutes.

A failure is described by its status, error type, code and request id, plus a short excerpt of
the error message that can quote neither the API key nor the conversation (``describe``): the
SDK's own exception text holds the whole response body, which a misbehaving gateway fills with
the request. For the same reason the SDK's and its HTTP stack's DEBUG lines (request options,
response headers) are held back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Any

import anthropic
import httpx2
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from core import logs
from core.config import ClaudeSettings
from core.metrics import CLAUDE_QUEUED, CLAUDE_SECONDS, CLAUDE_TOKENS
from core.ports import LLMError, LLMResult
from core.stream import ClaudeEvents
from core.types import Usage

_backoff = wait_random_exponential(multiplier=0.5, max=8)
_TRANSIENT = frozenset({"rate_limited", "overloaded", "server_error", "timeout", "connection"})


class ClaudeClient:
    def __init__(self, *, settings: ClaudeSettings) -> None:
        if settings.api_key is None:
            raise ValueError("ClaudeClient needs ANTHROPIC_API_KEY")
        self._settings = settings
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.api_key.get_secret_value(),
            base_url=settings.base_url,
            timeout=settings.timeout_seconds,
            max_retries=0,
        )
        logs.quiet("anthropic", "httpcore2")
        # A spike of customers queues here instead of tripping the API's rate limit. Each
        # attempt takes a slot, so a call backing off before a retry holds none.
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._queued = 0
        CLAUDE_QUEUED.set_function(lambda: self._queued)

    @property
    def queued(self) -> int:
        """Calls waiting for one of the ``ANTHROPIC_MAX_CONCURRENCY`` slots."""
        return self._queued

    async def aclose(self) -> None:
        await self._client.close()

    async def respond(
        self,
        *,
        system: list[dict[str, Any]],
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        events: ClaudeEvents | None = None,
    ) -> LLMResult:
        heard = _Heard(events)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            # Words already shown would be repeated (or contradicted) by a second attempt.
            retry=retry_if_exception(lambda exc: not heard.words and self._retryable(exc)),
            reraise=True,
        )
        started = time.perf_counter()
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self._once(
                        system=system, messages=messages, tools=tools, events=heard
                    )
        # A stream that breaks after its HTTP 200 raises the transport's own errors.
        except (anthropic.APIError, httpx2.TransportError) as exc:
            CLAUDE_SECONDS.labels("error").observe(time.perf_counter() - started)
            # Not chained: a traceback would print the SDK exception, response body and all.
            raise LLMError(cause_of(exc), describe(exc, conversation=messages)) from None
        CLAUDE_SECONDS.labels("ok").observe(time.perf_counter() - started)
        for kind, count in asdict(result.usage).items():
            if kind.endswith("_tokens"):  # the counts; not the model's name
                CLAUDE_TOKENS.labels(kind.removesuffix("_tokens")).inc(count)
        return result

    async def _once(
        self, *, tools: list[dict[str, Any]], events: _Heard, **request: Any
    ) -> LLMResult:
        if tools:
            request["tools"] = tools
        self._queued += 1
        try:
            await self._slots.acquire()
        finally:
            self._queued -= 1
        try:
            async with self._client.messages.stream(
                model=self._settings.model, max_tokens=self._settings.max_tokens, **request
            ) as stream:
                if events.listening:
                    async for event in stream:
                        await events.hear(event)
                message = await stream.get_final_message()
        finally:
            self._slots.release()
        usage = message.usage
        return LLMResult(
            content=[b.model_dump(mode="json", exclude_none=True) for b in message.content],
            stop_reason=message.stop_reason or "end_turn",
            usage=Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_input_tokens or 0,
                cache_write_tokens=usage.cache_creation_input_tokens or 0,
                model=message.model or self._settings.model,
            ),
        )

    def _retryable(self, exc: BaseException) -> bool:
        if cause_of(exc) not in _TRANSIENT:
            return False
        delay = retry_after(exc)
        return delay is None or delay <= self._settings.retry_after_cap_seconds

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        delay = retry_after(exc) if exc else None
        return delay if delay is not None else _backoff(state)


class _Heard:
    """Passes a stream's words and tool calls on to ``events``, noting whether words came."""

    def __init__(self, events: ClaudeEvents | None) -> None:
        self._events = events
        self.words = False

    @property
    def listening(self) -> bool:
        return self._events is not None

    async def hear(self, event: Any) -> None:
        if self._events is None:
            return
        if event.type == "text" and event.text:
            self.words = True
            await self._events.text(event.text)
        elif event.type == "content_block_start" and event.content_block.type == "tool_use":
            await self._events.tool(event.content_block.name)


def describe(exc: BaseException, *, conversation: object) -> str:
    """A log-safe account of an SDK failure: no key, nothing of ``conversation``."""
    what = type(exc).__name__
    if not isinstance(exc, anthropic.APIStatusError):
        # Connection failures: the transport's exception type says enough (refused, reset, TLS).
        return what if exc.__cause__ is None else f"{what} ({type(exc.__cause__).__name__})"
    parts = [f"{what}: HTTP {exc.status_code}", logs.code(exc.type) or "unknown type"]
    if error_code := logs.code(exc.error_code):
        parts.append(error_code)
    parts.append(f"request-id {logs.code(exc.request_id) or '-'}")
    if isinstance(exc.api_message, str):
        said = logs.excerpt(exc.api_message, avoid=_strings(conversation))
        parts.append(f"message {said!r}" if said else "message withheld")
    elif isinstance(exc.body, str):
        parts.append(f"non-JSON body ({len(exc.body)} characters) withheld")
    return ", ".join(parts)


def _strings(value: object) -> list[str]:
    """Every string inside ``value`` (nested lists and dicts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``), if any."""
    if not isinstance(exc, anthropic.APIStatusError):
        return None
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def cause_of(exc: BaseException) -> str:
    """The fallback (``Fallbacks`` field) that fits an SDK exception."""
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        return "connection"
    if not isinstance(exc, anthropic.APIStatusError):
        return "unknown"
    if isinstance(exc, anthropic.PaymentRequiredError) or "spend_limit" in (exc.error_code or ""):
        return "spend_limit"
    if isinstance(exc, anthropic.RateLimitError):
        return "rate_limited"
    # An overload after the HTTP 200 of a stream arrives as a plain APIStatusError(200).
    if isinstance(exc, anthropic.OverloadedError) or exc.type == "overloaded_error":
        return "overloaded"
    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return "auth"
    if exc.status_code >= 500 or exc.status_code in {408, 409}:
        return "server_error"
    return "unknown"
