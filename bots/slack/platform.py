"""``SlackPlatform``: the workflow's port onto Slack, through the Web API calls in ``SlackWeb``.

Slack errors never reach the customer and never stop the bot: ``SlackWeb`` logs them (with
ids, never text) and each method reports by its return value.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from bots.common import AnswerStream, Decided, Inbound
from bots.common.lookup import answers, find_reply
from bots.common.platform import Found, NotChecked, NotStreamed, Refused
from bots.slack import conversation_link, notice
from bots.slack.events import PLATFORM, reply_thread
from bots.slack.render import (
    SlackMessage,
    escape,
    group_mention,
    is_proposal_block,
    render_reply,
    render_said,
    solved_question,
    user_mention,
)
from bots.slack.staff import StaffDirectory
from bots.slack.stream import SlackAnswer
from bots.slack.web import SlackWeb
from core.ports import CLOCK_SKEW, StaffKind, StaffPending, Unanswered
from core.types import (
    Attachment,
    ConversationKey,
    EscalationView,
    IncomingMessage,
    PendingAction,
    Relayed,
    Reply,
    StaffPost,
)

log = logging.getLogger(__name__)

PROGRESS_REACTION = "eyes"
"""Shown on the customer's message while the engine works where Slack refuses the loading
status (needs only ``reactions:write``)."""
WORKING_STATUS = "is looking into it…"
NO_TEXT = "(no text)"
CANNOT_READ = frozenset({"missing_scope", "not_in_channel"})
"""Errors of a history lookup that waiting will not cure."""
_LINK = re.compile(r"<(?:[^<>|]*\|)?([^<>]*)>")
"""A link as Slack formats one it found in a message's text (``<url>``, ``<url|label>``)."""


