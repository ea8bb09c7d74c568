"""A fake Anthropic Messages API for driving the real `anthropic` SDK in tests.

Usage::

    async with FakeAnthropic() as fake:
        fake.queue(rate_limited(), text("Hello!"))
        client = AsyncAnthropic(base_url=fake.base_url, api_key="test")
        ...
        assert fake.requests[-1].last_user_text == "hi"

Each queued `FakeResponse` answers one HTTP request (SDK retries included) and works for both
`"stream": false` (a JSON Message) and `"stream": true` (SSE events in the real API's order).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = [
    "Bill",
    "FakeAnthropic",
    "FakeResponse",
    "PromptCache",
    "RecordedRequest",
    "drop",
    "drop_mid_stream",
    "echo_error",
    "error",
    "hang",
    "overloaded",
    "rate_limited",
    "slow_text",
    "spend_limited",
    "stall_mid_stream",
    "stream_error",
    "streamed",
    "text",
    "tool_use",
]

# The SDK ignores `retry-after: 0` but honours milliseconds, so retry tests stay fast.
_FAST_RETRY = {"retry-after-ms": "10"}


@dataclass
class RecordedRequest:
    """One POST /v1/messages as the fake received it."""

    body: dict[str, Any]
    headers: dict[str, str]  # keys lower-cased

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def system(self) -> str | list[dict[str, Any]] | None:
        return self.body.get("system")

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools", [])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream", False))

    @property
    def last_user_text(self) -> str:
        """The text blocks of the last user message joined by newlines ("" if there are none)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content", "")
            if isinstance(content, str):
                return content
            return "\n".join(b["text"] for b in content if b.get("type") == "text")
        return ""


class FakeResponse:
    """How the fake answers one request; build instances with the module-level functions."""

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        raise NotImplementedError


@dataclass
class _Context:
    """What a `FakeResponse` needs to answer one request."""

    request: web.Request
    body: dict[str, Any]
    input_tokens: int
    request_id: str
    closing: asyncio.Event
    billed: dict[str, Any] | None = None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream", False))


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _write_sse(ctx: _Context, events: Iterator[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "request-id": ctx.request_id}
    )
    await response.prepare(ctx.request)
    for event in events:
        await response.write(_sse(event))
    await response.write_eof()
    return response


def _chunks(value: str, size: int) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


def _words(value: str) -> list[str]:
    # Split between whitespace and the next word so the deltas join back to `value` exactly.
    return re.split(r"(?<=\s)(?=\S)", value)


