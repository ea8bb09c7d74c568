"""A platform-neutral behaviour harness: the same scenario drives Slack and Discord.

Each :class:`Bot` runs the REAL adapter (``SlackBot`` or ``DiscordBot``, built in
:func:`build_adapter` and nowhere else) over its fake server on 127.0.0.1, with the real
engine and desk on a real database. Everything a scenario reads comes off the fake's wire::

    async with open_bot("slack", runtime=runtime) as bot:
        reply = await bot.say("Can I talk to a human?")      # what the customer saw, or None
        assert reply is not None and reply.pings and bot.team_ping in reply.text
        notice = await bot.staff_notice()                    # the notification as it stands
        await bot.press(notice, "claim")                     # as a support-team member
        relayed = await bot.staff_writes_in_thread("Hi!", where="dm")

The rest of the API: ``redeliver_last`` (the last delivery again), ``staff_joins_thread``
(staff take over a customer's thread), ``staff_thread`` (relays and re-pings), ``conversation``
(all the customer sees), ``team_pings``, ``notes`` (told to whoever acted) and
``reping_sweep`` (one round of the re-ping watcher).

Where the platforms render things differently, a scenario asks the harness instead of
branching on the platform: ``team_ping`` / ``staff_mention`` / ``customer_mention`` (the
mentions as written on the wire), ``Posted.pings`` (did posting it notify the support team:
the mention in Slack's text, the role in Discord's ``allowed_mentions``), ``Posted.buttons``
(neutral names: ``claim``, ``resolve``, ``hand_back``, ``talk``, ``up`` / ``down`` for
👍 / 👎, ``yes`` / ``no`` under "Did we solve it?") and ``Posted.says`` (text
without Markdown emphasis, case-insensitive). Where they behave differently today, a property
says so: ``talk_button_stays``.

Waiting is on events: after a delivery the harness waits until the adapter has taken it (Slack:
Bolt runs the listener before it acks; Discord: the client has dispatched it) and then drains
the adapter, and re-pings are driven one watcher sweep at a time.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bots.app import Runtime
from bots.discord.bot import DiscordBot
from bots.slack.bot import EVENTS_PATH, SlackBot
from bots.slack.notice import ACTION_IDS
from bots.slack.render import SOLVED, TALK_TO_HUMAN
from core.clock import utcnow
from core.desk import Desk
from core.stream import AnswerSink
from core.types import ConversationKey, IncomingMessage, Reply, StaffPost
from tests.discord_helpers import QUICK_EDITS, fake_discord_installed, settings_for
from tests.fakes.discord_api import FakeDiscord, custom_ids, text_of
from tests.fakes.slack_api import FakeSlack, Params, post_action, post_event
from tests.slack_helpers import GROUP, SECRET, load_body, press_body, slack_settings

PLATFORMS = ("slack", "discord")
WITHIN = 5.0
"""Bounds every wait; a passing scenario never comes near it."""
REPING_SWEEP_AHEAD = timedelta(hours=1)
"""A sweep looks for due re-pings as the watcher would this much later (default: 10 minutes)."""

Where = Literal["dm", "thread"]
"""A customer's conversation: a DM with the bot, or a thread in the support channel."""
Files = tuple[tuple[str, bytes], ...]
"""Files sent with a message, by name, as the platform hosts them."""


@dataclass(frozen=True, slots=True)
class Posted:
    """One message the bot posted, as it stands on the fake's wire now."""

    text: str
    buttons: tuple[str, ...]
    pings: bool
    """Posting it notified the support team. Slack: the group's mention is in the text (an
    update re-renders the header it was posted with); Discord: the first post allowed the role
    mention. Edits notify nobody on either platform."""
    ref: object
    """Where the platform keeps it (Slack: channel and ts; Discord: the message id)."""

    def __contains__(self, phrase: str) -> bool:
        """``bot.team_ping in await bot.say(...)``: the text as written on the wire."""
        return phrase in self.text

    def says(self, phrase: str) -> bool:
        """Whether ``phrase`` is in the text, ignoring ``*`` emphasis and case."""
        return phrase.casefold() in self.text.replace("*", "").casefold()


