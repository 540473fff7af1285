"""Per-client rate limits: one token bucket per client, in this process only.

The limit is per pod: a fleet of N pods behind a load balancer admits up to N times it (docs/design.md says how
to size it with the autoscaler's bounds). Nothing is shared between pods, so a limit costs no network call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from api_service.clients import Client, RateLimit


class TokenBucket:
    """`limit.burst` tokens at most, refilled at `limit.rps` a second; each admitted request takes one."""

    __slots__ = ("_tokens", "_updated", "limit")

    def __init__(self, limit: RateLimit, now: float, tokens: float | None = None) -> None:
        self.limit = limit
        self._tokens = float(limit.burst) if tokens is None else min(tokens, float(limit.burst))
        self._updated = now

    def tokens(self, now: float) -> float:
        elapsed = max(0.0, now - self._updated)  # a clock that went back refills nothing
        return min(float(self.limit.burst), self._tokens + elapsed * self.limit.rps)

    def take(self, now: float) -> float:
        """0 when a token was taken; otherwise the seconds until one will be there (nothing is taken)."""
        self._tokens = self.tokens(now)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.limit.rps


class RateLimiter:
    """A bucket per client, made on its first request with the client's limit (its parameter's, or the pod's
    default); remade, keeping what it held, when that limit changes; dropped when the client is removed."""

    def __init__(self, default: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._default = default
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, client: Client) -> float:
        """0 when the client may send this request now; otherwise the seconds to wait before retrying."""
        limit = client.rate_limit or self._default
        if limit.unlimited:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(client.name)
        if bucket is None:
            bucket = self._buckets[client.name] = TokenBucket(limit, now)
        elif bucket.limit != limit:
            bucket = self._buckets[client.name] = TokenBucket(limit, now, bucket.tokens(now))
        return bucket.take(now)

    def retain(self, names: Iterable[str]) -> None:
        """Forgets the buckets of clients no longer loaded (a revoked client's bucket is memory for nothing)."""
        kept = set(names)
        for name in [name for name in self._buckets if name not in kept]:
            del self._buckets[name]

    @property
    def buckets(self) -> int:
        return len(self._buckets)


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up, at least 1 (0 would invite an immediate, refused, retry)."""
    return str(max(1, math.ceil(seconds)))