@dataclass
class _Message(FakeResponse):
    content: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, int] | None = None
    stop_details: dict[str, Any] | None = None

    def _usage(self, ctx: _Context) -> dict[str, int]:
        output_tokens = max(1, len(json.dumps(self.content)) // 4)
        default = {
            "input_tokens": ctx.input_tokens,
            "output_tokens": output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        return default | (ctx.billed or {}) | (self.usage or {})

    def _envelope(self, ctx: _Context, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": f"msg_{ctx.request_id}",
            "type": "message",
            "role": "assistant",
            "model": ctx.body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
            "stop_details": None,
        }

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        usage = self._usage(ctx)
        if not ctx.stream:
            message = self._envelope(ctx, self.content) | {
                "stop_reason": self.stop_reason,
                "stop_details": self.stop_details,
                "usage": usage,
            }
            return web.json_response(message, headers={"request-id": ctx.request_id})
        return await _write_sse(ctx, self._events(ctx, usage))

    def _events(self, ctx: _Context, usage: dict[str, int]) -> Iterator[dict[str, Any]]:
        message = self._envelope(ctx, []) | {"usage": usage | {"output_tokens": 1}}
        yield {"type": "message_start", "message": message}
        yield {"type": "ping"}
        for index, block in enumerate(self.content):
            yield from _block_events(index, block)
        yield {
            "type": "message_delta",
            "delta": {
                "stop_reason": self.stop_reason,
                "stop_sequence": None,
                "stop_details": self.stop_details,
            },
            "usage": usage,
        }
        yield {"type": "message_stop"}


def _block_events(index: int, block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if block["type"] == "text":
        start = block | {"text": ""}
        deltas = [{"type": "text_delta", "text": part} for part in _words(block["text"])]
    else:
        start = block | {"input": {}}
        partial = _chunks(json.dumps(block["input"]), 16)
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in partial]
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def _error_body(err_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": err_type, "message": message}
    if error_code is not None:
        err["details"] = {"error_code": error_code}
    return {"type": "error", "error": err}


@dataclass
class _Error(FakeResponse):
    status: int
    err_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        return web.json_response(
            _error_body(self.err_type, self.message, self.error_code),
            status=self.status,
            headers={"request-id": ctx.request_id, **self.headers},
        )


@dataclass
class _EchoError(FakeResponse):
    status: int
    err_type: str
    as_json: bool

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        # What a misbehaving gateway sends back: the request, its headers (the key) included.
        echo = json.dumps({"headers": dict(ctx.request.headers), "body": ctx.body})
        headers = {"request-id": ctx.request_id, "x-echo": echo.encode("unicode_escape").decode()}
        if not self.as_json:
            return web.Response(
                status=self.status, text=f"upstream said no to {echo}", headers=headers
            )
        body = _error_body(self.err_type, f"gateway rejected {echo}")
        body["request"] = {"headers": dict(ctx.request.headers), "body": ctx.body}
        return web.json_response(body, status=self.status, headers=headers)


def _close_connection(ctx: _Context) -> web.StreamResponse:
    if ctx.request.transport is not None:
        ctx.request.transport.close()
    # Never written: the transport is already closed.
    return web.Response()


class _Hang(FakeResponse):
    async def serve(self, ctx: _Context) -> web.StreamResponse:
        await ctx.closing.wait()
        return _close_connection(ctx)


@dataclass
class _Held(FakeResponse):
    answer: FakeResponse
    release: asyncio.Event

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        await self.release.wait()
        return await self.answer.serve(ctx)


class _Drop(FakeResponse):
    async def serve(self, ctx: _Context) -> web.StreamResponse:
        return _close_connection(ctx)


@dataclass
class _StreamError(FakeResponse):
    err_type: str
    partial_text: str

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        if not ctx.stream:
            return await _Error(529, self.err_type, "Overloaded", dict(_FAST_RETRY)).serve(ctx)
        return await _write_sse(ctx, self._events(ctx))

    def _events(self, ctx: _Context) -> Iterator[dict[str, Any]]:
        events = _Message([{"type": "text", "text": self.partial_text}], "end_turn")._events(
            ctx, {"input_tokens": ctx.input_tokens, "output_tokens": 1}
        )
        for event in events:
            if event["type"] == "content_block_stop":
                break
            yield event
        yield _error_body(self.err_type, "Overloaded")


@dataclass
class _Deltas(FakeResponse):
    """One text block streamed as exactly ``deltas``, ``delay`` seconds apart, waiting for
    ``release`` before delta ``pause_before``; then, with ``tool``, a call of that tool, which
    waits for ``hold_after_tool`` once the call has begun. The time the first delta was written
    is kept in ``first_delta_at`` (``time.perf_counter``)."""

    deltas: list[str]
    delay: float = 0.0
    pause_before: int | None = None
    release: asyncio.Event | None = None
    tool: dict[str, Any] | None = None
    hold_after_tool: asyncio.Event | None = None
    first_delta_at: float | None = None

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "request-id": ctx.request_id}
        )
        await response.prepare(ctx.request)
        content = [{"type": "text", "text": "".join(self.deltas)}]
        content += [self.tool] if self.tool is not None else []
        answer = _Message(content, "tool_use" if self.tool is not None else "end_turn")
        for event in answer._events(ctx, answer._usage(ctx)):
            text_block = event.get("index") == 0
            if event["type"] == "content_block_delta" and text_block:
                continue
            if event["type"] == "content_block_stop" and text_block:
                await self._write_deltas(response)
            await response.write(_sse(event))
            tool_begun = event["type"] == "content_block_start" and not text_block
            if tool_begun and self.hold_after_tool is not None:
                await self.hold_after_tool.wait()
        await response.write_eof()
        return response

    async def _write_deltas(self, response: web.StreamResponse) -> None:
        for index, delta in enumerate(self.deltas):
            if index == self.pause_before and self.release is not None:
                await self.release.wait()
            elif index and self.delay:
                await asyncio.sleep(self.delay)
            body = {"type": "text_delta", "text": delta}
            await response.write(_sse({"type": "content_block_delta", "index": 0, "delta": body}))
            if not index:
                self.first_delta_at = time.perf_counter()


@dataclass
class _BrokenStream(FakeResponse):
    stall: bool

    async def serve(self, ctx: _Context) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "request-id": ctx.request_id}
        )
        await response.prepare(ctx.request)
        usage = {"input_tokens": ctx.input_tokens, "output_tokens": 1}
        for event in _Message([{"type": "text", "text": "Let me"}], "end_turn")._events(ctx, usage):
            await response.write(_sse(event))
            if event["type"] == "content_block_delta":
                break
        if self.stall:
            await ctx.closing.wait()
        return _close_connection(ctx)


