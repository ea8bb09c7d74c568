"""The figures of ``supportbot stats`` (``core.stats``), read from the database.

Medians and the "I don't know" questions are worked out here in Python over the few rows
they need, so the same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from core.escalation import State
from core.stats import Figures, Tokens
from core.text import clean
from core.types import Kind, Turn
from storage.models import ConversationRow, EscalationRow, FeedbackRow, MessageRow

TOP_QUESTIONS = 5
QUESTION_LENGTH = 200

_C, _M, _E, _F = ConversationRow, MessageRow, EscalationRow, FeedbackRow


async def read(engine: AsyncEngine, *, since: datetime, until: datetime, model: str) -> Figures:
    """What happened between ``since`` and ``until``; tokens stored without their model (an
    older row) count as ``model``'s."""
    figures = Figures(since=since, until=until)
    async with engine.connect() as connection:
        await _conversations(connection, figures)
        await _escalations(connection, figures)
        await _feedback(connection, figures)
        await _messages(connection, figures, model)
        figures.dont_know = await _dont_know(connection, since, until)
    return figures


def _within(
    column: InstrumentedAttribute[datetime], since: datetime, until: datetime
) -> ColumnElement[bool]:
    return and_(column >= since, column < until)


async def _conversations(connection: AsyncConnection, figures: Figures) -> None:
    period = _within(_C.created_at, figures.since, figures.until)
    wrote = exists().where(_M.conversation_id == _C.id, _M.kind == Kind.CUSTOMER.value)
    escalated = exists().where(_E.conversation_id == _C.id)
    figures.conversations = await connection.scalar(select(func.count()).where(period)) or 0
    figures.conversations_with_turns = (
        await connection.scalar(select(func.count()).where(period, wrote)) or 0
    )
    figures.answered_by_bot = (
        await connection.scalar(select(func.count()).where(period, wrote, ~escalated)) or 0
    )


async def _escalations(connection: AsyncConnection, figures: Figures) -> None:
    rows = await connection.execute(
        select(
            _E.cause,
            _E.state,
            _E.created_at,
            _E.claimed_at,
            _E.closed_at,
            _E.solved_asked_at,
            _E.solved,
        ).where(_within(_E.created_at, figures.since, figures.until))
    )
    causes: Counter[str] = Counter()
    for row in rows:
        causes[row.cause or "unknown"] += 1
        if row.claimed_at is not None:
            figures.claim_seconds.append((row.claimed_at - row.created_at).total_seconds())
        if row.state == State.RESOLVED and row.closed_at is not None:
            figures.resolve_seconds.append((row.closed_at - row.created_at).total_seconds())
        if row.solved_asked_at is not None:
            figures.asked_solved += 1
        if row.solved is not None:
            figures.solved[row.solved] = figures.solved.get(row.solved, 0) + 1
    figures.escalations = dict(causes)


async def _feedback(connection: AsyncConnection, figures: Figures) -> None:
    rows = await connection.execute(
        select(_F.rating, func.count(), func.count(_F.comment))
        .where(_within(_F.created_at, figures.since, figures.until))
        .group_by(_F.rating)
    )
    for rating, count, comments in rows:
        figures.ratings[rating] = count
        figures.comments += comments


async def _messages(connection: AsyncConnection, figures: Figures, model: str) -> None:
    period = _within(_M.created_at, figures.since, figures.until)
    figures.turns = (
        await connection.scalar(select(func.count()).where(period, _M.kind == Kind.CUSTOMER.value))
        or 0
    )
    used = await connection.execute(
        select(
            _M.model,
            func.sum(_M.input_tokens),
            func.sum(_M.output_tokens),
            func.sum(_M.cache_read_tokens),
            func.sum(_M.cache_write_tokens),
        )
        .where(period, _M.role == "assistant")
        .group_by(_M.model)
    )
    for name, *counts in used:
        tokens = Tokens(*(int(c or 0) for c in counts))
        if any(counts):
            figures.tokens.setdefault(name or model, Tokens()).add(tokens)
    causes = await connection.execute(
        select(_M.fallback, func.count())
        .where(period, _M.fallback.is_not(None))
        .group_by(_M.fallback)
    )
    figures.fallbacks = {cause: count for cause, count in causes}


async def _dont_know(
    connection: AsyncConnection, since: datetime, until: datetime
) -> list[tuple[str, int]]:
    """The customer message each "I don't know" answer answered (the last before it in its
    conversation), counted by its words (case and spacing aside)."""
    answers = await connection.execute(
        select(_M.conversation_id, _M.seq)
        .where(_within(_M.created_at, since, until), _M.dont_know)
        .order_by(_M.created_at, _M.id)
    )
    asked: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for conversation_id, seq in answers.all():
        content = await connection.scalar(
            select(_M.content)
            .where(
                _M.conversation_id == conversation_id,
                _M.seq < seq,
                _M.kind == Kind.CUSTOMER.value,
            )
            .order_by(_M.seq.desc())
            .limit(1)
        )
        if content is None:
            continue
        said = " ".join(clean(Turn("user", content, Kind.CUSTOMER).text).split())
        if said:
            folded = said.casefold()
            asked[folded] += 1
            shown.setdefault(folded, said[:QUESTION_LENGTH])
    return [(shown[q], n) for q, n in asked.most_common(TOP_QUESTIONS)]