def merged(posts: list[Posted]) -> Posted | None:
    """A reply split over several messages, read as one; ``None`` when nothing was posted."""
    if not posts:
        return None
    return Posted(
        text="\n".join(p.text for p in posts),
        buttons=tuple(b for p in posts for b in p.buttons),
        pings=any(p.pings for p in posts),
        ref=posts[-1].ref,
    )


class TurnLog:
    """The real engine as the adapter's port, with each turn noted: what came in and what the
    engine answered. It never changes an answer."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.files = engine.files
        self.loading_messages = engine.loading_messages
        self.turns: list[tuple[IncomingMessage, Reply | None]] = []

    async def handle(
        self, message: IncomingMessage, sink: AnswerSink | None = None
    ) -> Reply | None:
        reply = await self._engine.handle(message, sink)
        self.turns.append((message, reply))
        return reply

    async def is_active(self, key: ConversationKey) -> bool:
        return await self._engine.is_active(key)

    def hold(self, key: ConversationKey, *, wait: bool = True) -> AbstractAsyncContextManager[bool]:
        return self._engine.hold(key, wait=wait)

    async def delivered(self, outbox_id: str, message_id: str | None) -> None:
        await self._engine.delivered(outbox_id, message_id)

    async def redeliver(self, *args: Any, **kwargs: Any) -> bool:
        return await self._engine.redeliver(*args, **kwargs)

    def key_of(self, message_id: str) -> ConversationKey:
        keys = {m.key for m, _ in self.turns if m.message_id == message_id}
        if len(keys) != 1:
            raise AssertionError(f"message {message_id} reached the engine under keys {keys}")
        return keys.pop()

    def escalation_of(self, key: ConversationKey) -> int:
        """The id of the latest escalation the engine opened (or updated) at ``key``."""
        ids = [r.escalation.id for m, r in self.turns if m.key == key and r and r.escalation]
        if not ids or ids[-1] is None:
            raise AssertionError(f"no escalation at {key}")
        return ids[-1]


def build_adapter(platform: str, *, fake: Any, port: TurnLog, desk: Desk) -> Any:
    """THE one place the harness constructs an adapter (keep it so: constructors change here)."""
    if platform == "slack":
        return SlackBot(settings=slack_settings(fake, mode="http"), port=port, desk=desk)
    if platform == "discord":
        return DiscordBot(
            settings=settings_for(fake),
            port=port,
            desk=desk,
            guild_ready_timeout=0.05,
            edit_interval=QUICK_EDITS,
        )
    raise ValueError(f"unknown platform {platform!r}")


class Bot(ABC):
    """One platform's adapter, as a customer and the support team meet it."""

    platform: str
    team_ping: str
    """The support team's mention as written on the wire."""
    staff_mention: str
    """How the support-team member who acts in scenarios is written on the wire."""
    customer_mention: str
    staff_name = "Dana"
    """The name a staff reply carries to the customer."""
    talk_button_stays: bool
    """Whether "Talk to a human" is still under an answer after the customer pressed it."""

    def __init__(self, *, adapter: Any, turns: TurnLog, desk: Desk, store: Any) -> None:
        self.adapter = adapter
        self.turns = turns
        self.desk = desk
        self._store = store
        self._keys: dict[str, ConversationKey] = {}
        self._last: tuple[Where, Any, str] | None = None

    # -- the customer ----------------------------------------------------------------------

    async def say(self, text: str, *, where: Where = "thread", files: Files = ()) -> Posted | None:
        """The customer writes ``text`` (with ``files``); what the bot then posted for them
        (``None``: nothing).

        Returns once the message has been handled to the end, staff notification included.
        """
        return await self._delivered(where, lambda: self._customer_writes(text, where, files))

    async def redeliver_last(self) -> Posted | None:
        """The platform delivers the last message (the customer's or staff's) again: a Slack
        retry, a gateway replay. What reached the customer's conversation because of it."""
        assert self._last is not None, "deliver something first"
        where, raw, message_id = self._last
        before = len(self.conversation(where=where))
        await self._redeliver(raw)
        await self._settle(message_id, times=2)
        return merged(self.conversation(where=where)[before:])

    async def _delivered(
        self, where: Where, deliver: Callable[[], Awaitable[tuple[Any, str]]]
    ) -> Posted | None:
        """Run ``deliver``, wait until that message is handled; the new posts at ``where``."""
        before = len(self.conversation(where=where))
        raw, message_id = await deliver()
        await self._settle(message_id)
        if where not in self._keys:  # the conversation's first message names it
            self._keys[where] = self.turns.key_of(message_id)
        self._last = (where, raw, message_id)
        return merged(self.conversation(where=where)[before:])

    # -- the support team ------------------------------------------------------------------

    async def staff_notice(self, *, where: Where = "thread") -> Posted:
        """The staff notification of the conversation's escalation, as it stands now."""
        staff = await self._staff_post(where)
        return self._notice_at(staff)

    async def press(self, posted: Posted, action: str, *, as_staff: bool = True) -> str | None:
        """A support-team member (or, ``as_staff=False``, the customer, who is not one) presses
        ``action`` on ``posted``, and what it sets off runs to the end; returns what only the
        presser was shown (``None``: nothing)."""
        if action not in posted.buttons:
            raise AssertionError(f"{posted.text!r} has no {action!r} button ({posted.buttons})")
        return await self._press(posted.ref, action, as_staff=as_staff)

    async def staff_writes_in_thread(
        self, text: str, *, where: Where = "dm", files: Files = ()
    ) -> Posted | None:
        """A support-team member writes in the escalation's staff thread (with ``files``);
        what reached the customer's conversation because of it (``None``: nothing)."""
        staff = await self._staff_post(where)
        return await self._delivered(where, lambda: self._staff_writes(staff, text, files))

    async def staff_files(self, *, where: Where = "thread") -> list[tuple[str, bytes]]:
        """The files the bot posted in the escalation's staff thread: name and bytes."""
        return self._files_in_thread(await self._staff_post(where))

    async def staff_joins_thread(self, text: str) -> Posted | None:
        """A support-team member writes in the customer's support thread itself (a takeover);
        what the bot posted there because of it (``None``: nothing)."""
        return await self._delivered("thread", lambda: self._staff_joins(text))

    async def staff_thread(self, *, where: Where = "thread") -> list[Posted]:
        """What the bot posted in the escalation's staff thread (relays, re-pings), in order."""
        return self._staff_thread_posts(await self._staff_post(where))

    def team_pings(self) -> list[Posted]:
        """Every post so far, anywhere, that notified the support team."""
        return [p for p in self._all_posts() if p.pings]

    async def reping_sweep(self) -> None:
        """One round of the re-ping watcher (``core.desk.watch_repings``'s body), run as it
        would be ``REPING_SWEEP_AHEAD`` from now, so every open escalation is due."""
        later: Callable[[], datetime] = lambda: utcnow() + REPING_SWEEP_AHEAD  # noqa: E731
        sweeper = Desk(store=self._store, clock=later)
        for view in await sweeper.due_repings({self.platform}):
            await self.adapter.reping(view)

    async def _staff_post(self, where: Where) -> StaffPost:
        """Where the escalation's notification is (waits, bounded, until it is attached)."""
        escalation_id = self.turns.escalation_of(self._keys[where])
        try:
            async with asyncio.timeout(WITHIN):
                while True:
                    view = await self.desk.get(escalation_id)
                    if view is not None and view.staff is not None:
                        return view.staff
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"escalation {escalation_id}: no staff notification") from None

    # -- per platform ----------------------------------------------------------------------

    @abstractmethod
    async def _customer_writes(self, text: str, where: Where, files: Files) -> tuple[Any, str]:
        """Deliver the customer's message; its raw payload and its message id."""

    @abstractmethod
    def _files_in_thread(self, staff: StaffPost) -> list[tuple[str, bytes]]: ...

    @abstractmethod
    def customer_files(self, *, where: Where = "dm") -> list[tuple[str, bytes]]:
        """The files the bot posted in the customer's conversation: name and bytes."""

    @abstractmethod
    async def _redeliver(self, raw: Any) -> None: ...

    @abstractmethod
    async def _settle(self, message_id: str, *, times: int = 1) -> None:
        """Wait until the ``times``-th delivery of ``message_id`` has been handled."""

    @abstractmethod
    def conversation(self, *, where: Where = "thread") -> list[Posted]:
        """Everything the bot posted in the customer's conversation, as it stands now."""

    @abstractmethod
    def _notice_at(self, staff: StaffPost) -> Posted: ...

    @abstractmethod
    def _staff_thread_posts(self, staff: StaffPost) -> list[Posted]: ...

    @abstractmethod
    async def _press(self, ref: Any, action: str, *, as_staff: bool) -> str | None: ...

    @abstractmethod
    async def _staff_writes(self, staff: StaffPost, text: str, files: Files) -> tuple[Any, str]:
        """Deliver a support-team member's message in ``staff``'s thread."""

    @abstractmethod
    async def _staff_joins(self, text: str) -> tuple[Any, str]:
        """Deliver a support-team member's message in the customer's thread."""

    @abstractmethod
    def _all_posts(self) -> list[Posted]: ...

    @abstractmethod
    def notes(self) -> list[str]:
        """What the bot told people about their own actions so far (a refused press, a staff
        reply it did not pass on), privately or in a staff thread; not relays or re-pings."""