def text(
    text: str,
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, int] | None = None,
    stop_details: dict[str, Any] | None = None,
) -> FakeResponse:
    """A reply with one text block.

    `usage` entries override the defaults (input ≈ request JSON length / 4, output ≈ reply / 4,
    cache counts 0). For a refusal pass `stop_reason="refusal"` and
    `stop_details={"type": "refusal", "category": "cyber", "explanation": "..."}`.
    """
    return _Message([{"type": "text", "text": text}], stop_reason, usage, stop_details)


def streamed(
    *deltas: str,
    delay: float = 0.0,
    pause_before: int | None = None,
    release: asyncio.Event | None = None,
    tool: tuple[str, dict[str, Any]] | None = None,
    hold_after_tool: asyncio.Event | None = None,
) -> _Deltas:
    """A text reply streamed as exactly ``deltas`` (streaming requests only): ``delay`` seconds
    between them, or a wait for ``release`` before delta number ``pause_before``. With ``tool``
    (name, input) a call of it follows, stop_reason tool_use, and the stream waits for
    ``hold_after_tool`` once the call has begun. Its ``first_delta_at`` says when the first
    delta went out."""
    block = None
    if tool is not None:
        name, arguments = tool
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name}
        block["input"] = arguments
    return _Deltas(list(deltas), delay, pause_before, release, block, hold_after_tool)


def slow_text(text: str, *, seconds: float = 3.0) -> _Deltas:
    """``text`` streamed word by word over about ``seconds``, like a long answer."""
    words = _words(text)
    return streamed(*words, delay=seconds / max(1, len(words) - 1))


def tool_use(
    name: str, input: dict[str, Any], *, text: str | None = None, id: str | None = None
) -> FakeResponse:
    """A `name` tool call with `input`, after an optional text block; stop_reason tool_use."""
    block = {
        "type": "tool_use",
        "id": id or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": name,
        "input": input,
    }
    content = [{"type": "text", "text": text}, block] if text is not None else [block]
    return _Message(content, "tool_use")


def error(
    status: int,
    err_type: str,
    message: str = "Fake error",
    *,
    headers: dict[str, str] | None = None,
    error_code: str | None = None,
) -> FakeResponse:
    """An HTTP error `{"type": "error", "error": {"type": err_type, "message": message}}`.

    `error_code` fills `error.details.error_code`, which the SDK uses to pick a subclass.
    """
    return _Error(status, err_type, message, headers or {}, error_code)


def echo_error(status: int, err_type: str = "api_error", *, as_json: bool = True) -> FakeResponse:
    """An HTTP error whose body and `x-echo` header echo the request, API key included.

    `as_json=True`: an Anthropic error envelope (`err_type`) whose message and `request` field
    hold the echo; `as_json=False`: a plain-text body, as from a proxy.
    """
    return _EchoError(status, err_type, as_json)


def rate_limited() -> FakeResponse:
    """429 rate_limit_error that the SDK retries after 10 ms."""
    return error(429, "rate_limit_error", "Rate limited", headers=_FAST_RETRY)


def overloaded() -> FakeResponse:
    """529 overloaded_error that the SDK retries after 10 ms."""
    return error(529, "overloaded_error", "Overloaded", headers=_FAST_RETRY)


def spend_limited() -> FakeResponse:
    """429 spend cap (SDK: EnforcedSpendLimitReachedError); no retry-after, as on the real API.

    The SDK still retries any 429 with its 0.5-8 s backoff, so use it with `max_retries=0`.
    """
    return error(
        429,
        "rate_limit_error",
        "Your organization has reached its spend limit.",
        error_code="enforced_spend_limit_reached",
    )


