"""The batched layout: many emails per gzip-compressed NDJSON object, partitioned by the hour they arrived.

    <prefix>dt=YYYY-MM-DD/hour=HH/<batch id>.ndjson.gz

One batch is open per partition (the UTC hour of the envelope's `received_at`: arrival time keeps an hour's objects
contiguous; the email's own timestamp is a column). Each line is exactly the document a per-email object holds.
A batch is written when it reaches `max_bytes` (uncompressed), `max_emails`, or `max_seconds` after its first
email, whichever comes first. Lines are compressed as they arrive, so a batch holds its compressed bytes only.

`BatchedStore.store` returns only once the object holding the email is written, so the consumer deletes a
message after its email is stored, exactly as in the per-email layout; until then the message stays in flight
(the heartbeat extends it). A failed write fails every email of the batch: their messages stay in SQS and come
back. Delivery is therefore at least once: a redelivered email can land in two batches with the same `email_id`
(within one batch it is written once). Readers deduplicate by `email_id` and content (docs/design.md): a different
email under the same `email_id` (an Idempotency-Key conflict) is a line of its own and is never deduplicated away.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer

from consumer_service.metrics import ConsumerMetrics
from consumer_service.s3_store import ObjectStore, key_exists
from consumer_service.writer import StoreFailed, StoreResult
from ingest_common.aws import error_code, full_jitter_seconds
from ingest_common.envelope import Envelope

log = structlog.get_logger("consumer_service.batches")


_BACKOFF_BASE_SECONDS = 0.2
_BACKOFF_CAP_SECONDS = 5.0
_GZIP_WBITS = 31  # zlib's gzip container: the object is a plain .gz that Athena, DuckDB and gunzip read


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_bytes: int
    """Uncompressed NDJSON bytes of one batch."""
    max_emails: int
    max_seconds: float
    """From a batch's first email to its write."""
    max_held_bytes: int
    """Uncompressed bytes of every batch not yet written (open or being written): past it, `room` waits and
    the consumer receives nothing more. Counting uncompressed bytes is conservative (gzip never saves less
    than nothing, give or take its 18-byte frame), so the batches' memory stays below it."""
    max_open: int = 4
    """Open batches (partitions) at once: opening one more writes the oldest (redeliveries of older hours)."""


def partition_of(received_at: datetime) -> str:
    moment = received_at.astimezone(UTC)
    return f"dt={moment:%Y-%m-%d}/hour={moment:%H}"


def new_batch_id(opened_at: datetime) -> str:
    """Sorts by opening time within a partition, unique across consumers (a random UUID after the time)."""
    return f"{opened_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex}"


