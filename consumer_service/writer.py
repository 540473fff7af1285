"""Conditional S3 writes: one object per email, never overwritten, so a redelivery is harmless."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable

import structlog
from botocore.exceptions import ClientError

from consumer_service.metrics import ConsumerMetrics
from consumer_service.s3_store import ObjectStore, key_exists
from ingest_common.aws import THROTTLING_CODES, error_code, full_jitter_seconds, http_status
from ingest_common.envelope import Envelope

log = structlog.get_logger("consumer_service.writer")

_BACKOFF_BASE_SECONDS = 0.1
_BACKOFF_CAP_SECONDS = 5.0


class StoreResult(enum.Enum):
    CREATED = "created"
    ALREADY_STORED = "already_stored"


class StoreFailed(Exception):
    """Every attempt failed: the message stays in SQS and comes back after its visibility timeout."""


class S3Writer:
    """Stores an envelope's email under its key, retrying up to `max_attempts` with full-jitter backoff.

    The retries are ours, not botocore's (the S3 client makes one attempt per call): each failed attempt is
    counted by reason in `processing_failures_total` (dashboards and alerts read it per attempt), every error
    is retried (409 ConditionalRequestConflict and transport errors included), and 412 ends it as a success.
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
        key = envelope.s3_key(self._prefix)
        body = envelope.stored_object()
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._store.put_new(key, body)
            except ClientError as exc:
                # 412: an earlier delivery of this message already stored it. That is success.
                if key_exists(exc):
                    self._metrics.stored["already_stored"].inc()
                    return StoreResult.ALREADY_STORED
                self._note_failure(exc, attempt, envelope)
            except Exception as exc:  # transport errors, timeouts: retried like server errors
                self._note_failure(exc, attempt, envelope)
            else:
                self._metrics.stored["created"].inc()
                return StoreResult.CREATED
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
