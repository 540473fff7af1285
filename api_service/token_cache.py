"""The API token, loaded from SSM and refreshed in the background; a request's path fetches it only through the
rate-limited early refresh that an unknown token may trigger."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Protocol

import structlog

from api_service.metrics import TokenMetrics
from api_service.token_source import TokenVersion
from ingest_common.aws import error_code

log = structlog.get_logger("api_service.token")

_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 30.0
_EARLY_REFRESH_WAIT_SECONDS = 2.0  # how long a request with an unknown token waits for the early refresh


class TokenCheck(enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class TokenSource(Protocol):
    async def versions(self) -> Sequence[TokenVersion]:
        """Every version of the token with the time it was written (raises when it cannot tell)."""
        ...


@dataclass(frozen=True, slots=True)
class _Secret:
    digest: bytes
    valid_until: float  # wall clock (Unix time): the next version's LastModifiedDate + grace; inf for the latest


class TokenCache:
    """Holds the latest token, and each earlier version still inside its rotation grace, as keyed digests.

    Version i stays valid until version i+1's LastModifiedDate (as SSM recorded it) plus the grace period, so
    every pod accepts the same tokens whenever it started. Comparing MACs of equal length under a per-process
    key makes the check constant-time in the presented token's content and length.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        refresh_seconds: float,
        max_staleness_seconds: float,
        rotation_grace_seconds: float,
        early_refresh_seconds: float = 5.0,
        early_refresh_wait_seconds: float = _EARLY_REFRESH_WAIT_SECONDS,
        metrics: TokenMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._refresh_seconds = refresh_seconds
        self._max_staleness = max_staleness_seconds
        self._rotation_grace = rotation_grace_seconds
        self._early_interval = early_refresh_seconds
        self._early_wait = early_refresh_wait_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._key = secrets.token_bytes(32)
        self._secrets: tuple[_Secret, ...] = ()  # the latest first
        self._latest_version: int | None = None
        self._loaded_at: float | None = None
        self._fetches_started = 0
        self._fetch_applied = 0  # the number of the latest-started fetch whose result is held
        self._task: asyncio.Task[None] | None = None
        self._early_task: asyncio.Task[bool] | None = None
        self._early_started_at: float | None = None
        self.metrics = metrics
        if metrics is not None:
            metrics.watch(self)

    def _digest(self, token: str) -> bytes:
        # Keyed BLAKE2b is a MAC like HMAC-SHA256 and costs a third as much (no OpenSSL digest lookup per call).
        return hashlib.blake2b(token.encode("utf-8", "surrogatepass"), key=self._key, digest_size=32).digest()

    def age_seconds(self) -> float:
        return -1.0 if self._loaded_at is None else self._clock() - self._loaded_at

    def usable(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at <= self._max_staleness

    @property
    def kept_versions(self) -> int:
        """How many token digests are held: the latest plus the earlier versions still inside their grace."""
        return len(self._secrets)

    def check(self, presented: str | None) -> TokenCheck:
        secrets_held = self._secrets
        if not self.usable() or not secrets_held:
            return TokenCheck.UNAVAILABLE
        if presented is None:
            return TokenCheck.INVALID
        digest = self._digest(presented)
        now = self._wall_clock()
        valid = False
        for secret in secrets_held:  # every held digest is compared: no short cut on the first match
            matches = hmac.compare_digest(digest, secret.digest)
            valid |= matches and now < secret.valid_until
        return TokenCheck.VALID if valid else TokenCheck.INVALID

    async def recheck(self, presented: str | None) -> TokenCheck:
        """For a token `check` found INVALID: it may be a new version this pod has not loaded yet.

        Joins the early refresh in progress, or starts one unless one started less than `early_refresh_seconds`
        ago, waits for it at most `early_refresh_wait_seconds`, and checks again.
        """
        if not presented:  # no token, or an empty one, can never become valid
            return self.check(presented)
        refresh = self._early_refresh()
        if refresh is not None:
            # asyncio.wait neither cancels the shared refresh on timeout nor raises when it was cancelled.
            await asyncio.wait((refresh,), timeout=self._early_wait)
        return self.check(presented)

    def _early_refresh(self) -> asyncio.Task[bool] | None:
        if self._early_task is not None and not self._early_task.done():
            return self._early_task
        now = self._clock()
        if self._early_started_at is not None and now - self._early_started_at < self._early_interval:
            if self.metrics:
                self.metrics.early_rate_limited.inc()
            return None
        self._early_started_at = now
        self._early_task = asyncio.create_task(self._run_early_refresh(), name="token-early-refresh")
        return self._early_task

    async def _run_early_refresh(self) -> bool:
        loaded = await self.refresh()
        if self.metrics:
            (self.metrics.early_success if loaded else self.metrics.early_failure).inc()
        return loaded

    async def refresh(self) -> bool:
        """Loads the token's versions once; on failure keeps the last good ones. Returns whether the load worked."""
        self._fetches_started += 1
        fetch = self._fetches_started
        try:
            versions = sorted(await self._source.versions(), key=lambda version: version.version)
        except Exception as exc:  # every failure keeps the old tokens; the reason goes to logs and metrics
            return self._failed(error_code(exc))
        if not versions or not versions[-1].value:
            return self._failed("EmptyParameter")
        if fetch < self._fetch_applied:
            # A background and an early refresh overlapped and a later-started one already answered: this older
            # view of SSM could predate a rotation, so it must not replace the newer one.
            if self.metrics:
                self.metrics.refresh_success.inc()
            return True
        latest = versions[-1]
        now = self._wall_clock()
        held = [_Secret(self._digest(latest.value), float("inf"))]
        # Version i is valid until version i+1 was written plus the grace; only those still valid are kept.
        for older, newer in pairwise(versions):
            valid_until = newer.last_modified.timestamp() + self._rotation_grace
            if older.value and now < valid_until:
                held.append(_Secret(self._digest(older.value), valid_until))
        if self._latest_version is not None and latest.version != self._latest_version:
            log.info(
                "token_rotated",
                version=latest.version,
                written_at=latest.last_modified.astimezone(UTC).isoformat(),
                previous_valid_until=datetime.fromtimestamp(
                    latest.last_modified.timestamp() + self._rotation_grace, UTC
                ).isoformat(),
            )
        self._secrets = tuple(held)
        self._fetch_applied = fetch
        self._latest_version = latest.version
        self._loaded_at = self._clock()
        if self.metrics:
            self.metrics.refresh_success.inc()
        return True

    def _failed(self, reason: str) -> bool:
        if self.metrics:
            self.metrics.refresh_failure.inc()
        log.warning("token_refresh_failed", error=reason, token_age_seconds=round(self.age_seconds(), 1))
        return False

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
            log.info("token_loaded", version=self._latest_version, versions_held=len(self._secrets))
        self._task = asyncio.create_task(self._run_after_first(), name="token-refresh")

    async def _run_after_first(self) -> None:
        delay = self._refresh_seconds * random.uniform(0.9, 1.1) if self.usable() else _RETRY_FIRST_SECONDS  # noqa: S311
        await asyncio.sleep(delay)
        await self._run()

    async def stop(self) -> None:
        tasks = [task for task in (self._task, self._early_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._early_task = None
