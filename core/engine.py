"""``Engine``: one customer message in, one reply (or deliberate silence) out.

The order of a turn: dedupe → one at a time per conversation → persist the customer's turn →
stay quiet if a person is handling it → window the history → topic → Claude (or the knowledge
base) → persist the answer → reply, with an escalation when people are needed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from core import hours, prompt, tokens, window
from core.config import Persona
from core.knowledge import KnowledgeBase
from core.ports import LLM, Conversation, ConversationStore, LLMError, LLMResult
from core.topics import TopicDetector
from core.types import (
    ConversationKey,
    Escalation,
    IncomingMessage,
    Reply,
    StaffPost,
    Turn,
    Usage,
)

log = logging.getLogger("supportbot.engine")

_TRUNCATED = {"max_tokens", "model_context_window_exceeded", "pause_turn"}


def utcnow() -> datetime:
    """Naive UTC, the form every stored timestamp takes (SQLite keeps no time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Limits:
    token_budget: int
    idle_timeout: timedelta
    max_input_chars: int
    reping_after: timedelta = timedelta(minutes=10)


@dataclass(slots=True)
class _Turn:
    """What one customer turn has gathered so far."""

    conversation: Conversation
    message: IncomingMessage
    text: str
    now: datetime
    topic: str | None = None
    history: list[Turn] = field(default_factory=list)


class Engine:
    """Implements ``ConversationPort`` for the adapters. With ``llm=None`` it runs in limited
    mode: answers come from the persona's knowledge entries and everything else is escalated.
    """

    def __init__(
        self,
        *,
        store: ConversationStore,
        llm: LLM | None,
        persona: Persona,
        limits: Limits,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._llm = llm
        self._persona = persona
        self._limits = limits
        self._clock = clock
        self._topics = TopicDetector(persona.topics)
        self._knowledge = KnowledgeBase(persona.knowledge, min_score=persona.knowledge_min_score)
        self._fresh_phrases = {p.casefold() for p in persona.fresh_start_phrases}
        self._person_phrases = [p.casefold() for p in persona.human_request_phrases]
        self._dont_know = [m.casefold() for m in persona.dont_know_markers]
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    async def is_active(self, key: ConversationKey) -> bool:
        return await self._store.is_active(key)

    async def handle(self, message: IncomingMessage) -> Reply | None:
        async with self._serial(str(message.key)):
            return await self._handle(message)

    @asynccontextmanager
    async def _serial(self, key: str) -> AsyncIterator[None]:
        # asyncio.Lock wakes waiters first come, first served: arrival order within a key.
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    async def _handle(self, message: IncomingMessage) -> Reply | None:
        now = self._clock()
        text = clean(message.text)
        kind, notice = self._classify(text)
        conversation = await self._store.begin_turn(
            message,
            _turn("user", text or message.text, kind, message_id=message.message_id),
            now=now,
            idle_after=self._limits.idle_timeout if message.direct else None,
            restart=kind == "restart",
        )
        if conversation is None:
            log.info("duplicate delivery %s in %s: ignored", message.message_id, message.key)
            return None
        if kind == "restart" and not conversation.fresh:
            notice = None  # a live escalation keeps the conversation: "start over" is just text
        turn = _Turn(conversation, message, text, now)
        if _people_have_it(conversation):
            return self._quiet(turn)
        if notice is not None:
            reply = await self._notice(turn, Reply(notice))
        else:
            reply = await self._answer(turn)
        return _relayed(turn, reply)

    def _classify(self, text: str) -> tuple[str, str | None]:
        """The stored kind of a customer turn, and the notice that answers it without Claude."""
        if not text:
            return "empty", self._persona.empty_message
        if len(text) > self._limits.max_input_chars:
            return "too_long", self._persona.too_long
        if text.casefold().strip(" .!") in self._fresh_phrases:
            return "restart", self._persona.fresh_start
        return "customer", None

    def _quiet(self, turn: _Turn) -> Reply | None:
        """A person is handling this conversation: say nothing; in a DM, pass it to staff."""
        log.info("%s is handled by the support team: bot stays quiet", turn.message.key)
        staff = _staff_thread(turn)
        return Reply("", relay=staff) if staff is not None else None

    async def _answer(self, turn: _Turn) -> Reply:
        conversation = turn.conversation
        turn.topic = self._topics.detect(turn.text) or conversation.topic
        turn.history = window.fit(
            await self._store.window(conversation.id, start=conversation.window_start),
            budget=self._limits.token_budget,
        )
        await self._store.update(
            conversation.id, topic=turn.topic, window_start=turn.history[0].seq, now=turn.now
        )
        if turn.message.wants_person or self._wants_person(turn.text):
            return await self._escalate(
                turn, "The customer asked for a person", self._persona.handoff, summarize=True
            )
        if self._llm is None:
            return await self._limited(turn)
        try:
            result = await self._llm.respond(
                system=prompt.system_blocks(
                    self._persona, topic=turn.topic, previous_topic=conversation.topic
                ),
                messages=window.to_messages(turn.history),
                tools=[prompt.ESCALATE_TOOL],
            )
        except LLMError as exc:
            log.warning("claude failed in %s: %s", turn.message.key, exc)
            return await self._fallback(turn, exc.cause)
        except Exception:
            # Whatever else breaks, the customer still gets a next step, never silence.
            log.exception("claude call crashed in %s", turn.message.key)
            return await self._fallback(turn, "unknown")
        return await self._reply_from(turn, result)

    def _wants_person(self, text: str) -> bool:
        folded = text.casefold()
        return any(phrase in folded for phrase in self._person_phrases)

    async def _reply_from(self, turn: _Turn, result: LLMResult) -> Reply:
        if result.stop_reason == "refusal" or result.stop_reason in _TRUNCATED:
            cause = "refusal" if result.stop_reason == "refusal" else "truncated"
            log.warning(
                "claude stopped with %s in %s: %s fallback",
                result.stop_reason,
                turn.message.key,
                cause,
            )
            return await self._fallback(turn, cause, usage=result.usage)
        content = [b for b in result.content if b.get("type") != "text" or b["text"].strip()]
        answer = _turn("assistant", "", "model", usage=result.usage, content=content)
        calls = [b for b in content if b.get("type") == "tool_use"]
        if calls:
            reason = str(calls[0].get("input", {}).get("reason") or "Claude asked for a person")
            results = [
                {"type": "tool_result", "tool_use_id": c["id"], "content": "Handed to the team."}
                for c in calls
            ]
            handed = _turn("user", "", "tool_result", content=results)
            await self._store.append(turn.conversation.id, [answer, handed], now=turn.now)
            return await self._escalate(turn, reason, self._persona.dont_know, summarize=True)
        said = answer.text.strip()
        if not said:
            return await self._fallback(turn, "unknown", usage=result.usage)
        await self._store.append(turn.conversation.id, [answer], now=turn.now)
        return await self._check_dont_know(turn, said)

    async def _check_dont_know(self, turn: _Turn, said: str) -> Reply:
        """Two "I don't know" answers in a row hand the conversation to people."""
        folded = said.casefold()
        streak = (
            turn.conversation.dont_know_streak + 1
            if any(m in folded for m in self._dont_know)
            else 0
        )
        if streak >= 2:
            streak = 0
            reply = await self._escalate(
                turn,
                "The bot could not answer twice in a row",
                f"{said}\n\n{self._persona.handoff}",
                summarize=True,
                store=False,
            )
        else:
            reply = Reply(said)
        if streak != turn.conversation.dont_know_streak:
            await self._store.update(turn.conversation.id, dont_know_streak=streak, now=turn.now)
        return reply

    async def _fallback(self, turn: _Turn, cause: str, *, usage: Usage | None = None) -> Reply:
        """Claude could not answer: a knowledge entry if one fits, else the cause's message."""
        known = await self._from_knowledge(turn, usage=usage)
        if known is not None:
            return known
        return await self._escalate(
            turn,
            f"Claude unavailable ({cause})",
            getattr(self._persona.fallbacks, cause),
            summarize=False,
            usage=usage,
        )

    async def _limited(self, turn: _Turn) -> Reply:
        known = await self._from_knowledge(turn)
        if known is not None:
            return known
        said = f"{self._persona.limited_mode} {self._persona.dont_know}"
        return await self._escalate(turn, "No knowledge entry matched", said, summarize=False)

    async def _from_knowledge(self, turn: _Turn, *, usage: Usage | None = None) -> Reply | None:
        """The matching knowledge entry, marked as limited mode, or None when none fits."""
        entry = self._knowledge.lookup(turn.text)
        if entry is None:
            return None
        reply = Reply(f"{self._persona.limited_mode}\n\n{entry.answer}")
        return await self._notice(turn, reply, usage=usage)

    async def _escalate(
        self,
        turn: _Turn,
        reason: str,
        said: str,
        *,
        summarize: bool,
        usage: Usage | None = None,
        store: bool = True,
    ) -> Reply:
        """Open (or update) the conversation's escalation and tell the customer ``said``.

        ``store=False`` when ``said`` is Claude's own answer, already stored as a model turn.
        """
        first = turn.conversation.escalation is None
        escalation = await self._store.escalate(
            turn.conversation.id,
            Escalation(
                reason=reason,
                summary=await self._summary(turn, use_claude=summarize and first),
                customer_id=turn.message.author_id,
            ),
            message_id=turn.message.message_id,
            now=turn.now,
            reping_at=turn.now + self._limits.reping_after,
        )
        schedule = self._persona.support_hours
        back = schedule.back_at(turn.now) if schedule is not None else None
        if back is not None:
            when = hours.describe(back, now=turn.now)
            said = f"{said} {self._persona.off_hours.format(back=when)}"
        reply = Reply(said, escalation)
        return await self._notice(turn, reply, usage=usage) if store else reply

    async def _summary(self, turn: _Turn, *, use_claude: bool) -> str:
        """A few lines for staff: written by Claude when it is up, else the last turns verbatim."""
        transcript = _transcript(turn.history or [], last=turn.text)
        verbatim = f"Topic: {turn.topic or 'unknown'}.\n{transcript[-600:]}"
        if not use_claude or self._llm is None:
            return verbatim
        try:
            result = await self._llm.respond(
                system=[{"type": "text", "text": prompt.SUMMARY_INSTRUCTIONS}],
                messages=[{"role": "user", "content": [{"type": "text", "text": transcript}]}],
                tools=[],
            )
        except LLMError as exc:
            log.warning("handoff summary failed in %s: %s", turn.message.key, exc)
            return verbatim
        written = "\n".join(b["text"] for b in result.content if b.get("type") == "text").strip()
        return written or verbatim

    async def _notice(self, turn: _Turn, reply: Reply, *, usage: Usage | None = None) -> Reply:
        """Store what the customer was told; Claude never sees notices in its history."""
        stored = _turn("assistant", reply.text, "notice", usage=usage or Usage())
        await self._store.append(turn.conversation.id, [stored], now=turn.now)
        return reply


def _people_have_it(conversation: Conversation) -> bool:
    escalation = conversation.escalation
    return conversation.human_active or (escalation is not None and escalation.state == "claimed")


def _staff_thread(turn: _Turn) -> StaffPost | None:
    """In a DM with a live, notified escalation: the staff thread that relays to it."""
    escalation = turn.conversation.escalation
    if turn.message.direct and escalation is not None:
        return escalation.staff
    return None


def _relayed(turn: _Turn, reply: Reply) -> Reply:
    """In a DM with a live escalation, staff also see what the customer wrote."""
    staff = _staff_thread(turn)
    return replace(reply, relay=staff) if staff is not None else reply


def _transcript(history: list[Turn], *, last: str) -> str:
    lines = [
        f"{'Customer' if t.role == 'user' else 'Support'}: {t.text}" for t in history if t.text
    ]
    if not lines:
        lines = [f"Customer: {last}"]
    return "\n".join(lines[-8:])


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Customer text as we keep it: NFC, no control characters but newlines and tabs, trimmed."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


def _turn(
    role: str,
    text: str,
    kind: str,
    *,
    message_id: str | None = None,
    usage: Usage | None = None,
    content: list[dict] | None = None,
) -> Turn:
    blocks = content if content is not None else [{"type": "text", "text": text}]
    return Turn(
        role=role,
        content=blocks,
        kind=kind,
        tokens=tokens.estimate(blocks),
        message_id=message_id,
        usage=usage or Usage(),
    )


def staff_turn(*, staff_name: str, text: str, message_id: str) -> Turn:
    """A support-team member's message, kept in the history Claude sees once it is back."""
    return _turn(
        "assistant", f"{staff_name} (support team): {text}", "staff", message_id=message_id
    )
