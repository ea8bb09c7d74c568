"""``DiscordPlatform``: the :class:`bots.common.Platform` port on Discord's wire.

It opens a question's support thread, shows typing, posts answers, notices, re-pings and the
DM relay, and says things to one staff member: privately (an ephemeral follow-up) under a
button press, as a reply to their post in a staff thread otherwise. Every refusal from Discord
is logged with ids and codes, never message text, and reported as ``False``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import aiohttp
import discord

from bots.common import AnswerStream, Decided, Inbound
from bots.common.download import allowed, download, refused
from bots.common.lookup import answers, find_reply
from bots.common.platform import Found, NotChecked
from bots.discord import send
from bots.discord.buttons import TALK_LABEL, proposal_buttons
from bots.discord.feedback import answer_buttons, solved_buttons
from bots.discord.forum import ForumDesk
from bots.discord.notice import approval, is_reminder_of, reminder
from bots.discord.render import (
    MESSAGE_LIMIT,
    Outgoing,
    decided_messages,
    relay_messages,
    reply_messages,
    shorten,
    staff_reply_messages,
)
from bots.discord.routing import DM_SPACE, THREAD_NAME_LIMIT
from bots.discord.send import SEND_ERRORS, describe
from bots.discord.staff_channel import StaffChannel
from bots.discord.stream import EDIT_INTERVAL, DiscordAnswer
from bots.discord.translate import Place, is_support
from bots.discord.typing_indicator import typing_in
from core.ports import StaffKind, StaffPending, Unanswered
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

THREAD_ALREADY_CREATED = 160004  # Discord error code: a thread already exists for this message
CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
"""Where Discord serves attachments (an attachment's ``url`` is on the CDN, its ``proxy_url`` on
the media proxy); files are fetched from these and the API's own host, never with the token."""


