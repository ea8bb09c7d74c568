"""A fake Slack (Web API, Socket Mode, signed Events API requests) for the real slack-sdk and Bolt.

Usage::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ...                                   # or start a SlackBot with api_url=slack.api_url
        await slack.send_envelope(body)       # Socket Mode: deliver, await the client's ack
        await slack.send_envelope(payload, kind="interactive")   # a button press
        status = await post_event(url, body, secret="s")   # HTTP mode: a signed POST
        status = await post_action(url, payload, secret="s")   # a signed form-encoded press
        [post] = await slack.wait_for("chat.postMessage")
        shared = slack.add_file("table.jpg", data)   # a file a customer shared, for an event
        slack.uploads                         # files the bot shared (files.uploadV2)

Every Web API call is recorded in ``calls`` as ``(method, params)``; JSON, form and query-string
bodies are all accepted, as on the real API. ``chat.postMessage`` checks Slack's documented
limits and answers ``msg_too_long`` / ``invalid_blocks`` like Slack would; what it posted is
kept in ``messages`` (with its ``ts``) and ``chat.update`` changes it there.

Chat streaming works like Slack's: ``chat.startStream`` only in a thread, and in a channel (not
a DM) only with ``recipient_user_id`` and ``recipient_team_id``; ``appendStream`` and
``stopStream`` only on a message still streaming (``message_not_in_streaming_state``); at most
12,000 characters of markdown a call and a message; ``chat.update`` refuses a message while
it streams. A streamed message is in ``messages`` from its start, its ``text`` the markdown so
far, with ``streaming``, ``appends`` (each call's text) and ``tasks`` (task chunks by id).

Modals work like Slack's: ``views.open`` takes only a ``trigger_id`` the fake issued
(``trigger()``, as Slack puts one in every interaction payload), once, within 3 seconds
(``invalid_trigger_id``, ``exchanged_trigger_id``, ``expired_trigger_id``), and a view within
Slack's limits (title 24 characters, ``private_metadata`` 3,000, ``callback_id`` 255, a submit
button when it has inputs); opened views are kept in ``views``. Blocks are checked too:
``context_actions`` holds 1–5 ``feedback_buttons`` or ``icon_button`` elements, each feedback
button's text 75 characters and value 2,000 (``invalid_blocks``).

Files are served like Slack serves ``url_private``: only with the bot token in
``Authorization: Bearer …``; without it the answer is the HTML sign-in page, with status 200.
``files.getUploadURLExternal``, the upload URL it hands out and ``files.completeUploadExternal``
work like Slack's: the upload is shared where completion names, as a message with ``files``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientSession, WSMsgType, web

__all__ = ["FakeSlack", "post_action", "post_event", "sign"]

Params = dict[str, Any]
Handler = Callable[[Params], Params]

FAULTS = ("error", "drop", "made")
TEXT_HARD_LIMIT = 40000
MARKDOWN_TOTAL_LIMIT = 12000
MAX_BLOCKS = 50
TRIGGER_SECONDS = 3.0
"""How long Slack honours a ``trigger_id`` (once)."""


class FakeSlack:
    """Slack on 127.0.0.1: a random port, one workspace, one bot."""

    def __init__(
        self,
        *,
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_token = bot_token
        self.app_token = app_token
        self.calls: list[tuple[str, Params]] = []
        self.peers: list[int] = []
        """The client's port of each Web API call: one per connection it opened."""
        self.reactions: set[tuple[str, str, str]] = set()
        self.statuses: dict[tuple[str, str], tuple[str, list[str]]] = {}
        """Each thread's loading status now (``assistant.threads.setStatus``) and its messages."""
        self.messages: list[Params] = []
        self.deleted: list[Params] = []
        """The bot's messages it deleted (``chat.delete``)."""
        self.prompts: list[Params] = []
        """Each accepted ``assistant.threads.setSuggestedPrompts``: channel_id, thread_ts (or
        None), title (or None), prompts."""
        self.views: list[Params] = []
        """Modals opened (``views.open``), each with the ``id`` Slack gave it."""
        self._triggers: dict[str, float] = {}
        self.uploads: list[Params] = []
        """Files the bot shared: channel, thread_ts, name, data."""
        self.downloads: list[tuple[str, str]] = []
        """Each GET of a hosted file: its path and the Authorization header sent."""
        self._files: dict[str, bytes] = {}
        self._pending: dict[str, Params] = {}
        self.disconnects = 0
        self.connections = 0
        """How many connections clients hold open to the fake now (Web API and Socket Mode)."""
        self._failures: dict[str, list[tuple[str | None, str | None, int]]] = {}
        self.heard: list[Params] = []
        """Customers' messages the history shows (``said``); the fake keeps no others."""
        self._holds: dict[str, asyncio.Event] = {}
        self._deleted: set[str] = set()
        self._hangs: dict[str, list[bool]] = {}
        self._flaky: dict[str, tuple[int, itertools.count[int], tuple[str, ...]]] = {}
        self._next_faults: list[tuple[str, str, str | None]] = []
        self.faults: list[tuple[str, str]] = []
        """Each call ``flaky`` or ``fault_next`` failed: the method and the fault (error, drop,
        made)."""
        self._closing = asyncio.Event()
        self._changed = asyncio.Condition()
        self._ts = itertools.count(1)
        self._last_ts = 0.0
        self._socket: web.WebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Future[None] | None = None
        self._port = 0
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.delete": self._delete,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "reactions.add": self._reaction_add,
            "reactions.remove": self._reaction_remove,
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setSuggestedPrompts": self._set_prompts,
            "apps.connections.open": lambda _: {"url": f"ws://127.0.0.1:{self._port}/socket"},
            "users.info": self._user,
            "usergroups.users.list": lambda _: {"users": ["U0STAFF1", "U0STAFF2"]},
            "conversations.info": self._conversation,
            "views.open": self._open_view,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/socket", self._socket_endpoint)
        app.router.add_get("/files-pri/{path:.*}", self._serve_file)
        app.router.add_post("/upload/{file_id}", self._receive_upload)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._count_connections(self._runner.server)
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._socket is not None:
            await self._socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def api_url(self) -> str:
        """What ``AsyncWebClient(base_url=…)`` / ``SLACK_API_URL`` should be."""
        return f"http://127.0.0.1:{self._port}/api/"

    # -- test controls -----------------------------------------------------------------------

    def fail(
        self,
        method: str,
        error: str,
        *,
        times: int = 1,
        channel: str | None = None,
        status: int = 200,
        after: int = 0,
    ) -> None:
        """Make the next ``times`` calls to ``method`` answer ``{"ok": false, "error": error}``
        with HTTP ``status`` (Slack answers its own outages with a 500 or 503).

        With ``channel``, only calls for that channel fail; with ``after``, that many of them
        go through first (the second part of a long reply fails).
        """
        waiting = [(None, channel, status)] * after + [(error, channel, status)] * times
        self._failures.setdefault(method, []).extend(waiting)

    def said(self, channel: str, user: str, text: str, *, thread: str | None = None) -> str:
        """A message of ``user``'s in ``channel`` (a reply in ``thread``) that Slack's history
        shows from now on, as it shows the customers' messages; its ``ts``."""
        ts = self._next_ts()
        message = {"channel": channel, "type": "message", "user": user, "text": text, "ts": ts}
        self.heard.append(message | ({"thread_ts": thread} if thread else {}))
        return ts

    def delete_channel(self, channel: str) -> None:
        """Delete ``channel``: every later call about it answers ``channel_not_found``."""
        self._deleted.add(channel)

    def hold(self, method: str) -> asyncio.Event:
        """Keep calls to ``method`` waiting (recorded, unanswered) until the event is set."""
        return self._holds.setdefault(method, asyncio.Event())

    def hang(self, method: str, *, record: bool, times: int = 1) -> None:
        """Never answer the next ``times`` calls to ``method`` (a process killed in the middle
        of the request, a connection that died): with ``record`` the call takes effect first
        (the message is posted, and the caller cannot know), without it nothing happens."""
        self._hangs.setdefault(method, []).extend([record] * times)

    def flaky(self, method: str, *, every: int, faults: tuple[str, ...] = FAULTS) -> None:
        """Fail every ``every``-th call to ``method`` (5: 20 % of them), the ``faults`` taking
        turns: by default a 500 (Slack's own outage), a dropped connection, and the call made
        and then the connection dropped (an unknown outcome). Counted, not drawn: however the
        calls interleave, the share and the mix of faults are the same in every run."""
        self._flaky[method] = (every, itertools.count(1), faults)

    def fault_next(self, method: str, fault: str, *, channel: str | None = None) -> None:
        """Make the next call to ``method`` (for ``channel``) end in ``fault``, one of
        ``FAULTS`` (``made``: the call takes effect, then the connection drops)."""
        self._next_faults.append((method, fault, channel))

    def _fault(self, method: str, params: Params) -> str | None:
        for index, (wanted, fault, channel) in enumerate(self._next_faults):
            if wanted == method and channel in (None, params.get("channel")):
                del self._next_faults[index]
                self.faults.append((method, fault))
                return fault
        if method not in self._flaky:
            return None
        every, calls, faults = self._flaky[method]
        if next(calls) % every:
            return None
        fault = faults[len(self.faults) % len(faults)]
        self.faults.append((method, fault))
        return fault

    async def wait_messages(
        self,
        channel: str,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - as wait_for
    ) -> list[Params]:
        """Wait until the bot has ``count`` messages in ``channel``; return them."""

        def there() -> list[Params]:
            return [m for m in self.messages if m["channel"] == channel]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(there()) >= count), timeout)
            return there()

    def add_file(self, name: str, data: bytes, *, mimetype: str = "image/jpeg") -> Params:
        """Host ``data`` as a file a user shared; the file object Slack puts in ``files``."""
        file_id = f"F{next(self._ts):08d}"
        path = f"{self.team_id}-{file_id}/{name}"
        self._files[path] = data
        url = f"http://127.0.0.1:{self._port}/files-pri/{path}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(data),
            "url_private": url,
            "url_private_download": f"{url}?download=1",
        }

    def trigger(self) -> str:
        """A fresh ``trigger_id``, as Slack puts in an interaction payload."""
        trigger_id = f"{next(self._ts)}.{uuid.uuid4().hex[:12]}"
        self._triggers[trigger_id] = time.monotonic()
        return trigger_id

    def calls_to(self, method: str) -> list[Params]:
        return [params for name, params in self.calls if name == method]

    def message(self, channel: str, ts: str) -> Params:
        """A message the bot posted, as it stands now (updates applied)."""
        [found] = [m for m in self.messages if m["channel"] == channel and m["ts"] == ts]
        return found

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Params], bool] | None = None,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the agreed test API
    ) -> list[Params]:
        """Wait until ``count`` calls to ``method`` matching ``predicate`` arrived; return them."""

        def matching() -> list[Params]:
            return [p for p in self.calls_to(method) if predicate is None or predicate(p)]

        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(matching()) >= count), timeout
            )
            return matching()

    async def wait_connections(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until clients hold exactly ``count`` connections open (0: all closed)."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.connections == count), timeout
            )

    async def wait_disconnected(self, count: int = 1, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until Socket Mode clients have closed ``count`` connections in all."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.disconnects >= count), timeout
            )

    async def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "events_api",
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the agreed test API
    ) -> dict[str, Any]:
        """Deliver an envelope (``events_api``, or ``interactive`` for a button press) over
        Socket Mode; return the client's ack."""
        await asyncio.wait_for(self._connected.wait(), timeout)
        assert self._socket is not None
        envelope_id = str(uuid.uuid4())
        ack = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = ack
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "payload": payload,
                "type": kind,
                "accepts_response_payload": kind == "interactive",
                "retry_attempt": retry_attempt,
                "retry_reason": retry_reason,
            }
        )
        return await asyncio.wait_for(ack, timeout)

    def _count_connections(self, server: Any) -> None:
        # aiohttp's server has no signal for a connection opening or closing, so its two
        # protocol callbacks are wrapped to keep ``connections`` and wake ``wait_connections``.
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            self.connections += 1

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self.connections -= 1
            self._wake = asyncio.ensure_future(self._notify())

        server.connection_made, server.connection_lost = connection_made, connection_lost

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- Web API -----------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: Params = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            params.update(await request.post())
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = token or str(params.get("token", ""))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        async with self._changed:
            self.calls.append((method, params))
            self.peers.append(peer[1] if peer else 0)
            self._changed.notify_all()
        if method in self._holds:
            await self._holds[method].wait()
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return _answer({"ok": False, "error": "invalid_auth"})
        hanging = self._hangs.get(method)
        if hanging:
            if hanging.pop(0):
                await self._handled(method, params)
            await self._closing.wait()
            return _answer({"ok": False, "error": "fake_closed"})
        fault = self._fault(method, params)
        if fault == "error":
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        if fault is not None:
            if fault == "made":
                await self._handled(method, params)
            return _dropped(request)
        if self._deleted & {params.get("channel"), params.get("channel_id")}:
            return _answer({"ok": False, "error": "channel_not_found"})
        failure = self._failure(method, params)
        if failure is not None:
            error, status = failure
            if status != 200:
                return web.json_response({"ok": False, "error": error}, status=status)
            return _answer({"ok": False, "error": error})
        if method not in self._methods:
            return _answer({"ok": False, "error": "unknown_method"})
        return _answer({"ok": True, **await self._handled(method, params)})

    async def _handled(self, method: str, params: Params) -> Params:
        """Run ``method``; waiters on messages are woken."""
        done = self._methods[method](params)
        async with self._changed:
            self._changed.notify_all()
        return done

    def _failure(self, method: str, params: Params) -> tuple[str, int] | None:
        waiting = self._failures.get(method, [])
        for index, (error, channel, status) in enumerate(waiting):
            if channel in (None, params.get("channel")):
                del waiting[index]
                return None if error is None else (error, status)
        return None

    def _auth_test(self, _: Params) -> Params:
        return {
            "url": "https://fake.slack.test/",
            "team": "Fake Workspace",
            "user": "supportbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: Params) -> Params:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        problem = _content_problem(params)
        if problem is not None:
            return {"ok": False, "error": problem}
        ts = self._next_ts()
        message = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id, "ts": ts}
        message |= {"text": str(params.get("text") or ""), "blocks": _blocks(params)}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        self.messages.append({"channel": params["channel"], **message})
        return {"channel": params["channel"], "ts": ts, "message": message}

    def _update(self, params: Params) -> Params:
        problem = _content_problem(params)
        if problem is not None:
            return {"ok": False, "error": problem}
        channel, ts = params.get("channel"), params.get("ts")
        for message in self.messages:
            if message["channel"] == channel and message["ts"] == ts:
                if message.get("streaming"):
                    return {"ok": False, "error": "cant_update_message"}
                message |= {"text": str(params.get("text") or ""), "blocks": _blocks(params)}
                return {"channel": channel, "ts": ts, "text": params.get("text")}
        return {"ok": False, "error": "message_not_found"}

    def _delete(self, params: Params) -> Params:
        channel, ts = params.get("channel"), params.get("ts")
        found = [m for m in self.messages if m["channel"] == channel and m["ts"] == ts]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        self.messages.remove(found[0])
        self.deleted.append(found[0])
        return {"channel": channel, "ts": ts}

    def _open_view(self, params: Params) -> Params:
        trigger_id = str(params.get("trigger_id") or "")
        issued = self._triggers.get(trigger_id)
        if issued is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if issued < 0:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if time.monotonic() - issued > TRIGGER_SECONDS:
            return {"ok": False, "error": "expired_trigger_id"}
        view = params.get("view")
        view = json.loads(view) if isinstance(view, str) else view or {}
        if _view_problem(view):
            return {"ok": False, "error": "invalid_arguments"}
        self._triggers[trigger_id] = -1.0
        opened = {**view, "id": f"V{next(self._ts):08d}"}
        self.views.append(opened)
        return {"view": opened}

    def _set_status(self, params: Params) -> Params:
        """A thread's loading status: set, or cleared by an empty ``status``; at most 10
        ``loading_messages``."""
        channel, thread = params.get("channel_id"), params.get("thread_ts")
        loading = params.get("loading_messages") or []
        if not channel or not thread or "status" not in params or len(loading) > 10:
            return {"ok": False, "error": "invalid_arguments"}
        if params["status"]:
            self.statuses[(channel, thread)] = (params["status"], list(loading))
        else:
            self.statuses.pop((channel, thread), None)
        return {}

    def _set_prompts(self, params: Params) -> Params:
        """Suggested prompts: a channel, 1 to 4 prompts each with a title (at most 75
        characters, the limit the fake assumes, as for a button) and a message (at most 2,000),
        an optional title of at most 75."""
        prompts = params.get("prompts")
        if not params.get("channel_id"):
            return {"ok": False, "error": "channel_not_found"}
        if not isinstance(prompts, list) or not 0 < len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}
        for prompt in prompts:
            title, message = str(prompt.get("title") or ""), str(prompt.get("message") or "")
            if not 0 < len(title) <= 75 or not 0 < len(message) <= 2000:
                return {"ok": False, "error": "invalid_arguments"}
        if len(str(params.get("title") or "")) > 75:
            return {"ok": False, "error": "invalid_arguments"}
        self.prompts.append(
            {
                "channel_id": params["channel_id"],
                "thread_ts": params.get("thread_ts"),
                "title": params.get("title"),
                "prompts": prompts,
            }
        )
        return {}

    def stop_streams(self, channel: str, thread_ts: str) -> list[str]:
        """The customer pressed stop in ``thread_ts``: Slack stops the bot's streaming messages
        there itself; their ``ts`` (what ``agent_session_stopped`` lists)."""
        stopped = []
        for message in self.messages:
            same = message["channel"] == channel and message.get("thread_ts") == thread_ts
            if same and message.get("streaming"):
                message["streaming"] = False
                stopped.append(message["ts"])
        return stopped

    def _start_stream(self, params: Params) -> Params:
        """Slack's streamed reply: always in a thread, and in a channel (not a DM) only with
        the user and team it streams to."""
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        to_channel = not channel.startswith("D")
        if to_channel and not (params.get("recipient_user_id") and params.get("recipient_team_id")):
            return {"ok": False, "error": "invalid_arguments"}
        ts = self._next_ts()
        message = {"channel": channel, "type": "message", "user": self.bot_user_id, "ts": ts}
        message |= {"bot_id": self.bot_id, "thread_ts": params["thread_ts"], "text": ""}
        message |= {"blocks": [], "streaming": True, "tasks": {}, "appends": []}
        self.messages.append(message)
        problem = _stream_into(message, params)
        if problem is not None:
            return {"ok": False, "error": problem}
        return {"channel": channel, "ts": ts}

    def _streaming(self, params: Params) -> Params | None:
        channel, ts = params.get("channel"), params.get("ts")
        for message in self.messages:
            if message["channel"] == channel and message["ts"] == ts:
                return message if message.get("streaming") else None
        return None

    def _append_stream(self, params: Params) -> Params:
        return self._continue_stream(params, stop=False)

    def _stop_stream(self, params: Params) -> Params:
        return self._continue_stream(params, stop=True)

    def _continue_stream(self, params: Params, *, stop: bool) -> Params:
        message = self._streaming(params)
        if message is None:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        if _blocks_problem(_blocks(params)):
            return {"ok": False, "error": "invalid_blocks"}
        problem = _stream_into(message, params)
        if problem is not None:
            return {"ok": False, "error": problem}
        if stop:
            message["streaming"] = False
            message["blocks"] = [{"type": "markdown", "text": message["text"]}, *_blocks(params)]
        return {"channel": message["channel"], "ts": message["ts"], "message": message}

    def _post_ephemeral(self, params: Params) -> Params:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"message_ts": self._next_ts()}

    def _permalink(self, params: Params) -> Params:
        channel, ts = params.get("channel", ""), str(params.get("message_ts", ""))
        link = f"https://fake.slack.test/archives/{channel}/p{ts.replace('.', '')}"
        return {"channel": channel, "permalink": link}

    def _reaction_add(self, params: Params) -> Params:
        reaction = (params.get("channel", ""), params.get("timestamp", ""), params.get("name", ""))
        if reaction in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(reaction)
        return {}

    def _reaction_remove(self, params: Params) -> Params:
        reaction = (params.get("channel", ""), params.get("timestamp", ""), params.get("name", ""))
        if reaction not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(reaction)
        return {}

    def _user(self, params: Params) -> Params:
        user = str(params.get("user", ""))
        profile = {"display_name": f"name-{user}", "real_name": f"Real {user}"}
        return {"user": {"id": user, "team_id": self.team_id, "name": user, "profile": profile}}

    def _history(self, params: Params) -> Params:
        """A channel's top-level messages (the bot's and those ``said``: the fake keeps no
        others) after ``oldest``, newest first, as Slack lists them."""
        channel, oldest = params.get("channel"), float(params.get("oldest") or 0)
        found = [
            m
            for m in self.messages + self.heard
            if m["channel"] == channel
            and m.get("thread_ts", m["ts"]) == m["ts"]
            and float(m["ts"]) > oldest
        ]
        return {"messages": sorted(found, key=lambda m: float(m["ts"]), reverse=True)}

    def _replies(self, params: Params) -> Params:
        """A thread's replies (the bot's and those ``said``: the fake keeps no others) after
        ``oldest``, oldest first."""
        channel, thread = params.get("channel"), params.get("ts")
        if not thread:
            return {"ok": False, "error": "invalid_arguments"}
        oldest = float(params.get("oldest") or 0)
        found = [
            m
            for m in self.messages + self.heard
            if m["channel"] == channel and m.get("thread_ts") == thread and float(m["ts"]) > oldest
        ]
        return {"messages": sorted(found, key=lambda m: float(m["ts"]))}

    def _conversation(self, params: Params) -> Params:
        channel = str(params.get("channel", ""))
        return {"channel": {"id": channel, "is_im": channel.startswith("D"), "is_member": True}}

    async def _serve_file(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        self.downloads.append((request.match_info["path"], authorization))
        if authorization != f"Bearer {self.bot_token}":
            # What Slack does without a token that may read the file: its sign-in page.
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        data = self._files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _upload_url(self, params: Params) -> Params:
        if not params.get("filename") or not int(params.get("length") or 0):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ts):08d}"
        self._pending[file_id] = {"name": params["filename"], "data": None}
        return {"file_id": file_id, "upload_url": f"http://127.0.0.1:{self._port}/upload/{file_id}"}

    async def _receive_upload(self, request: web.Request) -> web.Response:
        pending = self._pending.get(request.match_info["file_id"])
        if pending is None:
            return web.Response(status=404)
        pending["data"] = await request.read()
        return web.Response(text=f"OK - {len(pending['data'])}")

    def _complete_upload(self, params: Params) -> Params:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        done = [self._pending.pop(f["id"], None) for f in files]
        if not done or any(d is None or d["data"] is None for d in done):
            return {"ok": False, "error": "file_not_found"}
        channel, thread = params.get("channel_id"), params.get("thread_ts")
        for upload in done:
            self.uploads.append({"channel": channel, "thread_ts": thread, **upload})
        message = {"type": "message", "user": self.bot_user_id, "ts": self._next_ts(), "text": ""}
        message |= {"blocks": [], "files": [{"name": d["name"]} for d in done]}
        if thread:
            message["thread_ts"] = thread
        self.messages.append({"channel": channel, **message})
        return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _next_ts(self) -> str:
        """The time now, as Slack's ``ts`` is (unique: a microsecond on from the last)."""
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    # -- Socket Mode -------------------------------------------------------------------------

    async def _socket_endpoint(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._socket = socket
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0APP"},
            }
        )
        self._connected.set()
        try:
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    self._acknowledged(json.loads(frame.data))
        finally:
            if self._socket is socket:
                self._socket = None
                self._connected.clear()
            async with self._changed:
                self.disconnects += 1
                self._changed.notify_all()
        return socket

    def _acknowledged(self, message: dict[str, Any]) -> None:
        ack = self._acks.pop(str(message.get("envelope_id")), None)
        if ack is not None and not ack.done():
            ack.set_result(message)