def hang() -> FakeResponse:
    """Accept the request and never answer; the fake drops the connection when it closes."""
    return _Hang()


def held(answer: FakeResponse, release: asyncio.Event) -> FakeResponse:
    """``answer``, once ``release`` is set: Claude still thinking while the test acts."""
    return _Held(answer, release)


def drop() -> FakeResponse:
    """Close the TCP connection without a response (SDK: APIConnectionError)."""
    return _Drop()


def stream_error(
    err_type: str = "overloaded_error", *, partial_text: str = "Let me"
) -> FakeResponse:
    """HTTP 200 SSE that sends `partial_text` then an `error` event (SDK: APIStatusError, 200).

    Non-streaming requests get a 529 `err_type` error instead.
    """
    return _StreamError(err_type, partial_text)


def drop_mid_stream() -> FakeResponse:
    """HTTP 200, a few SSE events, then the connection closes (SDK: a transport error)."""
    return _BrokenStream(stall=False)


def stall_mid_stream() -> FakeResponse:
    """HTTP 200, a few SSE events, then silence until the client's read timeout."""
    return _BrokenStream(stall=True)


WRITE_PRICE = {"5m": 1.25, "1h": 2.0}
READ_PRICE = 0.1
_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
_LOOKBACK = 20
MAX_BREAKPOINTS = 4


@dataclass(frozen=True)
class Bill:
    """What one request cost, in input tokens by kind; ``cost`` in base-input-token units."""

    uncached: int
    read: int
    written: dict[str, int]  # by TTL, "5m" / "1h"

    @property
    def total(self) -> int:
        return self.uncached + self.read + sum(self.written.values())

    @property
    def cost(self) -> float:
        written = sum(WRITE_PRICE[ttl] * n for ttl, n in self.written.items())
        return self.uncached + READ_PRICE * self.read + written