class DiscordPlatform:
    """Discord's side of the workflow; see :class:`bots.common.Platform` for each method."""

    name = "discord"

    def __init__(
        self,
        *,
        client: discord.Client,
        staff_channel_id: int | None,
        support_role_id: int | None,
        lock_solved_posts: bool = False,
        edit_interval: float = EDIT_INTERVAL,
    ) -> None:
        self._client = client
        self._role_id = support_role_id
        self._edit_interval = edit_interval
        self.has_staff_channel = staff_channel_id is not None
        self._staff = StaffChannel(
            client=client, channel_id=staff_channel_id, role_id=support_role_id
        )
        self._forum = ForumDesk(client=client, lock_solved=lock_solved_posts)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the session files were fetched over, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # Who is who.

    def is_direct(self, key: ConversationKey) -> bool:
        return key.space_id == DM_SPACE

    async def is_staff(self, user_id: str, context: Any) -> bool:
        return is_support(_user(context), self._role_id)

    def person(self, user_id: str) -> str:
        return f"<@{user_id}>"  # the client sends allowed_mentions none: it pings nobody

    async def staff_name(self, user_id: str, context: Any) -> str:
        return _user(context).display_name

    # The customer's side.

    async def prepare(self, inbound: Inbound) -> None:
        """Open the question's thread when it sits in a channel; answer in the channel (as a
        reply to it) when that fails, rather than not at all. A solved forum post the customer
        writes in again is reopened."""
        place: Place = inbound.context
        place.target, place.reference = place.channel, place.message
        await self._forum.reopen(place.channel)
        if place.thread_name and place.message is not None:
            try:
                place.target = await self._open_thread(place.message, place.thread_name)
                place.reference = None  # the question is the thread's starter, in the channel
            except SEND_ERRORS as exc:
                log.warning(
                    "cannot start a thread from message %s in channel %s (%s); answering there",
                    place.message.id,
                    getattr(place.channel, "id", None),
                    describe(exc),
                )
        # The button finds its conversation again from the channel it is pressed in: a thread
        # or a DM, not a plain channel. A press is not offered it again.
        place.offer_person = place.message is not None and (
            inbound.message.direct or isinstance(place.target, discord.Thread)
        )

    def working(self, inbound: Inbound) -> AbstractAsyncContextManager[None]:
        place: Place = inbound.context
        return typing_in(place.target or place.channel)

    async def recovered(self, unanswered: Unanswered) -> Inbound | None:
        """The turn a dead process left, answered where it was asked, in reply to it, with
        "Talk to a human" allowed where ``prepare`` allows it. Nowhere when Discord says the
        channel is gone or closed to the bot."""
        key = unanswered.key
        where = int(key.thread_id if key.thread_id != "-" else key.channel_id)
        try:
            channel = self._client.get_channel(where) or await self._client.fetch_channel(where)
        except SEND_ERRORS as exc:
            log.warning("cannot answer the recovered turn in %s: %s", key, describe(exc))
            if send.gone(exc):
                return None
            raise NotChecked(describe(exc)) from None
        if not isinstance(channel, discord.abc.Messageable):
            return None
        customer = discord.Object(int(unanswered.customer_id))
        asked = unanswered.message_id.isdigit()  # else a press: no message of theirs
        reference = (
            channel.get_partial_message(int(unanswered.message_id))
            if asked and hasattr(channel, "get_partial_message")
            else None
        )
        direct = self.is_direct(key)
        place = Place(channel, customer, target=channel, reference=reference)  # type: ignore[arg-type]
        place.offer_person = asked and (direct or isinstance(channel, discord.Thread))
        message = IncomingMessage(
            key=key,
            author_id=unanswered.customer_id,
            text="",
            message_id=unanswered.message_id,
            direct=direct,
        )
        return Inbound(message, context=place)

    def answer_stream(self, inbound: Inbound) -> AnswerStream:
        """The answer posted as it is written, then edited (``bots.discord.stream``)."""
        place: Place = inbound.context
        return DiscordAnswer(
            target=place.target or place.channel,
            reference=place.reference,
            key=inbound.message.key,
            offer_person=place.offer_person,
            role_id=self._role_id,
            interval=self._edit_interval,
        )

    async def clear_leftovers(self, inbound: Inbound) -> None:
        """The messages a dead process's stream left answering the customer's (the one that
        replies to it, and those that went on from it) are deleted. Only a stream answers
        an unanswered turn's message: a reply is posted once its turn is stored."""
        place: Place = inbound.context
        target = place.target or place.channel
        asked = inbound.message.message_id
        me = self._client.user
        if not asked.isdigit() or me is None:
            return
        try:
            after = [m async for m in target.history(after=discord.Object(int(asked)), limit=50)]
            ours = answers(after, _author, me=str(me.id), customer=inbound.message.author_id)
            for left in _streamed(ours, int(asked)):
                await left.delete()
        except SEND_ERRORS as exc:
            log.warning("clearing %s's leftovers failed: %s", inbound.message.key, describe(exc))

    async def posted_reply(self, inbound: Inbound, text: str, *, late: bool) -> Found | None:
        """The bot's messages where the answer goes (the customer's thread, or the channel)
        after the customer's message (``late``: and before their next one) that read
        ``text``: as rendered parts, or as a stream split them; the ones a stream left short
        are edited to read the reply's parts."""
        place: Place = inbound.context
        target = place.target or place.channel
        asked = inbound.message.message_id
        me = self._client.user
        if not asked.isdigit() or me is None:
            return None
        parts = [out.content for out in reply_messages(Reply(text))]
        customer = inbound.message.author_id if late else None
        try:
            after = [m async for m in target.history(after=discord.Object(int(asked)), limit=50)]
            ours = answers(after, _author, me=str(me.id), customer=customer)
            found = find_reply([m.content for m in ours], parts)
            if found is None:
                return None
            for index in found.stale:
                await ours[index].edit(content=parts[index - found.start])
        except SEND_ERRORS as exc:
            why = describe(exc)
            log.warning("looking for our reply in %s failed: %s", inbound.message.key, why)
            raise NotChecked(why) from None
        shown = None if found.whole else found.end - found.start
        return Found(str(ours[found.start].id), shown=shown)

    async def post_reply(
        self,
        inbound: Inbound,
        reply: Reply,
        *,
        ping: bool,
        offer_person: bool,
        shown: int = 0,
    ) -> bool:
        place: Place = inbound.context
        key = inbound.message.key
        if ping and self._role_id is None:
            log.warning("escalation in %s not pinged: no support role configured", key)
        messages = reply_messages(reply, ping_role_id=self._role_id if ping else None)
        if reply.proposal is not None:
            buttons: discord.ui.View | None = proposal_buttons(reply.proposal.id)
        else:
            buttons = answer_buttons(
                offer_person=offer_person and place.offer_person, answer_id=reply.answer_id
            )
        target = place.target or place.channel
        for i, out in enumerate(messages[shown:], start=shown):
            first, last = i == 0, i == len(messages) - 1
            reference = place.reference if first else None
            sent = await send.post(
                target,
                out,
                reference=reference.to_reference(fail_if_not_exists=False) if reference else None,
                view=buttons if last else None,
                context=key,
                strict=True,
            )
            if not sent:
                return False
        return True

    # The staff's side.

    async def post_notice(self, view: EscalationView, *, ping: bool) -> StaffPost | None:
        posted = await self._staff.post(view, ping=ping)
        await self._forum.follow(view)
        return posted

    async def posted_notice(self, view: EscalationView) -> StaffPost | None:
        return await self._staff.find(view)

    async def update_notice(self, view: EscalationView, post: StaffPost) -> bool:
        # Without a staff channel there is no notice (a staff command was run in the
        # customer's thread): only the forum post follows the state, even when the notice is
        # gone for good.
        try:
            return self.has_staff_channel and await self._staff.edit(view, post)
        finally:
            await self._forum.follow(view)

    async def ask_solved(self, view: EscalationView, question: str) -> bool:
        key = view.key
        direct = self.is_direct(key)
        where = key.channel_id if direct or key.thread_id == "-" else key.thread_id
        kind = discord.ChannelType.private if direct else None
        channel = self._client.get_partial_messageable(int(where), type=kind)
        buttons = solved_buttons(view.id)
        # A solved forum post was archived (and maybe locked) by the resolve: opened for the
        # question, then archived again.
        await self._forum.unarchive(view)
        posted = await send.post(channel, Outgoing(question), view=buttons, context=key)
        await self._forum.follow(view)
        return posted

    async def post_reping(self, view: EscalationView, *, now: datetime) -> bool:
        assert view.staff is not None  # the workflow posts a notice first
        out = reminder(view, role_id=self._role_id, now=now)
        return await send.post(self._staff.thread(view.staff), out, context=f"escalation {view.id}")

    async def posted_reping(self, view: EscalationView) -> bool:
        assert view.staff is not None  # the workflow posts a notice first
        me = self._client.user
        if me is None:
            return False
        try:
            async for found in self._staff.thread(view.staff).history(limit=100):
                if found.author.id == me.id and is_reminder_of(found.content, view):
                    return True
        except SEND_ERRORS as exc:
            why = describe(exc)
            log.warning("looking for the re-ping of escalation %s failed: %s", view.id, why)
            raise NotChecked(why) from None
        return False

    async def relay_to_staff(self, post: StaffPost, message: IncomingMessage) -> bool:
        text = f"(pressed {TALK_LABEL})" if message.wants_person else message.text
        names = [a.name for a in message.attachments]
        messages = relay_messages(message.author_id, text, names)
        return await _post_all(self._staff.thread(post), messages, context=post, strict=True)

    async def post_decision(self, post: StaffPost, user_id: str, outcome: str) -> bool:
        messages = decided_messages(user_id, outcome)
        return await _post_all(self._staff.thread(post), messages, context=post, strict=True)

    async def relay_to_customer(self, relayed: Relayed) -> bool:
        dm = self._dm(relayed.key)
        messages = staff_reply_messages(relayed.staff_name, relayed.text)
        posted = await _post_all(dm, messages, context=relayed.key, strict=True)
        if posted and relayed.files:
            return await send.post_files(dm, relayed.files, context=relayed.key)
        return posted

    async def staff_posted(self, pending: StaffPending) -> str | None:
        """Our message after the notice in its staff thread (a relay, a decision) or in the
        customer's DM (a staff reply; snowflakes are ordered in time across channels), posted
        since ``pending`` was written, that starts with its first message."""
        view = pending.escalation
        assert view.staff is not None  # only a notified escalation relays
        if pending.kind is StaffKind.REPLY:
            where: discord.abc.Messageable = self._dm(view.key)
            messages = staff_reply_messages(pending.author_name, pending.text)
        else:
            where = self._staff.thread(view.staff)
            if pending.kind is StaffKind.RELAY:
                messages = relay_messages(pending.author_id, pending.text)
            else:
                messages = decided_messages(pending.author_id, pending.text)
        whole = messages[0].content if messages else ""
        me = self._client.user
        if not whole:
            return None
        since = discord.utils.time_snowflake(pending.since)
        after = discord.Object(max(int(view.staff.message_id), since))
        try:
            async for found in where.history(after=after, limit=100):
                if me is not None and found.author.id == me.id and found.content.startswith(whole):
                    return str(found.id)
        except SEND_ERRORS as exc:
            why = describe(exc)
            log.warning("looking for our post of escalation %s failed: %s", view.id, why)
            raise NotChecked(why) from None
        return None

    def _dm(self, key: ConversationKey) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(
            int(key.channel_id), type=discord.ChannelType.private
        )

    async def fetch(self, attachment: Attachment, *, max_bytes: int) -> Attachment:
        """An attachment's bytes from Discord's CDN (or the configured API host), no token."""
        if not allowed(attachment.url, hosts=CDN_HOSTS, api_url=discord.http.Route.BASE):
            return refused(attachment, about="a Discord attachment")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await download(
            self._session, attachment, max_bytes=max_bytes, about="a Discord attachment"
        )

    async def post_files(
        self, post: StaffPost, files: Sequence[Attachment], *, about: object
    ) -> bool:
        return await send.post_files(self._staff.thread(post), files, context=about)

    async def post_to_staff(self, post: StaffPost, text: str, *, about: object) -> bool:
        return await send.post(self._staff.thread(post), Outgoing(text), context=about)

    async def post_approval(self, message: IncomingMessage, action: PendingAction) -> bool:
        out = approval(message, action, role_id=self._role_id)
        name = shorten(f"Approval: {action.summary}".replace("*", ""), THREAD_NAME_LIMIT)
        return await self._staff.ask(
            out, proposal_buttons(action.id), name=name, about=f"proposal {action.id}"
        )

    def at(self, key: ConversationKey, decided: Decided) -> Inbound:
        """The DM, or the conversation's thread, as a channel to post in."""
        direct = self.is_direct(key)
        kind = discord.ChannelType.private if direct else None
        channel_id = key.channel_id if direct else key.thread_id
        channel = self._client.get_partial_messageable(int(channel_id), type=kind)
        message = IncomingMessage(key, author_id="", text="", message_id="", direct=direct)
        return Inbound(message, Place(channel, decided.context.user, target=channel))

    async def tell_user(self, decided: Decided, text: str) -> None:
        # The press was deferred: a follow-up only the presser sees.
        try:
            await decided.context.followup.send(text, ephemeral=True)
        except SEND_ERRORS as exc:
            log.error(
                "could not answer a press on proposal %s (%s)", decided.proposal_id, describe(exc)
            )

    async def close_proposal(self, decided: Decided, outcome: str | None) -> None:
        message = decided.context.message
        if message is None:
            return
        changes: dict[str, Any] = {"view": None}
        if outcome is not None:
            said = f"{message.content}\n\n<@{decided.inbound.message.author_id}> {outcome}"
            changes["content"] = said[:MESSAGE_LIMIT]
        try:
            await message.edit(**changes)
        except SEND_ERRORS as exc:
            log.warning(
                "could not take the buttons off proposal %s (%s)",
                decided.proposal_id,
                describe(exc),
            )

    async def tell_staff(self, post: StaffPost, user_id: str, text: str, context: Any) -> None:
        if isinstance(context, discord.Interaction):
            # A press: the interaction was deferred, so a follow-up only the presser sees.
            try:
                await context.followup.send(text, ephemeral=True)
            except SEND_ERRORS as exc:
                log.error(
                    "could not tell %s about escalation %s (%s)", user_id, post, describe(exc)
                )
            return
        # A post in the staff thread: answer it there (the outbox's watcher has none to
        # answer: said in the thread).
        reference = context.to_reference(fail_if_not_exists=False) if context else None
        await send.post(self._staff.thread(post), Outgoing(text), reference=reference, context=post)

    async def _open_thread(self, message: discord.Message, name: str) -> discord.Thread:
        # A redelivered message (gateway RESUME replay) already has its thread: same id.
        if message.guild is not None and (existing := message.guild.get_thread(message.id)):
            return existing
        try:
            return await message.create_thread(name=name)
        except discord.HTTPException as exc:
            if exc.code != THREAD_ALREADY_CREATED:
                raise
            thread = await self._client.fetch_channel(message.id)
            assert isinstance(thread, discord.Thread)
            return thread


async def _post_all(
    target: discord.abc.Messageable,
    messages: list[Outgoing],
    *,
    context: object,
    strict: bool = False,
) -> bool:
    """Post ``messages`` in order; stop at the first Discord refuses (``strict``: raise
    ``Refused`` when that is for good)."""
    for out in messages:
        if not await send.post(target, out, context=context, strict=strict):
            return False
    return True


def _user(context: Any) -> discord.User | discord.Member:
    """Who acted in ``context``: a customer turn's :class:`Place`, a message, or a press."""
    if isinstance(context, discord.Interaction):
        return context.user
    return context.author  # Place and discord.Message alike


def _author(message: discord.Message) -> str:
    return str(message.author.id)


def _streamed(ours: list[discord.Message], asked: int) -> list[discord.Message]:
    """Of the bot's messages ``ours``, the stream that answered message ``asked``: the one
    replying to it and those after it replying to nothing (a late reply to an earlier message
    replies to that one)."""
    streamed: list[discord.Message] = []
    inside = False
    for message in ours:
        if message.reference is not None:
            inside = message.reference.message_id == asked
        if inside:
            streamed.append(message)
    return streamed
