"""The raw-driver references: a turn's durable work with nothing but ``sqlite3`` or ``asyncpg``.

Each turn is what the engine's store does for it, on the same migrated schema: one
transaction claims the delivery, reserves the turn's number on the conversation row, inserts
the customer's turn and reads the window back (JSON decoded); a second inserts the answer and
moves the conversation on; both commit (SQLite in WAL mode, ``synchronous=NORMAL``, as the
bot runs it). No ORM, no engine, no cache: the floor the engine is measured against.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import datetime

import asyncpg

_QUESTION = [{"type": "text", "text": "My order HG-1 was supposed to arrive on Monday."}]
_ANSWER = [{"type": "text", "text": "Sorry about the wait: could you send the order number?"}]
_SEEN = ("customer", "model", "tool_result", "staff")

_OPEN = (
    "INSERT INTO conversations (key, platform, customer_id, state, window_start, next_seq, "
    "human_active, dont_know_streak, created_at, updated_at) "
    "VALUES ($1, 'bench', 'U', 'open', 0, 0, false, 0, $2, $2) RETURNING id"
)
_CLAIM = "INSERT INTO deliveries (platform, message_id, created_at) VALUES ('bench', $1, $2)"
_NEXT = (
    "UPDATE conversations SET next_seq = next_seq + 1, updated_at = $2 WHERE id = $1 "
    "RETURNING next_seq, window_start"
)
_ADD = (
    "INSERT INTO messages (conversation_id, seq, role, kind, content, tokens, input_tokens, "
    "output_tokens, cache_read_tokens, cache_write_tokens, created_at) "
    "VALUES ($1, $2, $3, $4, $5, 20, 0, 0, 0, 0, $6)"
)
_WINDOW = (
    "SELECT seq, role, kind, content FROM messages WHERE conversation_id = $1 AND seq >= $2 "
    f"AND kind IN ({', '.join(repr(k) for k in _SEEN)}) ORDER BY seq"
)


def _qmarks(statement: str) -> str:
    for n in range(6, 0, -1):
        statement = statement.replace(f"${n}", f"?{n}")
    return statement


def sqlite_turns(path: str, *, conversations: int, turns: int) -> list[float]:
    """Seconds each turn took on raw ``sqlite3`` (one at a time, the conversations in turn),
    on the migrated database file at ``path``."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    now = datetime(2026, 12, 2).isoformat(" ")
    ids = []
    for c in range(conversations):
        ids.append(db.execute(_qmarks(_OPEN), (f"raw:T:C{c}:-", now)).fetchone()[0])
    question, answer = json.dumps(_QUESTION), json.dumps(_ANSWER)
    took = []
    for t in range(turns):
        for c, conversation in enumerate(ids):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            db.execute(_qmarks(_CLAIM), (f"{c}-{t}", now))
            seq, start = db.execute(_qmarks(_NEXT), (conversation, now)).fetchone()
            db.execute(_qmarks(_ADD), (conversation, seq - 1, "user", "customer", question, now))
            window = db.execute(_qmarks(_WINDOW), (conversation, start)).fetchall()
            [json.loads(row[3]) for row in window]
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            seq, _ = db.execute(_qmarks(_NEXT), (conversation, now)).fetchone()
            db.execute(_qmarks(_ADD), (conversation, seq - 1, "assistant", "model", answer, now))
            db.execute("COMMIT")
            took.append(time.perf_counter() - started)
    db.close()
    return took


async def asyncpg_turns(dsn: str, *, conversations: int, turns: int, pool: int = 5) -> float:
    """Turns per second of raw ``asyncpg`` on the migrated database at ``dsn``, the
    conversations running concurrently on a pool the size of SQLAlchemy's default."""
    connections = await asyncpg.create_pool(dsn, min_size=pool, max_size=pool)
    now = datetime(2026, 12, 2)
    question, answer = json.dumps(_QUESTION), json.dumps(_ANSWER)
    ids = [await connections.fetchval(_OPEN, f"raw:T:C{c}:-", now) for c in range(conversations)]

    async def conversation(c: int, conversation_id: int) -> None:
        for t in range(turns):
            async with connections.acquire() as db, db.transaction():
                await db.execute(_CLAIM, f"{c}-{t}", now)
                seq, start = await db.fetchrow(_NEXT, conversation_id, now)
                await db.execute(_ADD, conversation_id, seq - 1, "user", "customer", question, now)
                window = await db.fetch(_WINDOW, conversation_id, start)
                [json.loads(row["content"]) for row in window]
            async with connections.acquire() as db, db.transaction():
                seq, _ = await db.fetchrow(_NEXT, conversation_id, now)
                await db.execute(_ADD, conversation_id, seq - 1, "assistant", "model", answer, now)

    started = time.perf_counter()
    await asyncio.gather(*(conversation(c, i) for c, i in enumerate(ids)))
    elapsed = time.perf_counter() - started
    await connections.close()
    return conversations * turns / elapsed