@dataclass(eq=False)
class OpenBatch:
    """One partition's batch being filled: compressed lines, the ids it holds and whom to tell when written."""

    partition: str
    batch_id: str
    opened_monotonic: float
    raw_bytes: int = 0
    emails: int = 0
    duplicates: int = 0
    _compressor: zlib._Compress = field(default_factory=lambda: zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS))
    _chunks: list[bytes] = field(default_factory=list)
    _digests: dict[str, set[str]] = field(default_factory=dict)
    """email_id -> the content digests of the lines written under it (more than one: an Idempotency-Key conflict)."""
    waiters: list[tuple[asyncio.Future[StoreResult], StoreResult]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    links: list[Link] = field(default_factory=list)
    """The process spans of the emails in the batch (tracing on): the batch write's span links to each."""

    def holds(self, email_id: str, digest: str) -> bool:
        """Whether this very email (id and content) is in the batch already."""
        return digest in self._digests.get(email_id, ())

    def holds_other(self, email_id: str, digest: str) -> bool:
        """Whether another email under the same id is in the batch (a conflict)."""
        return any(held != digest for held in self._digests.get(email_id, ()))

    def add_line(self, email_id: str, digest: str, line: bytes) -> None:
        chunk = self._compressor.compress(line)
        if chunk:
            self._chunks.append(chunk)
        self._digests.setdefault(email_id, set()).add(digest)
        self.raw_bytes += len(line)
        self.emails += 1

    def finish(self) -> bytes:
        self._chunks.append(self._compressor.flush())
        body = b"".join(self._chunks)
        self._chunks = [body]
        return body


class BatchedStore:
    """Collects emails into per-partition batches and writes each batch as one S3 object."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        key_prefix: str,
        limits: BatchLimits,
        max_attempts: int,
        metrics: ConsumerMetrics,
        monotonic: Callable[[], float] = time.monotonic,
        tracer: Tracer | None = None,
    ) -> None:
        self._objects = objects
        self._tracer = tracer
        self._prefix = key_prefix
        self._limits = limits
        self._max_attempts = max_attempts
        self._metrics = metrics.batches
        self._stored = metrics.stored
        self._conflicts = metrics.idempotency_conflicts
        self._failures = metrics.failures
        self._monotonic = monotonic
        self._open: dict[str, OpenBatch] = {}
        self._writes: dict[asyncio.Task[None], OpenBatch] = {}
        self._closed = False

    def _held(self) -> list[OpenBatch]:
        return [*self._open.values(), *self._writes.values()]

    @property
    def emails_held(self) -> int:
        """Emails whose batch is not written yet (open, or being written)."""
        return sum(batch.emails + batch.duplicates for batch in self._held())

    @property
    def bytes_held(self) -> int:
        return sum(batch.raw_bytes for batch in self._held())

    async def room(self) -> None:
        """Returns once the batches not yet written hold less than `max_held_bytes`; the consumer waits here
        before each receive. When only open batches fill the room, the oldest is written to make some."""
        while self.bytes_held >= self._limits.max_held_bytes:
            if not self._writes:
                oldest = min(self._open.values(), key=lambda open_batch: open_batch.opened_monotonic)
                self._seal(oldest, "max_held_bytes")
            await asyncio.wait(set(self._writes), return_when=asyncio.FIRST_COMPLETED)

    async def store(self, envelope: Envelope) -> StoreResult:
        """`add`, then wait for the write. Raises StoreFailed when the write failed (keep the message)."""
        return await self.add(envelope)

    def add(self, envelope: Envelope) -> asyncio.Future[StoreResult]:
        """Adds the email to its partition's batch; the future resolves once that batch's object is written.

        The line is compressed at once and the envelope is not kept, so a caller that drops its own references
        while it waits holds only the compressed bytes: that is what bounds the consumer's memory.
        """
        if self._closed:
            raise StoreFailed("the batched store is closed")
        line = envelope.stored_object() + b"\n"
        partition = partition_of(envelope.received_at)
        batch = self._open.get(partition)
        if batch is not None and batch.emails and batch.raw_bytes + len(line) > self._limits.max_bytes:
            self._seal(batch, "max_bytes")
            batch = None
        if batch is None:
            batch = self._open_batch(partition)
        written: asyncio.Future[StoreResult] = asyncio.get_running_loop().create_future()
        digest = envelope.content_digest()
        if batch.holds(envelope.email_id, digest):
            # A redelivery or an Idempotency-Key retry within the batch: one line, both messages deleted after it.
            batch.duplicates += 1
            self._metrics.duplicates_in_batch.inc()
            batch.waiters.append((written, StoreResult.ALREADY_STORED))
        elif batch.holds_other(envelope.email_id, digest):
            # Another email under this id (one client, one Idempotency-Key, two emails): a line of its own, never
            # dropped as a duplicate. Readers deduplicate by id and content, so both lines stay (docs/design.md).
            batch.add_line(envelope.email_id, digest, line)
            batch.waiters.append((written, StoreResult.CONFLICT_STORED))
            self._conflicts.inc()
            log.warning(
                "idempotency_conflict",
                email_id=envelope.email_id,
                client=envelope.client,
                request_id=envelope.request_id,
                batch_id=batch.batch_id,
            )
        else:
            batch.add_line(envelope.email_id, digest, line)
            batch.waiters.append((written, StoreResult.CREATED))
        if self._tracer is not None:
            email_span = trace.get_current_span().get_span_context()
            if email_span.is_valid:
                batch.links.append(Link(email_span))
        self._metrics.emails_held.set(self.emails_held)
        if batch.emails >= self._limits.max_emails:
            self._seal(batch, "max_emails")
        elif batch.raw_bytes >= self._limits.max_bytes:
            self._seal(batch, "max_bytes")
        return written

    def _open_batch(self, partition: str) -> OpenBatch:
        if len(self._open) >= self._limits.max_open:
            oldest = min(self._open.values(), key=lambda open_batch: open_batch.opened_monotonic)
            self._seal(oldest, "max_open")
        batch = OpenBatch(partition, new_batch_id(datetime.now(UTC)), self._monotonic())
        # An empty context: the write belongs to the batch, not to the email whose span is current here.
        batch.timer = asyncio.get_running_loop().call_later(
            self._limits.max_seconds, self._seal, batch, "max_seconds", context=contextvars.Context()
        )
        self._open[partition] = batch
        return batch

    def _seal(self, batch: OpenBatch, reason: str) -> None:
        """No more emails in this batch: its write starts now."""
        if self._open.get(batch.partition) is not batch:
            return  # already sealed
        del self._open[batch.partition]
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(
            self._write(batch, reason), name=f"batch-{batch.batch_id}", context=contextvars.Context()
        )
        self._writes[task] = batch
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.pop(task, None)
        self._metrics.emails_held.set(self.emails_held)

    async def _write(self, batch: OpenBatch, reason: str) -> None:
        if self._tracer is None:
            await self._write_batch(batch, reason)
            return
        # Its own trace, linked to each email's process span (the SDK keeps the first 128 links by default).
        with self._tracer.start_as_current_span(
            "write batch",
            kind=SpanKind.INTERNAL,
            links=batch.links,
            attributes={"email_ingest.batch_id": batch.batch_id, "email_ingest.batch_emails": batch.emails},
        ) as span:
            batch.links = []
            failed = await self._write_batch(batch, reason)
            if failed:
                span.set_status(Status(StatusCode.ERROR, "batch not written"))

    async def _write_batch(self, batch: OpenBatch, reason: str) -> bool:
        """Writes the batch (retrying), then answers its emails; True when it could not be written."""
        key = f"{self._prefix}{batch.partition}/{batch.batch_id}.ndjson.gz"
        body = batch.finish()
        age = self._monotonic() - batch.opened_monotonic
        failure: BaseException | None = None
        try:
            for attempt in range(1, self._max_attempts + 1):
                try:
                    await self._put(key, body)
                except Exception as exc:  # S3 refused it or the transport failed: retried, then given up
                    failure = exc
                    self._metrics.write_failures.inc()
                    log.warning(
                        "batch_write_failed",
                        key=key,
                        error=error_code(exc),
                        attempt=attempt,
                        max_attempts=self._max_attempts,
                    )
                    if attempt < self._max_attempts:
                        await asyncio.sleep(
                            full_jitter_seconds(attempt, base=_BACKOFF_BASE_SECONDS, cap=_BACKOFF_CAP_SECONDS)
                        )
                    continue
                failure = None
                break
        except asyncio.CancelledError as exc:
            failure = exc
            raise
        finally:
            self._settle(batch, key, body, age=age, reason=reason, failure=failure)
        return failure is not None

    async def _put(self, key: str, body: bytes) -> None:
        try:
            await self._objects.put_new(key, body, content_type="application/gzip")
        except Exception as exc:
            # A batch id is unique: the object exists only if an earlier attempt of this very write got through
            # (its answer was lost), so it holds these bytes.
            if key_exists(exc):
                return
            raise

    def _settle(
        self, batch: OpenBatch, key: str, body: bytes, *, age: float, reason: str, failure: BaseException | None
    ) -> None:
        if failure is None:
            self._metrics.batches["written"].inc()
            self._metrics.batch_emails.observe(batch.emails)
            self._metrics.batch_bytes.observe(batch.raw_bytes)
            self._metrics.batch_compressed_bytes.observe(len(body))
            self._metrics.batch_age.observe(age)
            log.info(
                "batch_written",
                key=key,
                emails=batch.emails,
                duplicates=batch.duplicates,
                bytes=batch.raw_bytes,
                compressed_bytes=len(body),
                age_seconds=round(age, 3),
                reason=reason,
            )
        else:
            self._metrics.batches["failed"].inc()
            log.error("batch_not_written_messages_kept", key=key, emails=batch.emails, error=error_code(failure))
        for written, result in batch.waiters:
            if failure is None:
                self._stored["already_stored" if result is StoreResult.ALREADY_STORED else "created"].inc()
            else:
                self._failures["s3_error"].inc()
            if written.done():  # its caller was cancelled (a drain past its grace period)
                continue
            if failure is None:
                written.set_result(result)
            else:
                written.set_exception(StoreFailed(f"batch {key} was not written"))

    def seal_all(self) -> None:
        """Starts writing every open batch now (SIGTERM: what is held is written within the grace period)."""
        for batch in list(self._open.values()):
            self._seal(batch, "drain")

    async def flush(self, timeout: float) -> bool:
        """Writes every open batch now and waits up to `timeout` for all writes; True when all finished."""
        self.seal_all()
        if not self._writes:
            return True
        _, pending = await asyncio.wait(set(self._writes), timeout=max(timeout, 0.0))
        return not pending

    async def close(self, timeout: float) -> None:
        """Flushes, then cancels the writes still going: their emails' messages stay in SQS."""
        self._closed = True
        if not await self.flush(timeout):
            writes = list(self._writes)
            for task in writes:
                task.cancel()
            await asyncio.gather(*writes, return_exceptions=True)
