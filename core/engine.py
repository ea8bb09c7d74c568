"""``Engine``: one customer message in, one reply (or deliberate silence) out.

The order of a turn: dedupe → one at a time per conversation → persist the customer's turn →
window the history → topic → Claude (or the knowledge base) → persist the answer → reply.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import prompt, tokens, window
from core.config import Persona
from core.knowledge import KnowledgeBase
from core.ports import LLM, Conversation, ConversationStore, LLMError, LLMResult
from core.topics import TopicDetector
from core.types import ConversationKey, Escalation, IncomingMessage, Reply, Turn, Usage

log = logging.getLogger("supportbot.engine")

_SUMMARY_CHARS = 300
_TRUNCATED = {"max_tokens", "model_context_window_exceeded", "pause_turn"}


def utcnow() -> datetime:
    """Naive UTC, the form every stored timestamp takes (SQLite keeps no time zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Limits:
    token_budget: int
    idle_timeout: timedelta
    max_input_chars: int


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
        turn = _turn("user", text or message.text, kind, message_id=message.message_id)
        conversation = await self._store.begin_turn(
            message,
            turn,
            now=now,
            idle_after=self._limits.idle_timeout if message.direct else None,
            restart=kind == "restart",
        )
        if conversation is None:
            log.info("duplicate delivery %s in %s: ignored", message.message_id, message.key)
            return None
        if notice is not None:
            return await self._notice(conversation, Reply(notice), now=now)
        return await self._answer(conversation, message, text, now=now)

    def _classify(self, text: str) -> tuple[str, str | None]:
        """The stored kind of a customer turn, and the notice that answers it without Claude."""
        if not text:
            return "empty", self._persona.empty_message
        if len(text) > self._limits.max_input_chars:
            return "too_long", self._persona.too_long
        if text.casefold().strip(" .!") in self._fresh_phrases:
            return "restart", self._persona.fresh_start
        return "customer", None

    async def _answer(
        self, conversation: Conversation, message: IncomingMessage, text: str, *, now: datetime
    ) -> Reply:
        topic = self._topics.detect(text) or conversation.topic
        history = window.fit(
            await self._store.window(conversation.id, start=conversation.window_start),
            budget=self._limits.token_budget,
        )
        await self._store.update(conversation.id, topic=topic, window_start=history[0].seq, now=now)
        if self._llm is None:
            return await self._limited(conversation, message, text, topic=topic, now=now)
        try:
            result = await self._llm.respond(
                system=prompt.system_blocks(
                    self._persona, topic=topic, previous_topic=conversation.topic
                ),
                messages=window.to_messages(history),
                tools=[prompt.ESCALATE_TOOL],
            )
        except LLMError as exc:
            log.warning("claude failed in %s: %s", message.key, exc)
            return await self._fallback(conversation, message, text, exc.cause, now=now)
        return await self._reply_from(conversation, message, text, result, topic=topic, now=now)

    async def _reply_from(
        self,
        conversation: Conversation,
        message: IncomingMessage,
        text: str,
        result: LLMResult,
        *,
        topic: str | None,
        now: datetime,
    ) -> Reply:
        if result.stop_reason == "refusal" or result.stop_reason in _TRUNCATED:
            cause = "refusal" if result.stop_reason == "refusal" else "truncated"
            log.warning(
                "claude stopped with %s in %s: %s fallback", result.stop_reason, message.key, cause
            )
            return await self._fallback(
                conversation, message, text, cause, now=now, usage=result.usage
            )
        content = [b for b in result.content if b.get("type") != "text" or b["text"].strip()]
        calls = [b for b in content if b.get("type") == "tool_use"]
        answer = _turn("assistant", "", "model", usage=result.usage, content=content)
        if calls:
            reason = str(calls[0].get("input", {}).get("reason") or "Claude asked for a person")
            results = [
                {"type": "tool_result", "tool_use_id": c["id"], "content": "Handed to the team."}
                for c in calls
            ]
            handed = _turn("user", "", "tool_result", content=results)
            await self._store.append(conversation.id, [answer, handed], now=now)
            escalation = self._escalation(message, text, reason, topic=topic)
            await self._store.record_escalation(conversation.id, escalation, now=now)
            return await self._notice(
                conversation, Reply(self._persona.dont_know, escalation), now=now
            )
        reply_text = answer.text.strip()
        if not reply_text:
            return await self._fallback(conversation, message, text, "unknown", now=now)
        await self._store.append(conversation.id, [answer], now=now)
        return Reply(reply_text)

    async def _fallback(
        self,
        conversation: Conversation,
        message: IncomingMessage,
        text: str,
        cause: str,
        *,
        now: datetime,
        usage: Usage | None = None,
    ) -> Reply:
        """Claude could not answer: a knowledge entry if one fits, else the cause's message."""
        entry = self._knowledge.lookup(text)
        if entry is not None:
            reply = Reply(f"{self._persona.limited_mode}\n\n{entry.answer}")
            return await self._notice(conversation, reply, now=now, usage=usage)
        escalation = self._escalation(
            message, text, f"Claude unavailable ({cause})", topic=conversation.topic
        )
        await self._store.record_escalation(conversation.id, escalation, now=now)
        reply = Reply(getattr(self._persona.fallbacks, cause), escalation)
        return await self._notice(conversation, reply, now=now, usage=usage)

    async def _limited(
        self,
        conversation: Conversation,
        message: IncomingMessage,
        text: str,
        *,
        topic: str | None,
        now: datetime,
    ) -> Reply:
        entry = self._knowledge.lookup(text)
        if entry is not None:
            reply = Reply(f"{self._persona.limited_mode}\n\n{entry.answer}")
            return await self._notice(conversation, reply, now=now)
        escalation = self._escalation(message, text, "No knowledge entry matched", topic=topic)
        await self._store.record_escalation(conversation.id, escalation, now=now)
        reply = Reply(f"{self._persona.limited_mode} {self._persona.dont_know}", escalation)
        return await self._notice(conversation, reply, now=now)

    async def _notice(
        self, conversation: Conversation, reply: Reply, *, now: datetime, usage: Usage | None = None
    ) -> Reply:
        """Store what the customer was told; Claude never sees notices in its history."""
        turn = _turn("assistant", reply.text, "notice", usage=usage or Usage())
        await self._store.append(conversation.id, [turn], now=now)
        return reply

    @staticmethod
    def _escalation(
        message: IncomingMessage, text: str, reason: str, *, topic: str | None
    ) -> Escalation:
        said = text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"
        summary = f"Topic: {topic or 'unknown'}. Customer's last message: “{said}”"
        return Escalation(reason=reason, summary=summary, customer_id=message.author_id)


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