# -- Slack -----------------------------------------------------------------------------------

_SLACK_BUTTONS = {
    **{i: str(a) for a, i in ACTION_IDS.items()},
    TALK_TO_HUMAN: "talk",
    f"{SOLVED}_yes": "yes",
    f"{SOLVED}_no": "no",
}


def _slack_buttons(element: Params) -> tuple[str, ...]:
    """An element's neutral button names: 👍 / 👎 are one ``feedback_buttons`` element."""
    if element["type"] == "feedback_buttons":
        return ("up", "down")
    return (_SLACK_BUTTONS.get(element["action_id"], element["action_id"]),)


SLACK_DM = "D0DM"
SLACK_SUPPORT = "C0SUPPORT"
SLACK_STAFF_USER = "U0STAFF1"  # in the support user group the fake lists
SLACK_CUSTOMER = "U0CUSTOMER"  # not in the support user group


def escape(text: str) -> str:
    """Text as Slack sends it in events: ``&``, ``<`` and ``>`` escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSide(Bot):
    """``SlackBot`` on the HTTP Events API: signed POSTs in, Web API calls to ``FakeSlack`` out."""

    platform = "slack"
    team_ping = f"<!subteam^{GROUP}>"
    staff_mention = f"<@{SLACK_STAFF_USER}>"
    customer_mention = f"<@{SLACK_CUSTOMER}>"
    talk_button_stays = True  # the press is acked; the answer is never updated

    def __init__(self, *, fake: FakeSlack, **parts: Any) -> None:
        super().__init__(**parts)
        self.fake = fake
        self._clock = itertools.count(1700000100)
        self._thread_ts: str | None = None

    def _ts(self) -> str:
        return f"{next(self._clock)}.000100"

    @property
    def _events_url(self) -> str:
        return f"http://127.0.0.1:{self.adapter.http_port}{EVENTS_PATH}"

    async def _post(self, body: dict[str, Any], *, retry: int | None = None) -> None:
        status = await post_event(self._events_url, body, secret=SECRET, retry_num=retry)
        assert status == 200, f"Slack event not acked: HTTP {status}"

    async def _customer_writes(self, text: str, where: Where, files: Files) -> tuple[Any, str]:
        ts = self._ts()
        shared = [self.fake.add_file(name, data) for name, data in files]
        if where == "dm":
            channel = SLACK_DM
            body = load_body("message_im", text=escape(text), ts=ts, channel=channel)
        elif self._thread_ts is None:  # a mention in the support channel opens the thread
            channel, self._thread_ts = SLACK_SUPPORT, ts
            body = load_body("app_mention", text=f"<@U0BOT> {escape(text)}", ts=ts)
        else:
            channel = SLACK_SUPPORT
            body = load_body(
                "message_channel_thread", text=escape(text), ts=ts, thread_ts=self._thread_ts
            )
        if shared:
            body["event"] |= {"files": shared, "subtype": "file_share"}
        body["event_id"] = f"Ev{ts}"
        await self._post(body)
        return body, f"{channel}:{ts}"

    async def _redeliver(self, raw: Any) -> None:
        await self._post(raw, retry=1)

    async def _settle(self, message_id: str, *, times: int = 1) -> None:
        # Bolt runs the listener before it acks, so by now the work is the dispatcher's.
        async with asyncio.timeout(WITHIN):
            await self.adapter.drain()

    def _posted(self, message: Params) -> Posted:
        buttons = tuple(
            name
            for block in message.get("blocks") or []
            if block["type"] in ("actions", "context_actions")
            for element in block["elements"]
            for name in _slack_buttons(element)
        )
        # The mention in the text (which drives notifications) pings the group.
        pings = self.team_ping in message["text"]
        return Posted(message["text"], buttons, pings, (message["channel"], message["ts"]))

    def conversation(self, *, where: Where = "thread") -> list[Posted]:
        if where == "dm":
            found = [m for m in self.fake.messages if m["channel"] == SLACK_DM]
            found = [m for m in found if "thread_ts" not in m]
        else:
            found = [
                m
                for m in self.fake.messages
                if m["channel"] == SLACK_SUPPORT and m.get("thread_ts") == self._thread_ts
            ]
        return [self._posted(m) for m in found]

    def _notice_at(self, staff: StaffPost) -> Posted:
        return self._posted(self.fake.message(staff.channel_id, staff.message_id))

    def _staff_thread_posts(self, staff: StaffPost) -> list[Posted]:
        return [
            self._posted(m)
            for m in self.fake.messages
            if m["channel"] == staff.channel_id and m.get("thread_ts") == staff.message_id
        ]

    async def _press(self, ref: Any, action: str, *, as_staff: bool) -> str | None:
        user = SLACK_STAFF_USER if as_staff else SLACK_CUSTOMER
        [action_id] = [k for k, v in _SLACK_BUTTONS.items() if v == action]
        whispers = len(self.fake.calls_to("chat.postEphemeral"))
        payload = press_body(self.fake.message(*ref), action_id, user=user, action_ts=self._ts())
        status = await post_action(self._events_url, payload, secret=SECRET)
        assert status == 200, f"button press not acked: HTTP {status}"
        async with asyncio.timeout(WITHIN):
            await self.adapter.drain()
        told = [w for w in self.fake.calls_to("chat.postEphemeral")[whispers:] if w["user"] == user]
        return "\n".join(w["text"] for w in told) or None

    async def _staff_writes(self, staff: StaffPost, text: str, files: Files) -> tuple[Any, str]:
        fixture, where = "message_staff_thread", staff.channel_id
        return await self._staff_posts(
            fixture, where, text, thread_ts=staff.message_id, files=files
        )

    def _files_in_thread(self, staff: StaffPost) -> list[tuple[str, bytes]]:
        return [
            (u["name"], u["data"])
            for u in self.fake.uploads
            if u["channel"] == staff.channel_id and u["thread_ts"] == staff.message_id
        ]

    def customer_files(self, *, where: Where = "dm") -> list[tuple[str, bytes]]:
        channel, thread = (SLACK_DM, None) if where == "dm" else (SLACK_SUPPORT, self._thread_ts)
        return [
            (u["name"], u["data"])
            for u in self.fake.uploads
            if u["channel"] == channel and u["thread_ts"] == thread
        ]

    async def _staff_joins(self, text: str) -> tuple[Any, str]:
        assert self._thread_ts is not None, "the customer has no thread yet"
        fixture, where = "message_channel_thread", SLACK_SUPPORT
        return await self._staff_posts(fixture, where, text, thread_ts=self._thread_ts)

    async def _staff_posts(
        self, fixture: str, channel: str, text: str, *, thread_ts: str, files: Files = ()
    ) -> tuple[Any, str]:
        """A support-team member's thread reply in ``channel``, as Slack delivers it."""
        ts = self._ts()
        shared = [self.fake.add_file(name, data) for name, data in files]
        body = load_body(
            fixture,
            text=escape(text),
            ts=ts,
            user=SLACK_STAFF_USER,
            thread_ts=thread_ts,
            channel=channel,
            user_profile={"display_name": self.staff_name},
            event_id=f"Ev{ts}",
        )
        if shared:
            body["event"] |= {"files": shared, "subtype": "file_share"}
        await self._post(body)
        return body, f"{channel}:{ts}"

    def _all_posts(self) -> list[Posted]:
        return [self._posted(m) for m in self.fake.messages]

    def notes(self) -> list[str]:
        # Slack has ephemeral messages: seen only by the one they are for.
        return [w["text"] for w in self.fake.calls_to("chat.postEphemeral")]


