"""Per-customer flood control: a token bucket per customer and platform.

A customer may send ``burst`` messages at once and ``per_minute`` a minute after that,
counted as each message's turn begins. A message over the rate is not dropped: the engine
stores it and answers it with the ones after it in one turn, once the rate allows
(``Hold.wait`` seconds later). The first message over the rate in a row gets one notice; the
rest of the flood gets none.

A bucket is a few numbers; it is forgotten once it is full again, so memory follows the
customers writing now, not every customer ever seen. Each process keeps its own buckets
(replicas behind a load balancer each allow the rate).
"""

from __future__ import annotations

from dataclasses import dataclass

_PRUNE_AT = 1024
"""Buckets kept before the full ones are looked for and forgotten."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A message over the rate: answer it ``wait`` seconds from now; ``first`` of its flood."""

    wait: float
    first: bool


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    holding: bool = False


class FloodGate:
    def __init__(self, *, per_minute: float, burst: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def take(self, who: tuple[str, str], now: float) -> Hold | None:
        """Admit a message from ``who`` (platform, customer id) at monotonic time ``now``:
        ``None``, or how it is held."""
        if len(self._buckets) >= _PRUNE_AT:
            self._forget_full(now)
        bucket = self._buckets.get(who)
        if bucket is None:
            bucket = self._buckets[who] = _Bucket(tokens=self._burst, at=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.holding = False
            return None
        first = not bucket.holding
        bucket.holding = True
        return Hold(wait=(1 - bucket.tokens) / self._rate, first=first)

    def _forget_full(self, now: float) -> None:
        full = [
            who
            for who, b in self._buckets.items()
            if b.tokens + (now - b.at) * self._rate >= self._burst
        ]
        for who in full:
            del self._buckets[who]