def _dropped(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees it lost)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()  # never written


def _blocks(params: Params) -> list[dict[str, Any]]:
    blocks = params.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else blocks


def _view_problem(view: Params) -> bool:
    """Whether Slack would refuse ``view`` as a modal."""
    title = (view.get("title") or {}).get("text") or ""
    blocks = view.get("blocks") or []
    inputs = any(b.get("type") == "input" for b in blocks)
    return (
        view.get("type") != "modal"
        or not 0 < len(title) <= 24
        or len(str(view.get("private_metadata") or "")) > 3000
        or len(str(view.get("callback_id") or "")) > 255
        or not 0 < len(blocks) <= 100
        or (inputs and not view.get("submit"))
        or _blocks_problem(blocks)
    )


def _blocks_problem(blocks: list[Params]) -> bool:
    """Whether a ``context_actions`` block breaks Slack's rules."""
    for block in blocks:
        if block.get("type") != "context_actions":
            continue
        elements = block.get("elements") or []
        if not 0 < len(elements) <= 5:
            return True
        for element in elements:
            if element.get("type") == "feedback_buttons":
                pair = (element.get("positive_button"), element.get("negative_button"))
                if not all(
                    b
                    and 0 < len((b.get("text") or {}).get("text") or "") <= 75
                    and 0 < len(str(b.get("value") or "")) <= 2000
                    for b in pair
                ):
                    return True
            elif element.get("type") != "icon_button":
                return True
    return False


