"""Conditional S3 writes: one object per email, never overwritten, so a redelivery is harmless."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Final, TypeVar

import structlog
from botocore.exceptions import ClientError

from consumer_service.metrics import ConsumerMetrics
from consumer_service.s3_store import ObjectStore, key_exists
from ingest_common.aws import THROTTLING_CODES, error_code, full_jitter_seconds, http_status
from ingest_common.envelope import Envelope

log = structlog.get_logger("consumer_service.writer")

_BACKOFF_BASE_SECONDS = 0.1
_BACKOFF_CAP_SECONDS = 5.0
T = TypeVar("T")


class StoreResult(enum.Enum):
    CREATED = "created"
    ALREADY_STORED = "already_stored"
    CONFLICT_STORED = "conflict_stored"
    """A different email under an `email_id` already taken (one client, one Idempotency-Key, two emails): stored
    beside the first, never dropped."""


class StoreFailed(Exception):
    """Every attempt failed: the message stays in SQS and comes back after its visibility timeout."""


# User metadata written with each per-email object: what a later 412 on its key compares (docs/design.md,
# "Idempotency-Key conflicts"). S3 returns user metadata names in lower case.
DIGEST_METADATA: Final = "email-digest"
REQUEST_ID_METADATA: Final = "request-id"


def object_metadata(envelope: Envelope) -> dict[str, str]:
    metadata = {DIGEST_METADATA: envelope.content_digest()}
    if envelope.request_id.isascii():  # S3 metadata is US-ASCII; the API's request ids always are
        metadata[REQUEST_ID_METADATA] = envelope.request_id
    return metadata


class S3Writer:
    """Stores an envelope's email under its key, retrying up to `max_attempts` with full-jitter backoff.

    The retries are ours, not botocore's (the S3 client makes one attempt per call): each failed attempt is
    counted by reason in `processing_failures_total` (dashboards and alerts read it per attempt), every error
    is retried (409 ConditionalRequestConflict and transport errors included). A 412 means the key is taken:
    by this very email (a redelivery or the client's retry: success), or, when the digest stored beside the
    object differs, by another email under the same Idempotency-Key, which is then stored beside it.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        key_prefix: str,
        max_attempts: int,
        metrics: ConsumerMetrics,
        max_concurrent_writes: int = 64,
    ) -> None:
        self._store = store
        # A packed message brings up to hundreds of emails at once: the puts, not the messages, are bounded.
        self._writes = asyncio.Semaphore(max_concurrent_writes)
        self._prefix = key_prefix
        self._max_attempts = max_attempts
        self._metrics = metrics

    async def room(self) -> None:
        """Always room: emails are written as they arrive (CONSUMER_MAX_IN_FLIGHT, S3_MAX_CONCURRENT_WRITES)."""

    def add(self, envelope: Envelope) -> Awaitable[StoreResult]:
        return self.store(envelope)

    def seal_all(self) -> None:
        """Nothing is held back in this layout."""

    async def close(self, timeout: float) -> None:
        """Nothing to write on close: every email is written by the task that received it."""

    async def store(self, envelope: Envelope) -> StoreResult:
        async with self._writes:
            return await self._store_now(envelope)

    async def _store_now(self, envelope: Envelope) -> StoreResult:
        body = envelope.stored_object()
        metadata = object_metadata(envelope)
        key = envelope.s3_key(self._prefix)
        if await self._retrying(partial(self._put_new, key, body, metadata), envelope, key):
            self._metrics.stored["created"].inc()
            return StoreResult.CREATED
        first = await self._retrying(partial(self._store.metadata, key), envelope, key)
        # No digest: an object written before conflicts were told apart, under the same id: a redelivery.
        if first.get(DIGEST_METADATA, metadata[DIGEST_METADATA]) == metadata[DIGEST_METADATA]:
            self._metrics.stored["already_stored"].inc()
            return StoreResult.ALREADY_STORED
        conflict_key = envelope.conflict_s3_key(self._prefix)
        if not await self._retrying(partial(self._put_new, conflict_key, body, metadata), envelope, conflict_key):
            self._metrics.stored["already_stored"].inc()  # this conflict's redelivery: counted once, when stored
            return StoreResult.ALREADY_STORED
        self._metrics.stored["created"].inc()
        self._metrics.idempotency_conflicts.inc()
        log.warning(
            "idempotency_conflict",
            email_id=envelope.email_id,
            client=envelope.client,
            request_id=envelope.request_id,
            first_request_id=first.get(REQUEST_ID_METADATA),
            key=key,
            stored_as=conflict_key,
        )
        return StoreResult.CONFLICT_STORED

    async def _put_new(self, key: str, body: bytes, metadata: Mapping[str, str]) -> bool:
        """True when the object was created, False when the key was taken (412)."""
        try:
            await self._store.put_new(key, body, metadata=metadata)
        except ClientError as exc:
            if key_exists(exc):
                return False
            raise
        return True

    async def _retrying(self, call: Callable[[], Awaitable[T]], envelope: Envelope, key: str) -> T:
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await call()
            except Exception as exc:  # S3's errors and transport errors, timeouts: retried alike
                self._note_failure(exc, attempt, envelope)
            if attempt < self._max_attempts:
                # Full jitter; 409 ConditionalRequestConflict (a concurrent put) is retried the same way.
                await asyncio.sleep(full_jitter_seconds(attempt, base=_BACKOFF_BASE_SECONDS, cap=_BACKOFF_CAP_SECONDS))
        raise StoreFailed(f"{self._max_attempts} attempts to store {key} failed")

    def _note_failure(self, exc: Exception, attempt: int, envelope: Envelope) -> None:
        code = error_code(exc)
        throttled = code in THROTTLING_CODES or http_status(exc) == 503
        self._metrics.failures["s3_throttled" if throttled else "s3_error"].inc()
        log.warning(
            "s3_put_failed",
            error=code,
            attempt=attempt,
            max_attempts=self._max_attempts,
            email_id=envelope.email_id,
            request_id=envelope.request_id,
        )
