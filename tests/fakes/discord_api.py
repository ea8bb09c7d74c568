"""A fake Discord (REST ``/api/v10`` and gateway) on 127.0.0.1 that the real discord.py talks to.

One guild with a support text channel, a support forum, an unconfigured text channel and a staff
channel; one customer and a mentionable support role. Everything the client sends is recorded,
and tests wait on the records with :meth:`FakeDiscord.wait_for` instead of sleeping.

Quirks the fake has to respect (PLATFORMS.md section 4):

- REST responses carry ``Content-Type: application/json`` exactly; with aiohttp's
  ``json_response`` (which adds ``; charset=utf-8``) discord.py would hand us a string.
- READY must carry ``resume_gateway_url``; discord.py reconnects there after op 7.
- Plain text frames skip discord.py's zlib stream, so nothing is compressed.
- Like the real gateway, every message the bot posts comes back as MESSAGE_CREATE, and every
  thread it starts comes back as THREAD_CREATE.
- Interaction callbacks (``/interactions/{id}/{token}/callback``) and follow-ups
  (``/webhooks/{application_id}/{token}``) carry no ``Authorization`` header: discord.py sends
  them through its webhook adapter, authenticated by the interaction token alone.
- A component interaction carries the message it was clicked on, components included:
  discord.py rebuilds the clicked ``DynamicItem`` from that message, not from its own cache.
- Components v2 (flag ``IS_COMPONENTS_V2``): such a message may carry no ``content`` or
  ``embeds``, its layout components (containers, text displays) are refused without the flag,
  and the flag cannot be taken off a message that has it (all 400 / 50035, as on Discord).
- Guild application commands: a bulk overwrite (``PUT``) replaces the guild's set (names
  lower-case, 1-32 characters; descriptions 1-100) and counts as a create per command, as
  Discord's 200-a-day limit does; only a registered command can be invoked
  (:meth:`FakeDiscord.command`: INTERACTION_CREATE of type 2).
- An interaction is answered once (a second callback is refused, 40060). An ephemeral message
  sent as the answer (type 4) is kept in ``messages`` with its buttons, so it can be clicked.
  A modal (type 9) must fit Discord's limits (title 45 characters, ``custom_id`` 100, 1–5
  components, each text input's ``custom_id`` 100 and ``max_length`` 4,000, a label 45), and
  cannot answer a modal's own submit; ``modals`` keeps those shown and ``submit_modal``
  sends the submit.
- Sends and edits of messages share one rate-limit bucket per channel, 5 writes per 5 s, as on
  Discord: one more is answered 429 (with ``Via`` and a JSON ``retry_after``, which discord.py
  sleeps for before trying again) and recorded in ``rate_limited``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import discord.gateway
import discord.http
import yarl
from aiohttp import WSMsgType, web

TOKEN = "fake-bot-token"
TIMESTAMP = "2026-01-05T10:00:00.000000+00:00"
MESSAGE_CONTENT_INTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT_INTENT
EPHEMERAL = 1 << 6
COMPONENTS_V2 = 1 << 15
ACTION_ROW, TEXT_DISPLAY = 1, 10
UPLOAD_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit on a server without boosts."""
WRITES_PER_WINDOW, WRITE_WINDOW = 5, 5.0
COMPONENT_INTERACTION, BUTTON = 3, 2
APPLICATION_COMMAND, CHAT_INPUT = 2, 1
COMMAND_NAME = re.compile(r"[-_a-z0-9]{1,32}")
MODAL_SUBMIT, MODAL = 5, 9
FAULTS = ("error", "drop", "made")

_ids = itertools.count()


def snowflake() -> int:
    """A new id as Discord makes them: the time now in its top bits (ids are ordered in time,
    and a look "since" a time finds what was made after it), unique by the count below."""
    return discord.utils.time_snowflake(discord.utils.utcnow()) + next(_ids) % (1 << 22)


def user(user_id: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name.title(),
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
    }


@dataclass
class Request:
    method: str
    path: str
    body: Any
    query: dict[str, str]


@dataclass
class Post:
    """One message the bot created (or, in ``FakeDiscord.edits``, changed), as the client sent
    it."""

    id: int
    channel_id: int
    payload: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    """When the fake took it (``time.monotonic``)."""

    @property
    def content(self) -> str:
        """What the message reads: its content, or a Components v2 message's text displays."""
        return text_of(self.payload)

    @property
    def v2(self) -> bool:
        return bool(self.payload.get("flags", 0) & COMPONENTS_V2)

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        return self.payload.get("allowed_mentions")

    @property
    def reference(self) -> dict[str, Any] | None:
        return self.payload.get("message_reference")

    @property
    def buttons(self) -> list[str]:
        """The ``custom_id`` of every button the message was posted with."""
        return custom_ids(self.payload)


@dataclass
class Upload:
    """One file the bot posted with a message."""

    channel_id: int
    name: str
    data: bytes


@dataclass
class Callback:
    """One interaction response (type 4 message, 5/6 deferred, 7 update the clicked message)."""

    interaction_id: int
    type: int
    data: dict[str, Any]

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)