@dataclass
class PromptCache:
    """Anthropic's prompt cache as it bills (platform docs, "Prompt caching").

    The request is a sequence of blocks: tools, then system blocks, then each message's content
    blocks (with the message's role). An entry is the exact prefix up to a block that carries
    ``cache_control`` (the marker itself is not part of the prefix), written when that prefix
    holds at least ``min_tokens``, living its TTL ("5m" default, or "1h") from the last write
    or hit. A request reads the longest live entry that ends at most ``_LOOKBACK`` (20) blocks
    before one of its breakpoints; from there up to its last breakpoint it writes, each
    stretch at the TTL of the breakpoint that ends it; after that it pays full price. More than
    ``MAX_BREAKPOINTS`` (4) breakpoints is a 400, as on the real API.

    Tokens are estimated as a block's JSON length / 4, like the fake's other counts; ``clock``
    (seconds) lets a benchmark simulate the time between messages.
    """

    min_tokens: int = 1024
    clock: Callable[[], float] = field(default=lambda: 0.0)
    bills: list[Bill] = field(default_factory=list)
    _entries: dict[str, tuple[float, float]] = field(default_factory=dict)  # hash: expiry, TTL

    def bill(self, body: dict[str, Any]) -> Bill:
        """Bill ``body``, update the entries; ``ValueError`` over ``MAX_BREAKPOINTS``."""
        now = self.clock()
        blocks = _cache_blocks(body)
        points = [i for i, (_, ttl) in enumerate(blocks) if ttl is not None]
        if len(points) > MAX_BREAKPOINTS:
            raise ValueError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(points)}."
            )
        hashes, ends, digest, total = [], [], hashlib.sha256(), 0
        for text, _ in blocks:
            digest.update(text.encode())
            hashes.append(digest.hexdigest())
            total += max(1, len(text) // 4)
            ends.append(total)
        hit = -1
        for point in points:
            live = (
                i
                for i in range(point, max(-1, point - _LOOKBACK - 1), -1)
                if self._live(hashes[i], now)
            )
            hit = max(hit, next(live, -1))
        read = ends[hit] if hit >= 0 else 0
        if hit >= 0:
            _, ttl = self._entries[hashes[hit]]
            self._entries[hashes[hit]] = (now + ttl, ttl)
        written = {"5m": 0, "1h": 0}
        start = read
        for point in points:
            ttl = blocks[point][1]
            assert ttl is not None
            if point <= hit or ends[point] < self.min_tokens:
                continue
            written[ttl] += ends[point] - start
            start = ends[point]
            self._entries[hashes[point]] = (now + _TTL_SECONDS[ttl], _TTL_SECONDS[ttl])
        billed = Bill(uncached=total - start, read=read, written=written)
        self.bills.append(billed)
        return billed

    def _live(self, prefix: str, now: float) -> bool:
        """An entry for ``prefix`` exists and has not expired."""
        return self._entries.get(prefix, (-1.0, 0.0))[0] > now


def _cache_blocks(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(canonical text, breakpoint TTL or None) for each block, in cache order."""
    out: list[tuple[str, str | None]] = []

    def add(prefix: str, block: dict[str, Any]) -> None:
        control = block.get("cache_control")
        plain = {k: v for k, v in block.items() if k != "cache_control"}
        text = prefix + json.dumps(plain, sort_keys=True, ensure_ascii=False)
        out.append((text, (control.get("ttl") or "5m") if control else None))

    for tool in body.get("tools", []):
        add("tool:", tool)
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        add("system:", block)
    for message in body.get("messages", []):
        content = message.get("content", "")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        for block in content:
            add(f"{message.get('role')}:", block)
    return out


class FakeAnthropic:
    """POST /v1/messages on 127.0.0.1 with a random free port; records every request.

    Also serves POST /v1/messages/count_tokens (not recorded). Requests without an
    `x-api-key` or `Authorization: Bearer` header get a 401, as on the real API.
    """

    def __init__(self, *, cache: PromptCache | None = None) -> None:
        """``cache``: bill requests through a prompt-cache model (usage reports its counts)."""
        self.base_url = ""
        self.cache = cache
        self.requests: list[RecordedRequest] = []
        self.default: Callable[[dict[str, Any]], FakeResponse] = lambda body: text("OK")
        self._queue: list[FakeResponse] = []
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def queue(self, *responses: FakeResponse) -> None:
        """Append responses; each answers one HTTP request, then `default` takes over."""
        self._queue.extend(responses)

    # The `timeout` parameter is part of the agreed API, hence the noqa.
    async def wait_for_requests(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[RecordedRequest]:
        """Wait until at least `n` requests have arrived and return all recorded so far."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= n)
            return list(self.requests)

    async def start(self) -> None:
        """Start serving and set `base_url`."""
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # Backstop only: hung handlers return as soon as `_closing` is set.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def close(self) -> None:
        """Release hung requests and stop serving."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _json_error(400, "invalid_request_error", "Body is not valid JSON")
        headers = {k.lower(): v for k, v in request.headers.items()}
        async with self._arrived:
            self.requests.append(RecordedRequest(body, headers))
            self._arrived.notify_all()
        if "x-api-key" not in headers and not headers.get("authorization", "").startswith(
            "Bearer "
        ):
            return _json_error(401, "authentication_error", "Missing API key")
        billed = None
        if self.cache is not None:
            try:
                bill = self.cache.bill(body)
            except ValueError as exc:
                return _json_error(400, "invalid_request_error", str(exc))
            billed = {
                "input_tokens": bill.uncached,
                "cache_read_input_tokens": bill.read,
                "cache_creation_input_tokens": sum(bill.written.values()),
                "cache_creation": {
                    "ephemeral_5m_input_tokens": bill.written["5m"],
                    "ephemeral_1h_input_tokens": bill.written["1h"],
                },
            }
        response = self._queue.pop(0) if self._queue else self.default(body)
        ctx = _Context(
            request=request,
            body=body,
            input_tokens=_rough_tokens(raw),
            request_id=f"req_fake_{len(self.requests)}",
            closing=self._closing,
            billed=billed,
        )
        return await response.serve(ctx)

    async def _count_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"input_tokens": _rough_tokens(await request.read())})

    async def _not_found(self, request: web.Request) -> web.Response:
        return _json_error(404, "not_found_error", f"No route {request.method} {request.path}")


def _rough_tokens(raw: bytes) -> int:
    return max(1, len(raw) // 4)


def _json_error(status: int, err_type: str, message: str) -> web.Response:
    return web.json_response(_error_body(err_type, message), status=status)
