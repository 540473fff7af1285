"""The API's tokens, one or more per client, loaded from SSM and refreshed in the background; a request's path
fetches them only through the rate-limited early refresh that an unknown token may trigger."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Protocol

import structlog

from api_service.clients import (
    CLIENT_NAME_PATTERN,
    RESERVED_NAMES,
    Client,
    UnusableValue,
    parse_value,
)
from api_service.metrics import TokenMetrics
from api_service.token_source import ClientParameter, TokenVersion
from ingest_common.aws import error_code

log = structlog.get_logger("api_service.token")

_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 30.0
_EARLY_REFRESH_WAIT_SECONDS = 2.0  # how long a request with an unknown token waits for the early refresh


class TokenCheck(enum.Enum):
    """Why a presented token names no client."""

    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class TokenSource(Protocol):
    async def clients(self) -> Sequence[ClientParameter]:
        """Every client's parameter, the single token's first, then the path's by name (raises when it cannot
        tell)."""
        ...


@dataclass(frozen=True, slots=True)
class _Held:
    client: Client
    valid_until: float  # wall clock (Unix time): the next version's LastModifiedDate + grace; inf for the latest


@dataclass(slots=True)
class _Load:
    """What one read of SSM gives: the digests to accept, and what was refused and why."""

    tokens: dict[bytes, _Held] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    latest: dict[str, TokenVersion] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # client name -> reason


class _UnusableSingleToken(Exception):
    """The single token's latest version holds no token: the whole load fails and the last good one is kept."""