@dataclass
class Followup:
    """One follow-up message to an interaction (``interaction.followup.send``)."""

    interaction_id: int
    data: dict[str, Any]

    @property
    def content(self) -> str:
        return self.data.get("content") or ""

    @property
    def ephemeral(self) -> bool:
        return bool(self.data.get("flags", 0) & EPHEMERAL)


def components(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every component of a message payload, depth first (rows, containers and their items)."""
    for item in payload.get("components") or []:
        yield item
        yield from components(item)


def custom_ids(payload: dict[str, Any]) -> list[str]:
    """The ``custom_id`` of every component in a message payload, in order."""
    return [item["custom_id"] for item in components(payload) if "custom_id" in item]


def text_of(payload: dict[str, Any]) -> str:
    """What a message reads: its ``content``, or, with Components v2, its text displays."""
    if payload.get("flags", 0) & COMPONENTS_V2:
        texts = [i["content"] for i in components(payload) if i.get("type") == TEXT_DISPLAY]
        return "\n".join(texts)
    return payload.get("content") or ""


def refusal(body: dict[str, Any], *, flags: int = 0) -> str | None:
    """Why Discord refuses to send ``body`` (or to edit a message with ``flags`` with it)."""
    now = body.get("flags", flags)
    if flags & COMPONENTS_V2 and not now & COMPONENTS_V2:
        return "the IS_COMPONENTS_V2 flag cannot be removed from a message"
    if now & COMPONENTS_V2:
        if body.get("content") or body.get("embeds"):
            return "content and embeds cannot be used with IS_COMPONENTS_V2"
    elif any(c.get("type") != ACTION_ROW for c in body.get("components") or []):
        return "layout components need the IS_COMPONENTS_V2 flag"
    return None


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    code: int
    times: int
    after: int = 0


@dataclass
class _Hang:
    method: str
    pattern: re.Pattern[str]
    made: bool


@dataclass
class World:
    """The ids of the one guild the fake serves."""

    guild_id: int = field(default_factory=snowflake)
    bot_id: int = field(default_factory=snowflake)
    application_id: int = field(default_factory=snowflake)
    customer_id: int = field(default_factory=snowflake)
    staff_user_id: int = field(default_factory=snowflake)
    other_bot_id: int = field(default_factory=snowflake)
    support_channel_id: int = field(default_factory=snowflake)
    forum_channel_id: int = field(default_factory=snowflake)
    general_channel_id: int = field(default_factory=snowflake)
    staff_channel_id: int = field(default_factory=snowflake)
    support_role_id: int = field(default_factory=snowflake)
    dm_channel_id: int = field(default_factory=snowflake)


class FakeDiscord:
    """REST and gateway on one port. ``async with FakeDiscord() as fake, fake.installed(): ...``."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        reject_privileged_intents: bool = False,
        announce_threads: bool = True,
    ) -> None:
        self.token = token
        self.reject_privileged_intents = reject_privileged_intents
        # False: threads the bot starts are not sent as THREAD_CREATE, so the client's cache
        # misses them (as after an archive or a lost event) and it must ask over REST.
        self.announce_threads = announce_threads
        self.world = World()
        w = self.world
        self.bot_user = user(w.bot_id, "supportbot", bot=True)
        self.customer = user(w.customer_id, "casey")
        self.staff = user(w.staff_user_id, "dana")
        self.other_bot = user(w.other_bot_id, "otherbot", bot=True)
        self.channels: dict[int, dict[str, Any]] = {}
        for cid, name, kind in (
            (w.support_channel_id, "support", 0),
            (w.forum_channel_id, "help-forum", 15),
            (w.general_channel_id, "general", 0),
            (w.staff_channel_id, "staff", 0),
        ):
            self._add_channel({"id": str(cid), "type": kind, "name": name, "position": 0})
        self.channels[w.dm_channel_id] = {
            "id": str(w.dm_channel_id),
            "type": 1,
            "recipients": [self.customer],
            "last_message_id": None,
        }
        # Records.
        self.requests: list[Request] = []
        self.posts: list[Post] = []
        self.edits: list[Post] = []  # PATCHes of messages the bot posted earlier
        self.deleted: list[int] = []  # ids of the bot's messages it deleted
        self.rate_limited: list[Request] = []  # writes answered 429
        self._writes: dict[int, list[float]] = {}  # each channel's recent writes (monotonic)
        self.callbacks: list[Callback] = []
        self.followups: list[Followup] = []
        self.messages: dict[int, dict[str, Any]] = {}  # what the bot posted, as it stands now
        self.heard: list[dict[str, Any]] = []  # customers' messages the history shows (``said``)
        self._clicked: dict[int, int] = {}  # interaction id -> the message clicked on
        self._kinds: dict[int, int] = {}  # interaction id -> its type
        self._invoked: dict[int, int] = {}  # interaction id -> the channel a command ran in
        self.commands: dict[int, list[dict[str, Any]]] = {}  # each guild's registered commands
        self.command_syncs: list[Request] = []  # bulk overwrites of a guild's commands
        self.modals: dict[int, dict[str, Any]] = {}  # interaction id -> the modal shown
        self.typing: list[int] = []
        self.uploads: list[Upload] = []  # files the bot posted, with the channel they went to
        self.files: dict[str, bytes] = {}  # attachments served, by path
        # A message with a file over this is refused (413, code 40005), as Discord does.
        self.upload_limit = UPLOAD_LIMIT
        self._flaky: tuple[int, itertools.count[int]] | None = None
        self.faults: list[str] = []
        """Each send ``flaky`` failed, by fault (error, drop, made)."""
        self.threads: list[dict[str, Any]] = []
        self.channel_edits: list[Request] = []  # PATCHes of forums' tags and of threads
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.gateway_paths: list[str] = []
        self.rejections: list[int] = []  # close codes the fake ended a session with
        self.client_close_codes: list[int] = []  # close codes the client disconnected with
        # Gateway state.
        self.session_id = "fake-session"
        self._seq = 0
        self._ws: web.WebSocketResponse | None = None
        self._replay: list[tuple[str, dict[str, Any]]] = []
        self._failures: list[_Failure] = []
        self._next_faults: list[tuple[str, re.Pattern[str]]] = []
        self._hangs: list[_Hang] = []
        self._closing = asyncio.Event()
        self._rejected: set[int] = set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=4 * UPLOAD_LIMIT)
        app.router.add_get("/gw", self._gateway)
        app.router.add_get("/resume-gw", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{path:.*}", self._serve_attachment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gw"

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake, then restore them."""
        route_base = discord.http.Route.BASE
        gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = f"{self.base_url}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = route_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway

    # -- test controls ---------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], *, within: float = 5.0) -> None:
        """Return as soon as ``predicate()`` holds; it is re-checked after every recorded event.
        ``within`` only bounds a broken test; a passing one never waits that long."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send one gateway DISPATCH; while no client is connected it is kept as missed and
        replayed when the client resumes."""
        if self._ws is None:
            self._replay.append((event, data))
            return
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def reconnect(self, *, replay: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        """Send op 7 RECONNECT. On the client's RESUME the fake replays ``replay`` and whatever
        was dispatched meanwhile (events it treats as missed), then sends RESUMED."""
        ws, self._ws = self._ws, None
        if ws is None:
            raise RuntimeError("no gateway client connected")
        self._replay.extend(replay)
        await ws.send_str(json.dumps({"op": 7, "d": None}))

    def fail(
        self, method: str, path: str, *, status: int, code: int, times: int = 1, after: int = 0
    ) -> None:
        """Answer the next ``times`` requests matching ``method`` and the ``path`` regex with a
        Discord error (e.g. 403 / 50013 missing permissions), once ``after`` of them went
        through (the second part of a long reply fails)."""
        self._failures.append(_Failure(method, re.compile(path), status, code, times, after))

    def hang(self, method: str, path: str, *, made: bool) -> None:
        """Never answer the next request matching ``method`` and the ``path`` regex (a process
        killed in the middle of it, a connection that died): with ``made`` it takes effect
        first (the message is posted, and the caller cannot know), without it nothing happens.
        """
        self._hangs.append(_Hang(method, re.compile(path), made))

    def posts_in(self, channel_id: int) -> list[Post]:
        return [p for p in self.posts if p.channel_id == channel_id]

    def answered(self, interaction_id: int) -> list[Callback]:
        return [c for c in self.callbacks if c.interaction_id == interaction_id]

    def followed_up(self, interaction_id: int) -> list[Followup]:
        return [f for f in self.followups if f.interaction_id == interaction_id]

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        by: dict[str, Any] | None = None,
        roles: Sequence[int] = (),
    ) -> int:
        """``by`` (the customer by default, holding ``roles``) presses the button ``custom_id``
        on the bot's message ``message_id``: one INTERACTION_CREATE. Returns the interaction id."""
        message = self.messages[message_id]
        if custom_id not in custom_ids(message):
            raise ValueError(f"message {message_id} has no button {custom_id!r}")
        interaction_id = snowflake()
        self._clicked[interaction_id] = message_id
        channel = self.channels[int(message["channel_id"])]
        button = {"custom_id": custom_id, "component_type": BUTTON}
        data = self._payload(interaction_id, COMPONENT_INTERACTION, button, channel)
        data["message"] = message
        await self._interact(data, by or self.customer, roles, channel)
        return interaction_id

    async def command(
        self,
        name: str,
        channel_id: int,
        *,
        by: dict[str, Any] | None = None,
        roles: Sequence[int] = (),
    ) -> int:
        """``by`` (the customer by default, holding ``roles``) runs the guild's slash command
        ``name`` in ``channel_id``: one INTERACTION_CREATE. Returns the interaction id."""
        guild_id = self.world.guild_id
        [registered] = [c for c in self.commands.get(guild_id, []) if c["name"] == name] or [None]
        if registered is None:
            raise ValueError(f"/{name} is not registered in the guild")
        interaction_id = snowflake()
        self._invoked[interaction_id] = channel_id
        invoked = {"id": registered["id"], "name": name, "type": CHAT_INPUT}
        invoked["guild_id"] = str(guild_id)
        channel = self.channels[channel_id]
        data = self._payload(interaction_id, APPLICATION_COMMAND, invoked, channel)
        await self._interact(data, by or self.customer, roles, channel)
        return interaction_id

    async def submit_modal(
        self, opened_by: int, values: dict[str, str], *, by: dict[str, Any] | None = None
    ) -> int:
        """``by`` (the customer by default) sends the modal shown in answer to interaction
        ``opened_by``, its text inputs filled with ``values`` (by ``custom_id``). Returns the
        submit's interaction id."""
        modal = self.modals[opened_by]
        interaction_id = snowflake()
        message_id = self._clicked[opened_by]
        self._clicked[interaction_id] = message_id
        channel = self.channels[int(self.messages[message_id]["channel_id"])]
        submitted = [
            {
                "type": 18,
                "component": {
                    **c["component"],
                    "value": values.get(c["component"]["custom_id"], ""),
                },
            }
            for c in modal["components"]
        ]
        form = {"custom_id": modal["custom_id"], "components": submitted}
        data = self._payload(interaction_id, MODAL_SUBMIT, form, channel)
        await self._interact(data, by or self.customer, (), channel)
        return interaction_id

    def _payload(
        self, interaction_id: int, kind: int, data: dict[str, Any], channel: dict[str, Any]
    ) -> dict[str, Any]:
        """An INTERACTION_CREATE payload of ``kind`` in ``channel``, without its user."""
        return {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": kind,
            "token": f"interaction-token-{interaction_id}",
            "version": 1,
            "data": data,
            "channel_id": str(channel["id"]),
            "channel": channel,
            "attachment_size_limit": 10 * 1024 * 1024,
            "app_permissions": "0",
            "locale": "en-US",
            "entitlements": [],
        }

    async def _interact(
        self,
        data: dict[str, Any],
        presser: dict[str, Any],
        roles: Sequence[int],
        channel: dict[str, Any],
    ) -> None:
        self._kinds[int(data["id"])] = data["type"]
        if channel["type"] == 1:
            data["user"] = presser
        else:
            data["guild_id"] = str(self.world.guild_id)
            data["member"] = {**self._member(roles), "user": presser, "permissions": "0"}
        await self.dispatch("INTERACTION_CREATE", data)

    # -- payload builders ------------------------------------------------------------------

    def message(
        self,
        channel_id: int,
        content: str,
        *,
        author: dict[str, Any] | None = None,
        message_id: int | None = None,
        mentions_bot: bool = False,
        webhook_id: int | None = None,
        kind: int = 0,
        roles: Sequence[int] = (),
        attachments: Sequence[str | tuple[str, bytes]] = (),
    ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from the customer (or ``author``, holding ``roles``) in
        ``channel_id``, with a file for each of ``attachments``: a name and its bytes (served
        by the fake, as Discord's CDN serves them), or just a name (bytes ``file NAME``)."""
        author = author or self.customer
        data: dict[str, Any] = {
            "id": str(message_id or snowflake()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": TIMESTAMP,
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self.bot_user] if mentions_bot else [],
            "mention_roles": [],
            "attachments": [self._attachment(channel_id, a) for a in attachments],
            "embeds": [],
            "pinned": False,
            "type": kind,
            "flags": 0,
        }
        if webhook_id is not None:
            data["webhook_id"] = str(webhook_id)
        if int(self.channels.get(channel_id, {}).get("type", 0)) != 1:
            data["guild_id"] = str(self.world.guild_id)
            data["member"] = self._member(roles)
        return data

    def staff_message(self, channel_id: int, content: str, **options: Any) -> dict[str, Any]:
        """A MESSAGE_CREATE payload from Dana, who holds the support role."""
        return self.message(
            channel_id, content, author=self.staff, roles=[self.world.support_role_id], **options
        )

    def add_thread(self, parent_id: int, name: str = "earlier question") -> int:
        """A thread that exists on Discord but was never announced to the client."""
        thread = self._thread(
            thread_id=snowflake(), parent_id=parent_id, name=name, owner_id=self.world.customer_id
        )
        return int(thread["id"])

    async def forum_post(self, title: str, content: str) -> dict[str, Any]:
        """The customer opens a post in the support forum: THREAD_CREATE, then the starter
        message, whose id is the thread's id. Returns the MESSAGE_CREATE payload."""
        thread = self._thread(
            thread_id=snowflake(),
            parent_id=self.world.forum_channel_id,
            name=title,
            owner_id=self.world.customer_id,
        )
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        message = self.message(int(thread["id"]), content, message_id=int(thread["id"]))
        await self.dispatch("MESSAGE_CREATE", message)
        return message

    # -- internals -------------------------------------------------------------------------

    async def _record(self, bucket: list[Any], item: Any) -> None:
        async with self._changed:
            bucket.append(item)
            self._changed.notify_all()

    def _attachment(self, channel_id: int, file: str | tuple[str, bytes]) -> dict[str, Any]:
        name, data = (file, f"file {file}".encode()) if isinstance(file, str) else file
        attachment_id = snowflake()
        path = f"{channel_id}/{attachment_id}/{name}"
        self.files[path] = data
        # Discord's CDN links are signed (ex, is, hm); the fake's host stands in for the CDN.
        url = f"{self.base_url}/attachments/{path}?ex=1&is=2&hm=3"
        return {
            "id": str(attachment_id),
            "filename": name,
            "size": len(data),
            "url": url,
            "proxy_url": url,
        }

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["path"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    @staticmethod
    def _member(roles: Sequence[int]) -> dict[str, Any]:
        return {
            "roles": [str(r) for r in roles],
            "joined_at": TIMESTAMP,
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _add_channel(self, data: dict[str, Any]) -> None:
        if data["type"] == 15:
            data.setdefault("available_tags", [])
        data.setdefault("guild_id", str(self.world.guild_id))
        data.setdefault("permission_overwrites", [])
        data.setdefault("nsfw", False)
        data.setdefault("parent_id", None)
        self.channels[int(data["id"])] = data

    def _thread(
        self, *, thread_id: int, parent_id: int, name: str, owner_id: int
    ) -> dict[str, Any]:
        data = {
            "id": str(thread_id),
            "type": 11,
            "guild_id": str(self.world.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": TIMESTAMP,
                "locked": False,
            },
        }
        self._add_channel(data)
        return data

    def _guild_create(self) -> dict[str, Any]:
        w = self.world
        everyone = {"id": str(w.guild_id), "name": "@everyone", "permissions": "1071698660929"}
        support = {"id": str(w.support_role_id), "name": "Support", "mentionable": True}
        for role in (everyone, support):
            role.update(color=0, hoist=False, position=0, managed=False)
            role.setdefault("permissions", "0")
            role.setdefault("mentionable", False)
        member = self._member(())
        staff = {**self._member([w.support_role_id]), "user": self.staff}
        channels = [c for c in self.channels.values() if c.get("type") in (0, 15)]
        return {
            "id": str(w.guild_id),
            "name": "Acme",
            "owner_id": str(w.customer_id),
            "member_count": 3,
            "large": False,
            "unavailable": False,
            "roles": [everyone, support],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": channels,
            "threads": [c for c in self.channels.values() if c.get("type") == 11],
            "members": [
                {**member, "user": self.bot_user},
                {**member, "user": self.customer},
                staff,
            ],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await self._record(self.gateway_paths, request.path)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            msg = json.loads(frame.data)
            if msg["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif msg["op"] == 2:
                await self._identify(ws, msg["d"])
            elif msg["op"] == 6:
                await self._resume(ws, msg["d"])
        if ws.close_code is not None and id(ws) not in self._rejected:
            await self._record(self.client_close_codes, ws.close_code)
        if self._ws is ws:
            self._ws = None
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        await self._record(self.identifies, data)
        if data.get("token") != self.token:
            await self._reject(ws, 4004, "Authentication failed.")
            return
        if self.reject_privileged_intents and data.get("intents", 0) & PRIVILEGED_INTENTS:
            await self._reject(ws, 4014, "Disallowed intent(s).")
            return
        self._ws = ws
        await self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.bot_user,
                "guilds": [{"id": str(self.world.guild_id), "unavailable": True}],
                "session_id": self.session_id,
                "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume-gw",
                "application": {"id": str(self.world.application_id), "flags": 0},
            },
        )
        await self.dispatch("GUILD_CREATE", self._guild_create())

    async def _reject(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        self._rejected.add(id(ws))
        await self._record(self.rejections, code)
        await ws.close(code=code, message=reason.encode())

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self._ws = ws
        replay, self._replay = self._replay, []
        for event, payload in replay:
            await self.dispatch(event, payload)
        await self.dispatch("RESUMED", {})
        await self._record(self.resumes, data)

    # -- REST ------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        if request.content_type == "multipart/form-data":
            body, uploads = await self._multipart(request, path)
            if any(len(u.data) > self.upload_limit for u in uploads):
                return _json({"message": "Request entity too large", "code": 40005}, status=413)
            for upload in uploads:
                await self._record(self.uploads, upload)
        else:
            body = await request.json() if request.can_read_body else None
        await self._record(self.requests, Request(request.method, path, body, dict(request.query)))
        listed = re.fullmatch(r"/channels/(\d+)/messages", path)
        if listed and request.method == "GET" and self._authorized(request):
            return self._history(int(listed[1]), request.query)
        callback = re.fullmatch(r"/interactions/(\d+)/([^/]+)/callback", path)
        if callback and request.method == "POST":
            return await self._callback(body, int(callback[1]), callback[2])
        followup = re.fullmatch(r"/webhooks/(\d+)/interaction-token-(\d+)", path)
        if followup and request.method == "POST":
            return await self._followup(body, int(followup[1]), int(followup[2]))
        if not self._authorized(request):
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        for failure in self._failures:
            if failure.times and failure.method == request.method and failure.pattern.search(path):
                if failure.after:
                    failure.after -= 1
                    break
                failure.times -= 1
                return _json({"message": "fake failure", "code": failure.code}, failure.status)
        hang = self._hang(request.method, path)
        if hang is not None and not hang.made:
            await self._closing.wait()
            return _dropped(request)
        fault = self._fault(request.method, path)
        if fault == "error":
            return _json({"message": "fake outage", "code": 0}, 503)
        if fault == "drop":
            return _dropped(request)
        limited = self._over_limit(request.method, path)
        if limited is not None:
            await self._record(self.rate_limited, Request(request.method, path, body, {}))
            return _json(
                {"message": "You are being rate limited.", "retry_after": limited, "global": False},
                429,
                headers={"Via": "1.1 google"},
            )
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                answer = await handler(
                    body, *(int(g) if g.isdigit() else g for g in match.groups())
                )
                if hang is not None:  # made, then never answered
                    await self._closing.wait()
                if fault is not None or hang is not None:  # made, then the connection drops
                    return _dropped(request)
                return answer
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def flaky(self, *, every: int) -> None:
        """Fail every ``every``-th message the bot sends (5: 20 % of them), the faults taking
        turns: a 503 (an outage discord.py does not retry), a dropped connection (never made),
        and the message made and then the connection dropped (an unknown outcome). Counted,
        not drawn: however the sends interleave, the share and the mix are the same."""
        self._flaky = (every, itertools.count(1))

    def fault_next(self, fault: str, path: str) -> None:
        """Make the next message (or forum post) the bot sends to a path matching ``path``
        end in ``fault``, one of ``FAULTS`` (``made``: it is made, then the connection
        drops)."""
        self._next_faults.append((fault, re.compile(path)))

    def _hang(self, method: str, path: str) -> _Hang | None:
        """The hang that takes this request, if one waits for it (it is used up)."""
        for hang in self._hangs:
            if hang.method == method and hang.pattern.search(path):
                self._hangs.remove(hang)
                return hang
        return None

    def _fault(self, method: str, path: str) -> str | None:
        if method != "POST" or re.fullmatch(r"/channels/\d+/(messages|threads)", path) is None:
            return None
        for index, (fault, pattern) in enumerate(self._next_faults):
            if pattern.search(path):
                del self._next_faults[index]
                self.faults.append(fault)
                return fault
        if self._flaky is None:
            return None
        every, sends = self._flaky
        if next(sends) % every:
            return None
        fault = FAULTS[len(self.faults) % len(FAULTS)]
        self.faults.append(fault)
        return fault

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    def _history(self, channel_id: int, query: Mapping[str, str]) -> web.Response:
        """A channel's messages (the bot's and those ``said``: the fake keeps no others) after
        ``after``, at most ``limit``, newest first, as Discord lists them."""
        if channel_id not in self.channels:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        after, limit = int(query.get("after") or 0), int(query.get("limit") or 50)
        found = sorted(
            (
                m
                for m in [*self.messages.values(), *self.heard]
                if int(m["channel_id"]) == channel_id
            ),
            key=lambda m: int(m["id"]),
        )
        return _json([m for m in found if int(m["id"]) > after][:limit][::-1])

    def said(self, channel_id: int, content: str) -> int:
        """A message of the customer's in ``channel_id`` that Discord's history shows from now
        on (the client never heard of it); its id."""
        message = self.message(channel_id, content)
        self.heard.append(message)
        return int(message["id"])

    def left_by_a_dead_process(
        self, channel_id: int, content: str, *, reference: int | None = None
    ) -> int:
        """A message the bot posted before it was killed (the client never heard of it),
        answering the message ``reference`` if given."""
        body: dict[str, Any] = {"content": content}
        if reference is not None:
            body["message_reference"] = {
                "message_id": str(reference),
                "channel_id": str(channel_id),
            }
        return int(self._bot_message(channel_id, body)["id"])

    def _over_limit(self, method: str, path: str) -> float | None:
        """Seconds to wait when this message write would be a sixth in 5 s in its channel."""
        write = re.fullmatch(r"/channels/(\d+)/messages(/\d+)?", path)
        if write is None or method not in ("POST", "PATCH"):
            return None
        now = time.monotonic()
        recent = [t for t in self._writes.get(int(write[1]), []) if now - t < WRITE_WINDOW]
        if len(recent) >= WRITES_PER_WINDOW:
            self._writes[int(write[1])] = recent
            return round(WRITE_WINDOW - (now - recent[0]), 3)
        self._writes[int(write[1])] = [*recent, now]
        return None

    async def _multipart(
        self, request: web.Request, path: str
    ) -> tuple[dict[str, Any], list[Upload]]:
        """A message with files, as discord.py sends it: ``payload_json`` and ``files[n]``."""
        form = await request.post()
        body = json.loads(str(form["payload_json"]))
        channel = re.match(r"/channels/(\d+)/", path)
        uploads = [
            Upload(int(channel[1]) if channel else 0, value.filename, value.file.read())
            for name, value in form.items()
            if name.startswith("files[") and isinstance(value, web.FileField)
        ]
        return body, uploads

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._guild_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._overwrite_commands),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("PATCH", r"/channels/(\d+)", self._edit_channel),
            ("POST", r"/channels/(\d+)/typing", self._typing),
            ("POST", r"/channels/(\d+)/messages", self._send),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._thread_from_message),
            ("POST", r"/channels/(\d+)/threads", self._thread_in_channel),
        ]

    async def _guild_commands(self, _body: Any, application_id: int, guild_id: int) -> web.Response:
        if application_id != self.world.application_id or guild_id != self.world.guild_id:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        return _json(self.commands.get(guild_id, []))

    async def _overwrite_commands(
        self, body: list[dict[str, Any]], application_id: int, guild_id: int
    ) -> web.Response:
        if application_id != self.world.application_id or guild_id != self.world.guild_id:
            return _json({"message": "Missing Access", "code": 50001}, status=403)
        for command in body:
            if not COMMAND_NAME.fullmatch(command.get("name") or "") or not (
                0 < len(command.get("description") or "") <= 100
            ):
                return _invalid("command names are 1-32 lower-case characters, descriptions 1-100")
        self.commands[guild_id] = [
            {
                **command,
                "id": str(snowflake()),
                "application_id": str(application_id),
                "guild_id": str(guild_id),
                "version": str(snowflake()),
                "type": command.get("type", CHAT_INPUT),
            }
            for command in body
        ]
        path = f"/applications/{application_id}/guilds/{guild_id}/commands"
        await self._record(self.command_syncs, Request("PUT", path, body, {}))
        return _json(self.commands[guild_id])

    async def _me(self, _body: Any) -> web.Response:
        return _json(self.bot_user)

    async def _application(self, _body: Any) -> web.Response:
        return _json(
            {
                "id": str(self.world.application_id),
                "name": "supportbot",
                "icon": None,
                "description": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.customer,
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _open_dm(self, body: dict[str, Any]) -> web.Response:
        recipient = int(body["recipient_id"])
        if recipient != self.world.customer_id:
            return _json({"message": "Unknown User", "code": 10013}, status=404)
        return _json(self.channels[self.world.dm_channel_id])

    async def _get_channel(self, _body: Any, channel_id: int) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        return _json(channel)

    async def _edit_channel(self, body: dict[str, Any], channel_id: int) -> web.Response:
        """A forum's tags, or a thread's applied tags, archived and locked flags."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if channel["type"] == 15 and "available_tags" in body:
            return await self._retag_forum(channel, body["available_tags"])
        if channel["type"] != 11:
            return _invalid("only forums' tags and threads are edited here")
        meta = channel["thread_metadata"]
        if meta["archived"] and body.get("archived") is not False:
            return _json({"message": "Thread is archived", "code": 50083}, status=400)
        if "applied_tags" in body:
            known = {t["id"] for t in self.channels[int(channel["parent_id"])]["available_tags"]}
            tags = body["applied_tags"]
            if len(tags) > 5 or not set(tags) <= known:
                return _invalid("applied_tags must be at most 5 of the forum's tags")
            channel["applied_tags"] = tags
        for flag in ("archived", "locked"):
            if flag in body:
                meta[flag] = body[flag]
        await self._record(
            self.channel_edits, Request("PATCH", f"/channels/{channel_id}", body, {})
        )
        await self.dispatch("THREAD_UPDATE", channel)
        return _json(channel)

    async def _retag_forum(self, forum: dict[str, Any], tags: list[dict[str, Any]]) -> web.Response:
        if len(tags) > 20 or any(not 0 < len(t.get("name") or "") <= 20 for t in tags):
            return _invalid("a forum has at most 20 tags of 1-20 characters")
        forum["available_tags"] = [
            {"emoji_id": None, "emoji_name": None, **t, "id": str(t.get("id") or snowflake())}
            for t in tags
        ]
        await self._record(
            self.channel_edits, Request("PATCH", f"/channels/{forum['id']}", tags, {})
        )
        await self.dispatch("CHANNEL_UPDATE", forum)
        return _json(forum)

    def tags_of(self, thread_id: int) -> list[str]:
        """The names of the tags applied to a forum post."""
        thread = self.channels[thread_id]
        names = {
            t["id"]: t["name"] for t in self.channels[int(thread["parent_id"])]["available_tags"]
        }
        return [names[t] for t in thread.get("applied_tags", [])]

    async def _typing(self, _body: Any, channel_id: int) -> web.Response:
        await self._record(self.typing, channel_id)
        return web.Response(status=204)

    async def _send(self, body: dict[str, Any], channel_id: int) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        if channel["type"] == 15:
            return _json({"message": "Cannot send messages in a forum", "code": 50008}, status=400)
        meta = channel.get("thread_metadata") or {}
        if meta.get("archived"):
            if meta["locked"]:
                return _json({"message": "Thread is locked", "code": 50083}, status=400)
            meta["archived"] = False  # sending in an archived thread unarchives it
            await self.dispatch("THREAD_UPDATE", channel)
        if len(body.get("content") or "") > 2000 or refusal(body):
            return _invalid(refusal(body))
        message = self._bot_message(channel_id, body)

        await self._record(self.posts, Post(int(message["id"]), channel_id, body))
        await self.dispatch("MESSAGE_CREATE", message)
        return _json(message)

    def _bot_message(
        self, channel_id: int, body: dict[str, Any], *, message_id: int | None = None
    ) -> dict[str, Any]:
        message = self.message(
            channel_id, body.get("content") or "", author=self.bot_user, message_id=message_id
        )
        message["components"] = body.get("components") or []
        message["flags"] = body.get("flags", 0)
        if body.get("message_reference"):
            message["type"] = 19
            message["message_reference"] = body["message_reference"]
        self.messages[int(message["id"])] = message
        return message

    async def _delete(self, _body: Any, channel_id: int, message_id: int) -> web.Response:
        message = self.messages.get(message_id)
        if message is None or int(message["channel_id"]) != channel_id:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        del self.messages[message_id]
        self.deleted.append(message_id)
        return web.Response(status=204)

    async def _edit(self, body: dict[str, Any], channel_id: int, message_id: int) -> web.Response:
        message = self.messages.get(message_id)
        if message is None or int(message["channel_id"]) != channel_id:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if refusal(body, flags=message["flags"]):
            return _invalid(refusal(body, flags=message["flags"]))
        self._apply(message, body)
        await self._record(self.edits, Post(message_id, channel_id, body))
        return _json(message)

    @staticmethod
    def _apply(message: dict[str, Any], changes: dict[str, Any]) -> None:
        for name in ("content", "components"):
            if name in changes:
                message[name] = changes[name] or ([] if name == "components" else "")
        message["flags"] = changes.get("flags", message["flags"])
        message["edited_timestamp"] = TIMESTAMP

    async def _callback(
        self, body: dict[str, Any], interaction_id: int, token: str
    ) -> web.Response:
        if token != f"interaction-token-{interaction_id}":
            return _json({"message": "Unknown interaction", "code": 10062}, status=404)
        kind, data = body["type"], body.get("data") or {}
        if self.answered(interaction_id):
            return _json(
                {"message": "Interaction has already been acknowledged.", "code": 40060}, 400
            )
        if kind == MODAL and (
            self._kinds.get(interaction_id) == MODAL_SUBMIT or _modal_problem(data)
        ):
            return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
        clicked = self._clicked.get(interaction_id)
        message = self.messages[clicked] if clicked is not None else None
        if message is None and kind in (7, MODAL):
            return _invalid("only a component interaction can update its message or open this")
        if kind == 7:
            self._apply(message, data)
        if kind == MODAL:
            self.modals[interaction_id] = data
        if kind == 4 and data.get("flags", 0) & EPHEMERAL:
            # Kept, so that its buttons can be clicked (only its recipient sees it).
            where = int(message["channel_id"]) if message else self._invoked[interaction_id]
            self._bot_message(where, data)["flags"] = EPHEMERAL
        await self._record(self.callbacks, Callback(interaction_id, kind, data))
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction_id),
                "type": self._kinds.get(interaction_id, COMPONENT_INTERACTION),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(data.get("flags", 0) & EPHEMERAL),
            }
        }
        if kind == 7 and message is not None:
            answer["interaction"]["response_message_id"] = message["id"]
            answer["resource"] = {"type": kind, "message": message}
        return _json(answer)

    async def _followup(
        self, body: dict[str, Any], application_id: int, interaction_id: int
    ) -> web.Response:
        known = interaction_id in self._clicked or interaction_id in self._invoked
        if application_id != self.world.application_id or not known:
            return _json({"message": "Unknown Webhook", "code": 10015}, status=404)
        await self._record(self.followups, Followup(interaction_id, body))
        if interaction_id in self._clicked:
            channel_id = int(self.messages[self._clicked[interaction_id]]["channel_id"])
        else:
            channel_id = self._invoked[interaction_id]
        message = self.message(channel_id, body.get("content") or "", author=self.bot_user)
        message["webhook_id"] = str(application_id)
        message["flags"] = body.get("flags", 0)
        return _json(message)

    async def _thread_from_message(
        self, body: dict[str, Any], channel_id: int, message_id: int
    ) -> web.Response:
        if message_id in self.channels:
            return _json(
                {"message": "A thread has already been created for this message", "code": 160004},
                status=400,
            )
        if len(body.get("name") or "") > 100 or not body.get("name"):
            return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
        # A thread started from a message has the message's id.
        thread = self._thread(
            thread_id=message_id,
            parent_id=channel_id,
            name=body["name"],
            owner_id=self.world.bot_id,
        )
        await self._record(self.threads, thread)
        if self.announce_threads:
            await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)

    async def _thread_in_channel(self, body: dict[str, Any], channel_id: int) -> web.Response:
        if body.get("message") and refusal(body["message"]):
            return _invalid(refusal(body["message"]))
        thread = self._thread(
            thread_id=snowflake(),
            parent_id=channel_id,
            name=body["name"],
            owner_id=self.world.bot_id,
        )
        await self._record(self.threads, thread)
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        starter = body.get("message")
        if starter is None:
            return _json(thread)
        # Forum post: the starter message lives in the new thread and shares its id.
        message = self._bot_message(int(thread["id"]), starter, message_id=int(thread["id"]))
        await self._record(self.posts, Post(int(thread["id"]), int(thread["id"]), starter))
        await self.dispatch("MESSAGE_CREATE", message)
        return _json({**thread, "message": message})


def _modal_problem(modal: dict[str, Any]) -> bool:
    """Whether Discord would refuse ``modal`` (type 9's data)."""
    components = modal.get("components") or []
    if (
        not 0 < len(modal.get("title") or "") <= 45
        or not 0 < len(modal.get("custom_id") or "") <= 100
    ):
        return True
    if not 0 < len(components) <= 5:
        return True
    for wrapper in components:
        inner = (
            [wrapper["component"]] if wrapper.get("type") == 18 else wrapper.get("components") or []
        )
        if wrapper.get("type") == 18 and not 0 < len(wrapper.get("label") or "") <= 45:
            return True
        for item in inner:
            if item.get("type") != 4 or not 0 < len(item.get("custom_id") or "") <= 100:
                return True
            if item.get("style") not in (1, 2) or int(item.get("max_length") or 0) > 4000:
                return True
    return False


def _invalid(why: str | None) -> web.Response:
    errors = {"_errors": [{"code": "BASE_TYPE_BAD", "message": why or "too long"}]}
    return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)


def _dropped(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees it lost)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response()  # never written


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim.
    body = json.dumps(data).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=body, status=status, headers=headers)
