"""The Prometheus metrics the bot keeps (``prometheus-client``), served by ``bots.health``.

Labels are closed sets (an outcome, a cause, a reason category, a token kind), never text from
a conversation or Claude, so a series can neither leak what a customer wrote nor grow without
bound.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TURNS = Counter(
    "supportbot_turns",
    "Customer messages handled, by outcome: answered (by Claude), notice (the bot answered "
    "without Claude: limited mode, an input problem, a fallback), escalated, quiet (a person "
    "has the conversation), duplicate (a redelivery), crashed, held (the database refused it), "
    "flooded (over the customer's rate: kept for the catch-up), recovered (answered after the "
    "fact: left by a dead process, or the catch-up of flooded ones)",
    ["outcome"],
)
TURN_SECONDS = Histogram(
    "supportbot_turn_seconds",
    "From a customer message reaching the engine to its reply being ready",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
CLAUDE_SECONDS = Histogram(
    "supportbot_claude_request_seconds",
    "One Claude request, retries and waiting for a concurrency slot included, by outcome",
    ["outcome"],
    buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
CLAUDE_TOKENS = Counter(
    "supportbot_claude_tokens",
    "Tokens billed by Claude, by kind: input, output, cache_read, cache_write",
    ["kind"],
)
CLAUDE_QUEUED = Gauge(
    "supportbot_claude_queued",
    "Claude requests waiting for one of the ANTHROPIC_MAX_CONCURRENCY slots",
)
FALLBACKS = Counter(
    "supportbot_fallbacks",
    "Turns answered with a configured fallback because Claude could not answer, by cause",
    ["cause"],
)
ESCALATIONS = Counter(
    "supportbot_escalations",
    "Hand-offs to the team, by reason: customer_asked, claude_asked, claude_unavailable, "
    "no_knowledge, dont_know_twice, tool_loop (Claude still calling tools after the cap), "
    "crashed, held",
    ["reason"],
)
HELD = Gauge(
    "supportbot_held_messages",
    "Customer messages kept in memory while the database refuses them",
)
RATINGS = Counter(
    "supportbot_ratings",
    "Presses of 👍 (up) or 👎 (down) under the bot's answers that counted (the customer's)",
    ["rating"],
)
SOLVED = Counter(
    "supportbot_solved_answers",
    'Answers to "Did we solve it?": yes or no',
    ["answer"],
)
REDELIVERED = Counter(
    "supportbot_replies_redelivered",
    "Replies delivered after their turn: a post that failed (platform error, lost connection) "
    "or a process that died between storing the answer and the platform taking it",
)
GIVEN_UP = Counter(
    "supportbot_replies_given_up",
    "Replies the outbox stopped trying to deliver: nowhere to answer any more (the channel is "
    "gone), refused for good (the bot removed, the customer's DMs closed), or past "
    "SUPPORTBOT_OUTBOX_GIVE_UP_MINUTES",
)
OUTBOX_DEPTH = Gauge(
    "supportbot_outbox_depth",
    "Replies stored and not yet taken by the platform (nor given up), on this replica's platforms",
)
OUTBOX_AGE = Gauge(
    "supportbot_outbox_oldest_seconds",
    "Age of the oldest reply stored and not yet taken by the platform (0: none waiting)",
)
STAFF_OUTBOX_DEPTH = Gauge(
    "supportbot_staff_outbox_depth",
    "Relays between DMs and staff threads, staff replies and notice re-draws not yet taken by "
    "the platform, on this replica's platforms",
)
STAFF_OUTBOX_AGE = Gauge(
    "supportbot_staff_outbox_oldest_seconds",
    "Age of the oldest of them (0: none waiting)",
)
STAFF_REDELIVERED = Counter(
    "supportbot_staff_posts_redelivered",
    "Relays, decisions, staff replies and notice re-draws that got through after a failed try, "
    "by kind",
    ["kind"],
)
STAFF_GIVEN_UP = Counter(
    "supportbot_staff_posts_given_up",
    "Relays, decisions, staff replies and notice re-draws given up (too old, or refused for "
    "good: the channel is gone, the customer closed their DMs), by kind",
    ["kind"],
)
