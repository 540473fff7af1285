"""The API token, loaded from SSM and refreshed in the background; never fetched on a request's path."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from ingest_common.aws import error_code

log = structlog.get_logger("api_service.token")

_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 30.0


class TokenCheck(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class TokenMetrics:
    def __init__(self, registry: CollectorRegistry, cache: TokenCache) -> None:
        self.refreshes = Counter(
            "email_ingest_token_refreshes_total",
            "Token loads from SSM by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.refresh_success = self.refreshes.labels("success")
        self.refresh_failure = self.refreshes.labels("failure")
        age = Gauge(
            "email_ingest_token_age_seconds",
            "Seconds since the token was last loaded from SSM.",
            registry=registry,
        )
        age.set_function(cache.age_seconds)
        loaded = Gauge(
            "email_ingest_token_loaded",
            "1 while a usable (loaded, not stale) token is held.",
            registry=registry,
        )
        loaded.set_function(lambda: 1.0 if cache.usable() else 0.0)


@dataclass(slots=True)
class _Secret:
    digest: bytes
    valid_until: float  # monotonic; inf for the current token


class TokenCache:
    """Holds the current token (and the previous one during a rotation grace period) as keyed digests.

    Comparing MACs of equal length under a per-process key makes the check constant-time in the
    presented token's content and length.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        *,
        refresh_seconds: float,
        max_staleness_seconds: float,
        rotation_grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._max_staleness = max_staleness_seconds
        self._rotation_grace = rotation_grace_seconds
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._current: _Secret | None = None
        self._previous: _Secret | None = None
        self._loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.metrics: TokenMetrics | None = None

    def _digest(self, token: str) -> bytes:
        # Keyed BLAKE2b is a MAC like HMAC-SHA256 and costs a third as much (no OpenSSL digest lookup per call).
        return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), key=self._key, digest_size=32).digest()

    def age_seconds(self) -> float:
        return -1.0 if self._loaded_at is None else self._clock() - self._loaded_at

    def usable(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at <= self._max_staleness

    def check(self, presented: str | None) -> TokenCheck:
        if not self.usable() or self._current is None:
            return TokenCheck.UNAVAILABLE
        if presented is None:
            return TokenCheck.INVALID
        digest = self._digest(presented)
        matches_current = hmac.compare_digest(digest, self._current.digest)
        previous = self._previous
        matches_previous = previous is not None and hmac.compare_digest(digest, previous.digest)
        if matches_current or (matches_previous and previous is not None and self._clock() < previous.valid_until):
            return TokenCheck.VALID
        return TokenCheck.INVALID

    async def refresh(self) -> bool:
        """Loads the token once; on failure keeps the last good one. Returns whether the load worked."""
        try:
            value = await self._fetch()
        except Exception as exc:  # every failure keeps the old token; the reason goes to logs and metrics
            if self.metrics:
                self.metrics.refresh_failure.inc()
            log.warning("token_refresh_failed", error=error_code(exc), token_age_seconds=round(self.age_seconds(), 1))
            return False
        if not value:
            if self.metrics:
                self.metrics.refresh_failure.inc()
            log.warning("token_refresh_failed", error="EmptyParameter")
            return False
        now = self._clock()
        digest = self._digest(value)
        if self._current is not None and not hmac.compare_digest(digest, self._current.digest):
            self._previous = _Secret(self._current.digest, now + self._rotation_grace)
            log.info("token_rotated", previous_valid_for_seconds=self._rotation_grace)
        self._current = _Secret(digest, float("inf"))
        self._loaded_at = now
        if self.metrics:
            self.metrics.refresh_success.inc()
        return True

    async def _run(self) -> None:
        retry_delay = _RETRY_FIRST_SECONDS
        while True:
            if await self.refresh():
                retry_delay = _RETRY_FIRST_SECONDS
                # Jitter spreads a fleet's SSM calls so that pods started together do not refresh together.
                delay = self._refresh_seconds * random.uniform(0.9, 1.1)  # noqa: S311 - not for security
            else:
                delay = min(retry_delay, self._refresh_seconds)
                retry_delay = min(retry_delay * 2, _RETRY_MAX_SECONDS)
            await asyncio.sleep(delay)

    async def start(self) -> None:
        """Tries one load (so a healthy start serves at once), then keeps refreshing in the background."""
        if await self.refresh():
            log.info("token_loaded")
        self._task = asyncio.create_task(self._run_after_first(), name="token-refresh")

    async def _run_after_first(self) -> None:
        delay = self._refresh_seconds * random.uniform(0.9, 1.1) if self.usable() else _RETRY_FIRST_SECONDS  # noqa: S311
        await asyncio.sleep(delay)
        await self._run()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