class SlackPlatform:
    """Renders and posts what the workflow decides; the settings' group and staff channel say
    whom to ping and where staff notices go.

    ``context`` values are Slack timestamps: an ``Inbound``'s is the message to put the
    progress reaction on; a ``StaffReply``'s the staff thread, where a note to its author goes;
    a ``Press`` has none, so the note goes to the staff channel itself.
    """

    name = PLATFORM

    def __init__(
        self,
        *,
        web: SlackWeb,
        staff: StaffDirectory,
        support_group_id: str | None,
        staff_channel: str | None,
        loading_messages: Sequence[str] = (),
        bot_user_id: str = "",
    ) -> None:
        self._web = web
        self._me = bot_user_id
        self._loading = tuple(loading_messages)
        self._staff = staff
        self._mention = group_mention(support_group_id) if support_group_id else None
        self._channel = staff_channel
        self._answers: weakref.WeakValueDictionary[tuple[str, str], SlackAnswer] = (
            weakref.WeakValueDictionary()
        )

    @property
    def has_staff_channel(self) -> bool:
        return bool(self._channel)

    def is_direct(self, key: ConversationKey) -> bool:
        return notice.is_dm(key)

    async def is_staff(self, user_id: str, context: Any) -> bool:
        return await self._staff.is_staff(user_id)

    def person(self, user_id: str) -> str:
        return user_mention(user_id)

    async def staff_name(self, user_id: str, context: Any) -> str:
        return await self._staff.name(user_id)

    async def prepare(self, inbound: Inbound) -> None:
        """Nothing to make: a reply with ``thread_ts`` opens the thread by itself."""

    @asynccontextmanager
    async def working(self, inbound: Inbound) -> AsyncIterator[None]:
        """Slack's loading status under the customer's message (the persona's loading messages
        rotating), set beside the turn (never holding it up) and cleared after it. Where Slack
        refuses the status, the 👀 reaction instead, taken back after the turn by the delivery
        that added it: a retried or doubled delivery finds it there (``already_reacted``) and
        leaves it alone."""
        key = inbound.message.key
        ts = str(inbound.context)
        thread = reply_thread(key) or ts
        showing = asyncio.create_task(self._show_working(key, thread, ts))
        try:
            yield
        finally:
            shown = await showing
            if shown == "status":
                await self._web.set_status(key.channel_id, thread, "", about=key)
            elif shown == "reaction":
                await self._web.unreact(key.channel_id, ts, PROGRESS_REACTION, about=key)

    async def recovered(self, unanswered: Unanswered) -> Inbound | None:
        """The turn a dead process left: the progress reaction it left on the message comes
        off (``working`` puts it back for the turn)."""
        key = unanswered.key
        channel, _, ts = unanswered.message_id.partition(":")
        if channel != key.channel_id:
            ts = ""  # a button press ("button:…", "proposal:…"): no reaction was put on it
        if ts:
            await self._web.unreact(channel, ts, PROGRESS_REACTION, about=key)
        message = IncomingMessage(
            key=key,
            author_id=unanswered.customer_id,
            text="",
            message_id=unanswered.message_id,
            direct=self.is_direct(key),
        )
        return Inbound(message, context=ts or None)

    async def _show_working(self, key: ConversationKey, thread: str, ts: str) -> str | None:
        """What shows that the bot works: ``"status"``, ``"reaction"`` or nothing."""
        channel = key.channel_id
        if await self._web.set_status(
            channel, thread, WORKING_STATUS, loading=self._loading, about=key
        ):
            return "status"
        if await self._web.react(channel, ts, PROGRESS_REACTION, about=key):
            return "reaction"
        return None

    def answer_stream(self, inbound: Inbound) -> AnswerStream:
        """Chat streaming in threads (``bots.slack.stream``); a DM's top level cannot stream."""
        message = inbound.message
        key = message.key
        thread = reply_thread(key)
        if thread is None:
            return NotStreamed()
        recipient = None if self.is_direct(key) else (message.author_id, key.space_id)
        answer = SlackAnswer(
            web=self._web, key=key, thread=thread, recipient=recipient, mention=self._mention
        )
        # A thread answers one message at a time: the newest answer is the one a stop is for.
        self._answers[key.channel_id, thread] = answer
        return answer

    def stopped(self, channel: str, thread: str) -> None:
        """Slack stopped the streamed answer in ``thread`` (the customer pressed stop)."""
        answer = self._answers.get((channel, thread))
        if answer is not None:
            answer.stopped()

    async def post_reply(
        self,
        inbound: Inbound,
        reply: Reply,
        *,
        ping: bool,
        offer_person: bool,
        shown: int = 0,
    ) -> bool:
        key = inbound.message.key
        mention = None
        if ping:
            mention = self._mention
            if mention is None:
                log.warning("escalation in %s: SLACK_SUPPORT_GROUP_ID unset, no ping", key)
        parts = render_reply(
            reply.text,
            ping=mention,
            offer_person=offer_person,
            proposal=reply.proposal,
            answer_id=reply.answer_id,
        )
        rest = parts[shown:]
        thread = reply_thread(key)
        return await self._web.post_all(key.channel_id, rest, thread=thread, about=key, strict=True)

    async def clear_leftovers(self, inbound: Inbound) -> None:
        """The bot's messages after the customer's in their thread still streaming (a dead
        process's answer, never stored) are stopped and deleted. Only threads stream."""
        message = inbound.message
        key = message.key
        thread = reply_thread(key)
        channel, _, ts = message.message_id.partition(":")
        if thread is None or channel != key.channel_id or not ts:
            return
        try:
            after = await self._web.messages_after(channel, ts, thread=thread, about=key)
        except (NotChecked, Refused):
            return  # logged: the recovered answer is posted all the same
        for left in answers(after, _user, me=self._me, customer=message.author_id):
            if await self._web.end_stream(channel, left["ts"], about=key):
                await self._web.delete(channel, left["ts"], about=key)

    async def posted_reply(self, inbound: Inbound, text: str, *, late: bool) -> Found | None:
        """The bot's messages in the customer's thread (a DM: its top level) after their
        message (``late``: and before their next one) that read ``text``: as rendered parts,
        or as a stream split them. The last of them is stopped, in case it still streams (a
        dead process's); the ones a stream left short are written over with the reply's
        parts. Without the history scope (``channels:history`` in a channel) Slack cannot be
        asked: then nothing is found, and the reply is posted."""
        message = inbound.message
        key = message.key
        channel, _, ts = message.message_id.partition(":")
        if channel != key.channel_id or not ts:
            return None  # a button press: no message of the customer's to look after
        try:
            after = await self._web.messages_after(channel, ts, thread=reply_thread(key), about=key)
        except NotChecked as exc:
            if str(exc) in CANNOT_READ:
                return None
            raise
        ours = answers(after, _user, me=self._me, customer=message.author_id if late else None)
        parts = render_reply(text)
        found = find_reply(
            [_plain(str(m.get("text") or "")) for m in ours], [p.text for p in parts]
        )
        if found is None:
            return None
        run = ours[found.start : found.end]
        # Slack's history does not say whether a message still streams: stopped anyway.
        await self._web.end_stream(channel, run[-1]["ts"], about=key)
        for index in found.stale:
            written = StaffPost(channel, ours[index]["ts"])
            if not await self._web.update(written, parts[index - found.start], about=key):
                # Kept in the outbox: the next try writes it out in full.
                raise NotChecked("update_failed")
        return Found(str(run[0]["ts"]), shown=None if found.whole else len(run))

    async def post_approval(self, message: IncomingMessage, action: PendingAction) -> bool:
        if not self._channel:
            log.warning(
                "proposal %s in %s: SLACK_STAFF_CHANNEL unset, nobody can approve it",
                action.id,
                message.key,
            )
            return False
        link = conversation_link(message.key)
        request = notice.approval(message, action, team=self._team(True), link=link)
        return await self._web.post(self._channel, request, about=message.key) is not None

    def at(self, key: ConversationKey, decided: Decided) -> Inbound:
        """Posting needs only the key: a reply goes to its channel and thread."""
        direct = self.is_direct(key)
        return Inbound(IncomingMessage(key, author_id="", text="", message_id="", direct=direct))

    async def tell_user(self, decided: Decided, text: str) -> None:
        message = decided.inbound.message
        key = message.key
        await self._web.whisper(
            key.channel_id, message.author_id, text, thread=reply_thread(key), about=key
        )

    async def close_proposal(self, decided: Decided, outcome: str | None) -> None:
        message = decided.context
        blocks = [b for b in message.get("blocks") or [] if not is_proposal_block(b)]
        if outcome is not None:
            blocks.append(notice.decided(decided.inbound.message.author_id, outcome))
        kept = SlackMessage(text=str(message.get("text") or ""), blocks=blocks)
        post = StaffPost(message["channel"], str(message.get("ts")))
        await self._web.update(post, kept, about=decided.inbound.message.key)

    async def post_notice(self, view: EscalationView, *, ping: bool) -> StaffPost | None:
        if not self._channel:
            log.warning("escalation %s: SLACK_STAFF_CHANNEL unset, staff not told", view.id)
            return None
        message = notice.notification(view, team=self._team(ping), link=await self._link(view))
        ts = await self._web.post(self._channel, message, about=f"escalation {view.id}")
        return StaffPost(self._channel, ts) if ts else None

    async def posted_notice(self, view: EscalationView) -> StaffPost | None:
        """The bot's message in the staff channel since ``view`` was opened that carries its
        buttons' block; as in ``posted_reply``, nothing is found where Slack will not let the
        bot read (or the channel is gone: posting will say so)."""
        if not self._channel:
            return None
        since = f"{(view.created_at - CLOCK_SKEW).replace(tzinfo=UTC).timestamp():.6f}"
        try:
            after = await self._web.messages_after(
                self._channel, since, thread=None, about=f"escalation {view.id}"
            )
        except NotChecked as exc:
            if str(exc) in CANNOT_READ:
                return None
            raise
        except Refused:
            return None
        found = (m for m in after if _user(m) == self._me and notice.is_notice_of(m, view.id))
        first = next(found, None)
        return StaffPost(self._channel, str(first["ts"])) if first is not None else None

    async def update_notice(self, view: EscalationView, post: StaffPost) -> bool:
        # Heads the notice as it was first posted: a DM's pinged the group, a thread's did not
        # (its thread did). An edit notifies nobody either way.
        team = self._team(self.is_direct(view.key))
        message = notice.notification(view, team=team, link=await self._link(view))
        return await self._web.update(post, message, about=f"escalation {view.id}", strict=True)

    async def ask_solved(self, view: EscalationView, question: str) -> bool:
        key = view.key
        message = solved_question(view.id, question)
        ts = await self._web.post(key.channel_id, message, thread=reply_thread(key), about=key)
        return ts is not None

    async def post_reping(self, view: EscalationView, *, now: datetime) -> bool:
        if view.staff is None:
            return False
        message = notice.reping(view, team=self._team(True), link=await self._link(view), now=now)
        ts = await self._web.post(
            view.staff.channel_id,
            message,
            thread=view.staff.message_id,
            about=f"escalation {view.id}",
        )
        return ts is not None

    async def posted_reping(self, view: EscalationView) -> bool:
        if view.staff is None:
            return False
        thread = view.staff.message_id
        try:
            after = await self._web.messages_after(
                view.staff.channel_id, thread, thread=thread, about=f"escalation {view.id}"
            )
        except NotChecked as exc:
            if str(exc) in CANNOT_READ:
                return False
            raise
        except Refused:
            return False  # posting it says so, and is tried again
        said = (str(m.get("text") or "") for m in after if _user(m) == self._me)
        return any(notice.is_reping_of(text, view) for text in said)

    async def relay_to_staff(self, post: StaffPost, message: IncomingMessage) -> bool:
        said = _relay(message.author_id, message.text)
        return await self._web.post_all(
            post.channel_id, said, thread=post.message_id, about=message.key, strict=True
        )

    async def post_decision(self, post: StaffPost, user_id: str, outcome: str) -> bool:
        said = _decision(user_id, outcome)
        return await self._web.post_all(
            post.channel_id, said, thread=post.message_id, about=post, strict=True
        )

    async def relay_to_customer(self, relayed: Relayed) -> bool:
        said = _staff_reply(relayed.staff_name, relayed.text)
        key = relayed.key
        thread = reply_thread(key)
        posted = await self._web.post_all(
            key.channel_id, said, thread=thread, about=key, strict=True
        )
        if posted and relayed.files:
            return await self._web.upload(key.channel_id, relayed.files, thread=thread, about=key)
        return posted

    async def staff_posted(self, pending: StaffPending) -> str | None:
        """Our message in the staff thread (a relay, a decision) or in the customer's DM
        after the notice (a staff reply), posted since ``pending`` was written, that starts
        with its first message; as in ``posted_reply``, nothing is found where Slack will not
        let the bot read."""
        view = pending.escalation
        assert view.staff is not None  # only a notified escalation relays
        notice_ts = view.staff.message_id
        if pending.kind is StaffKind.REPLY:
            channel, thread = view.key.channel_id, reply_thread(view.key)
            [whole, *_] = _staff_reply(pending.author_name, pending.text)
        else:
            channel, thread = view.staff.channel_id, notice_ts
            render = _relay if pending.kind is StaffKind.RELAY else _decision
            [whole, *_] = render(pending.author_id, pending.text)
        oldest = f"{max(float(notice_ts), pending.since.timestamp()):.6f}"
        try:
            after = await self._web.messages_after(
                channel, oldest, thread=thread, about=f"escalation {view.id}"
            )
        except NotChecked as exc:
            if str(exc) in CANNOT_READ:
                return None  # as in posted_reply: posted without the look
            raise
        said = ((m["ts"], _plain(str(m.get("text") or ""))) for m in after if _user(m) == self._me)
        first = _plain(whole.text)
        return next((str(ts) for ts, text in said if text.startswith(first)), None)

    async def fetch(self, attachment: Attachment, *, max_bytes: int) -> Attachment:
        return await self._web.fetch(attachment, max_bytes=max_bytes, about="a Slack file")

    async def post_files(
        self, post: StaffPost, files: Sequence[Attachment], *, about: object
    ) -> bool:
        return await self._web.upload(post.channel_id, files, thread=post.message_id, about=about)

    async def post_to_staff(self, post: StaffPost, text: str, *, about: object) -> bool:
        message = SlackMessage(escape(text))
        ts = await self._web.post(post.channel_id, message, thread=post.message_id, about=about)
        return ts is not None

    async def tell_staff(self, post: StaffPost, user_id: str, text: str, context: Any) -> None:
        await self._web.whisper(post.channel_id, user_id, text, thread=context, about=post)

    def _team(self, ping: bool) -> str:
        if ping and self._mention is None:
            log.warning("SLACK_SUPPORT_GROUP_ID unset: staff notification pings nobody")
        return self._mention if ping and self._mention else notice.TEAM_NAME

    async def _link(self, view: EscalationView) -> str:
        """The customer's message's permalink; the conversation's link when there is none."""
        found = notice.customer_message(view)
        if found is not None:
            link = await self._web.permalink(*found, about=f"escalation {view.id}")
            if link:
                return link
        return conversation_link(view.key)


def _plain(text: str) -> str:
    """A message's text as the bot wrote it: Slack turns the addresses in it into links."""
    return _LINK.sub(r"\1", text)


def _user(message: dict) -> str:
    return str(message.get("user") or "")


def _relay(customer_id: str, text: str) -> list[SlackMessage]:
    """A DM customer's message as the staff thread shows it."""
    return render_said(f"{user_mention(customer_id)} wrote:", text, empty=NO_TEXT)


def _decision(user_id: str, outcome: str) -> list[SlackMessage]:
    """Who decided a proposal, and what came of it, as the staff thread shows it."""
    return render_said(user_mention(user_id), outcome, empty=NO_TEXT)


def _staff_reply(staff_name: str, text: str) -> list[SlackMessage]:
    """A staff member's reply as the customer's DM shows it."""
    return render_said(f"*{escape(staff_name)}* (support team):", text, empty=NO_TEXT)