class TokenCache:
    """Holds every client's latest token, and each earlier version still inside its rotation grace, as keyed
    digests mapped to the client they belong to.

    Version i stays valid until version i+1's LastModifiedDate (as SSM recorded it) plus the grace period, so
    every pod accepts the same tokens whenever it started; which parameters are refused (bad names, values,
    shared tokens, past `max_clients`) depends only on what SSM holds, so every pod refuses the same ones.

    A presented token is looked up by its MAC (keyed BLAKE2b, 32 bytes, under a per-process random key), never
    by its own bytes: the lookup's time depends on that MAC alone, which nobody without the key can steer or
    predict, so it reveals nothing about any token, any client, or how many there are, and it stays one hash
    and one dict probe with a thousand clients.
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
        max_clients: int = 100,
        on_clients: Callable[[frozenset[str]], None] | None = None,
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
        self._max_clients = max_clients
        self._on_clients = on_clients
        self._clock = clock
        self._wall_clock = wall_clock
        self._key = secrets.token_bytes(32)
        self._held = _Load()
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
        """How many token digests are held: each client's latest plus the earlier versions still inside their
        grace."""
        return len(self._held.tokens)

    @property
    def client_names(self) -> frozenset[str]:
        return frozenset(self._held.clients)

    @property
    def refused_count(self) -> int:
        return len(self._held.refused)

    def check(self, presented: str | None) -> Client | TokenCheck:
        """The client the token belongs to, or why there is none."""
        if not self.usable():
            return TokenCheck.UNAVAILABLE
        if presented is None:
            return TokenCheck.INVALID
        held = self._held.tokens.get(self._digest(presented))
        if held is None or self._wall_clock() >= held.valid_until:
            return TokenCheck.INVALID
        return held.client

    async def recheck(self, presented: str | None) -> Client | TokenCheck:
        """For a token `check` found INVALID: it may be a new version (or a new client) this pod has not loaded.

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
        """Loads every client's tokens once; on failure keeps the last good ones. Returns whether the load
        worked."""
        self._fetches_started += 1
        fetch = self._fetches_started
        try:
            parameters = await self._source.clients()
        except Exception as exc:  # every failure keeps the old tokens; the reason goes to logs and metrics
            return self._failed(error_code(exc))
        if fetch < self._fetch_applied:
            # A background and an early refresh overlapped and a later-started one already answered: this older
            # view of SSM could predate a rotation or a revocation, so it must not replace the newer one.
            if self.metrics:
                self.metrics.refresh_success.inc()
            return True
        try:
            loaded = self._load(parameters)
        except _UnusableSingleToken as exc:
            return self._failed(str(exc))
        previous, self._held = self._held, loaded
        self._fetch_applied = fetch
        self._loaded_at = self._clock()
        self._log_changes(previous, loaded)
        if self.metrics:
            self.metrics.refresh_success.inc()
        return True

    def _load(self, parameters: Sequence[ClientParameter]) -> _Load:
        load = _Load()
        now = self._wall_clock()
        for parameter in parameters:
            name = parameter.client
            versions = sorted(parameter.versions, key=lambda version: version.version)
            latest = versions[-1] if versions else None
            if parameter.single and (latest is None or not latest.value):
                raise _UnusableSingleToken("EmptyParameter")
            reason = self._refusal(load, parameter, latest)
            if reason is None and latest is not None:
                try:
                    value = parse_value(latest.value)
                except UnusableValue:
                    if parameter.single:
                        raise _UnusableSingleToken("MalformedParameter") from None
                    reason = "malformed_value"
                else:
                    client = Client(name, value.rate_limit)
                    digests = self._digests(client, value.token, versions, now)
                    if any(digest in load.tokens for digest in digests):
                        reason = "duplicate_token"  # shared with a client loaded before: it could not be told apart
                    else:
                        load.tokens.update(digests)
                        load.clients[name] = client
                        load.latest[name] = latest
            if reason is not None:
                load.refused[name] = reason
        return load

    def _refusal(self, load: _Load, parameter: ClientParameter, latest: TokenVersion | None) -> str | None:
        name = parameter.client
        if not CLIENT_NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
            return "invalid_name"
        if name in load.clients or name in load.refused:
            return "duplicate_name"
        if not parameter.secure:
            return "not_secure_string"
        if latest is None or not latest.value:
            return "empty_value"
        if len(load.clients) >= self._max_clients:
            return "max_clients"
        return None

    def _digests(self, client: Client, token: str, versions: list[TokenVersion], now: float) -> dict[bytes, _Held]:
        """The client's latest token, valid for good, and each earlier one until its successor was written plus
        the grace (only those still valid are kept; a value written twice keeps its longest validity)."""
        digests = {self._digest(token): _Held(client, float("inf"))}
        for older, newer in pairwise(versions):
            valid_until = newer.last_modified.timestamp() + self._rotation_grace
            if not older.value or now >= valid_until:
                continue
            try:
                older_token = parse_value(older.value).token
            except UnusableValue:
                continue  # an unusable earlier write is simply not accepted
            digest = self._digest(older_token)
            if digest not in digests or digests[digest].valid_until < valid_until:
                digests[digest] = _Held(client, valid_until)
        return digests

    def _log_changes(self, previous: _Load, loaded: _Load) -> None:
        for name, latest in loaded.latest.items():
            before = previous.latest.get(name)
            if before is not None and before.version != latest.version:
                log.info(
                    "token_rotated",
                    client=name,
                    version=latest.version,
                    written_at=latest.last_modified.astimezone(UTC).isoformat(),
                    previous_valid_until=datetime.fromtimestamp(
                        latest.last_modified.timestamp() + self._rotation_grace, UTC
                    ).isoformat(),
                )
        added = sorted(set(loaded.clients) - set(previous.clients))
        removed = sorted(set(previous.clients) - set(loaded.clients))
        if added and previous.clients:
            log.info("clients_added", clients=added)
        if removed:
            log.warning("clients_removed", clients=removed)  # revoked: their tokens are refused from now on
        for name, reason in sorted(loaded.refused.items()):
            if previous.refused.get(name) != reason:
                log.error("client_refused", client=name, reason=reason, max_clients=self._max_clients)
        if not loaded.clients and previous.clients:
            log.warning("no_clients", detail="no token is loaded: every request is answered 401")
        if (added or removed) and self._on_clients is not None:
            self._on_clients(frozenset(loaded.clients))

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
            log.info(
                "token_loaded",
                clients=sorted(self._held.clients),
                versions_held=len(self._held.tokens),
                refused=len(self._held.refused),
            )
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