def _stream_into(message: Params, params: Params) -> str | None:
    """Add a stream call's ``markdown_text`` and ``chunks`` to ``message`` (its ``text`` is the
    markdown so far, ``tasks`` each task's title and status, ``appends`` each call's text);
    the error Slack would give instead, or ``None``."""
    chunks = params.get("chunks") or []
    chunks = json.loads(chunks) if isinstance(chunks, str) else chunks
    said = str(params.get("markdown_text") or "")
    for chunk in chunks:
        if chunk.get("type") == "markdown_text":
            said += str(chunk.get("text") or "")
        elif chunk.get("type") == "task_update":
            message["tasks"][chunk["id"]] = (chunk.get("title"), chunk.get("status"))
        else:
            return "invalid_chunks"
    if len(said) > MARKDOWN_TOTAL_LIMIT or len(message["text"] + said) > MARKDOWN_TOTAL_LIMIT:
        return "msg_too_long"
    if said:
        message["appends"].append(said)
        message["text"] += said
    return None


def _content_problem(params: Params) -> str | None:
    """The error Slack gives for text and blocks it will not take, or ``None``."""
    blocks = _blocks(params)
    text = str(params.get("text") or "")
    if not text and not blocks:
        return "no_text"
    if len(text) > TEXT_HARD_LIMIT:
        return "msg_too_long"
    markdown = sum(len(b.get("text", "")) for b in blocks if b.get("type") == "markdown")
    if len(blocks) > MAX_BLOCKS or markdown > MARKDOWN_TOTAL_LIMIT or _blocks_problem(blocks):
        return "invalid_blocks"
    return None