# -- Discord ---------------------------------------------------------------------------------

_DISCORD_ACTIONS = {"claim": "claim", "resolve": "resolve", "handback": "hand_back"}


def _discord_button(custom_id: str) -> str:
    """``supportbot:esc:claim:7`` → ``claim``; ``supportbot:talk`` → ``talk``;
    ``supportbot:fb:up:3`` → ``up``; ``supportbot:solved:yes:2`` → ``yes``."""
    parts = custom_id.split(":")
    if parts[:2] == ["supportbot", "esc"]:
        return _DISCORD_ACTIONS.get(parts[2], custom_id)
    if parts[:2] in (["supportbot", "fb"], ["supportbot", "solved"]):
        return parts[2]
    return "talk" if custom_id == "supportbot:talk" else custom_id


class DiscordSide(Bot):
    """``DiscordBot`` (real discord.py) on ``FakeDiscord``'s gateway and REST API."""

    platform = "discord"
    talk_button_stays = False  # the press is answered by taking the button off (UPDATE_MESSAGE)

    def __init__(self, *, fake: FakeDiscord, **parts: Any) -> None:
        super().__init__(**parts)
        self.fake = fake
        w = fake.world
        self.team_ping = f"<@&{w.support_role_id}>"
        self.staff_mention = f"<@{w.staff_user_id}>"
        self.customer_mention = f"<@{w.customer_id}>"
        self._thread_id: int | None = None

    async def _customer_writes(self, text: str, where: Where, files: Files) -> tuple[Any, str]:
        w = self.fake.world
        # The first message in the support channel opens a thread with that message's id.
        channel = w.dm_channel_id if where == "dm" else self._thread_id or w.support_channel_id
        message = self.fake.message(channel, text, attachments=files)
        if where == "thread" and self._thread_id is None:
            self._thread_id = int(message["id"])
        return await self._dispatch(message)

    async def _redeliver(self, raw: Any) -> None:
        await self._dispatch(raw)

    async def _settle(self, message_id: str, *, times: int = 1) -> None:
        async with asyncio.timeout(WITHIN):
            await self.adapter.drain()

    def _posted(self, message_id: int) -> Posted:
        now = self.fake.messages[message_id]
        [first] = [p for p in self.fake.posts if p.id == message_id]
        mentions = first.allowed_mentions or {}
        pings = self.team_ping in first.content and self.fake.world.support_role_id in (
            mentions.get("roles") or []
        )
        buttons = tuple(_discord_button(c) for c in custom_ids(now))
        return Posted(text_of(now), buttons, pings, message_id)

    def conversation(self, *, where: Where = "thread") -> list[Posted]:
        channel = self.fake.world.dm_channel_id if where == "dm" else self._thread_id
        return [self._posted(p.id) for p in self.fake.posts_in(channel or 0)]

    def _notice_at(self, staff: StaffPost) -> Posted:
        return self._posted(int(staff.message_id))

    def _staff_thread_posts(self, staff: StaffPost) -> list[Posted]:
        # A thread started from a message has that message's id.
        return [self._posted(p.id) for p in self.fake.posts_in(int(staff.message_id))]

    async def _press(self, ref: Any, action: str, *, as_staff: bool) -> str | None:
        fake = self.fake
        [custom_id] = [c for c in custom_ids(fake.messages[ref]) if _discord_button(c) == action]
        by, roles = (fake.staff, [fake.world.support_role_id]) if as_staff else (fake.customer, [])
        interaction = await fake.click(ref, custom_id, by=by, roles=roles)
        # Every press is answered at once; "Talk to a human" then runs as the customer's turn
        # (its message id names the interaction), a staff press as the adapter's own work,
        # which tells the presser anything they need to know in a private follow-up.
        await fake.wait_for(lambda: bool(fake.answered(interaction)), within=WITHIN)
        await self._settle(f"button:{interaction}")
        if action == "talk":
            return None
        notes = fake.followed_up(interaction)
        return notes[-1].data.get("content") if notes else None

    async def _staff_writes(self, staff: StaffPost, text: str, files: Files) -> tuple[Any, str]:
        posted = self.fake.staff_message(int(staff.message_id), text, attachments=files)
        return await self._dispatch(posted)

    def _files_in_thread(self, staff: StaffPost) -> list[tuple[str, bytes]]:
        # A thread started from a message has that message's id.
        return [
            (u.name, u.data) for u in self.fake.uploads if u.channel_id == int(staff.message_id)
        ]

    def customer_files(self, *, where: Where = "dm") -> list[tuple[str, bytes]]:
        channel = self.fake.world.dm_channel_id if where == "dm" else self._thread_id
        return [(u.name, u.data) for u in self.fake.uploads if u.channel_id == channel]

    async def _staff_joins(self, text: str) -> tuple[Any, str]:
        assert self._thread_id is not None, "the customer has no thread yet"
        return await self._dispatch(self.fake.staff_message(self._thread_id, text))

    async def _dispatch(self, message: dict[str, Any]) -> tuple[Any, str]:
        # The adapter hands a message over (as tracked work) while discord.py dispatches it, so
        # once the client has seen it, draining the adapter waits for all it leads to.
        seen = asyncio.ensure_future(
            self.adapter._client.wait_for("message", check=lambda m: m.id == int(message["id"]))
        )
        await self.fake.dispatch("MESSAGE_CREATE", message)
        async with asyncio.timeout(WITHIN):
            await seen
        return message, message["id"]

    def _all_posts(self) -> list[Posted]:
        return [self._posted(p.id) for p in self.fake.posts]

    def notes(self) -> list[str]:
        # Only an interaction can be answered privately; anything else the bot has to tell
        # staff goes in the staff thread, beside the relays and re-pings.
        fake = self.fake
        private = [c.data.get("content") or "" for c in fake.callbacks if c.ephemeral]
        private += [f.content for f in fake.followups if f.ephemeral]
        staff_threads = {
            int(t["id"]) for t in fake.threads if int(t["parent_id"]) == fake.world.staff_channel_id
        }
        relayed = f"{self.customer_mention} wrote:"
        in_threads = [
            p.text
            for p in map(self._posted, (p.id for p in fake.posts if p.channel_id in staff_threads))
            if not p.pings and not p.text.startswith(relayed)
        ]
        return private + in_threads


@asynccontextmanager
async def open_bot(platform: str, *, runtime: Runtime) -> AsyncIterator[Bot]:
    """A started adapter for ``platform`` on its fake, over ``runtime``'s engine and store."""
    turns = TurnLog(runtime.engine)
    desk = runtime.desk
    parts = {"turns": turns, "desk": desk, "store": runtime.store}
    if platform == "slack":
        async with FakeSlack() as slack:
            adapter = build_adapter(platform, fake=slack, port=turns, desk=desk)
            await adapter.start()
            try:
                yield SlackSide(fake=slack, adapter=adapter, **parts)
            finally:
                await adapter.close()
    else:
        async with fake_discord_installed() as discord:
            adapter = build_adapter(platform, fake=discord, port=turns, desk=desk)
            await adapter.start()
            try:
                yield DiscordSide(fake=discord, adapter=adapter, **parts)
            finally:
                await adapter.close()