def _answer(body: Params) -> web.Response:
    if body.get("ok") is False and body.get("error") == "ratelimited":
        return web.json_response(body, status=429, headers={"Retry-After": "0"})
    return web.json_response(body)


def sign(secret: str, body: str, timestamp: int) -> str:
    """Slack's v0 request signature: HMAC-SHA256 over ``v0:{timestamp}:{body}``."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v0=" + digest.hexdigest()


async def post_event(
    url: str,
    body: dict[str, Any],
    *,
    secret: str | None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    signature: str | None = None,
    timestamp: int | None = None,
) -> int:
    """POST ``body`` to a Bolt HTTP endpoint as Slack does; return the HTTP status.

    ``secret=None`` sends no signature at all; ``signature`` overrides the computed one.
    """
    headers = {}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = retry_reason
    return await _post_signed(
        url,
        json.dumps(body),
        "application/json",
        secret=secret,
        signature=signature,
        timestamp=timestamp,
        headers=headers,
    )


async def post_action(
    url: str, payload: dict[str, Any], *, secret: str | None, signature: str | None = None
) -> int:
    """POST a button press as Slack does: a signed form body ``payload=<JSON>``; the status."""
    raw = urlencode({"payload": json.dumps(payload)})
    return await _post_signed(
        url, raw, "application/x-www-form-urlencoded", secret=secret, signature=signature
    )


async def _post_signed(
    url: str,
    raw: str,
    content_type: str,
    *,
    secret: str | None,
    signature: str | None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> int:
    stamp = int(time.time()) if timestamp is None else timestamp
    sent = {"Content-Type": content_type, **(headers or {})}
    if secret is not None or signature is not None:
        sent["X-Slack-Request-Timestamp"] = str(stamp)
        sent["X-Slack-Signature"] = signature or sign(secret or "", raw, stamp)
    async with ClientSession() as session, session.post(url, data=raw, headers=sent) as resp:
        await resp.read()
        return resp.status
