"""The batched layout's store, with an in-process object writer (the S3 path is covered end to end elsewhere)."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import re
import tracemalloc
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from consumer_service.batches import BatchedStore, BatchLimits, partition_of
from consumer_service.metrics import ConsumerMetrics
from consumer_service.writer import StoreFailed, StoreResult
from ingest_common.email import Email
from ingest_common.envelope import Envelope

HOUR = datetime(2026, 11, 27, 20, 15, 0, tzinfo=UTC)
KEY = re.compile(r"batches/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/\d{8}T\d{6}Z-[0-9a-f]{32}\.ndjson\.gz")


def envelope(*, email_id: str | None = None, received_at: datetime = HOUR, content: str = "hello") -> Envelope:
    return Envelope(
        email_id=email_id or str(uuid.uuid4()),
        received_at=received_at,
        request_id="req",
        email=Email(subject="s", sender="a@example.com", timestream=1_795_811_024, content=content),
    )


class FakeObjects:
    """Records puts; fails the first `failures` of them; `gate` (when set) holds every put until released."""

    def __init__(self, failures: int = 0) -> None:
        self.objects: dict[str, bytes] = {}
        self.failures = failures
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    async def put_new(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        assert content_type == "application/gzip"
        self.attempts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("S3 is down")
        self.objects[key] = body

    async def metadata(self, key: str) -> Mapping[str, str]:
        raise AssertionError("the batched layout never reads an object back")

    def lines(self, key: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in gzip.decompress(self.objects[key]).splitlines()]


def make_store(
    objects: FakeObjects,
    *,
    max_bytes: int = 1 << 20,
    max_emails: int = 1000,
    max_seconds: float = 60.0,
    max_open: int = 4,
    max_held_bytes: int = 64 << 20,
    max_attempts: int = 3,
) -> tuple[BatchedStore, CollectorRegistry]:
    registry = CollectorRegistry()
    store = BatchedStore(
        objects,
        key_prefix="batches/",
        limits=BatchLimits(
            max_bytes=max_bytes,
            max_emails=max_emails,
            max_seconds=max_seconds,
            max_held_bytes=max_held_bytes,
            max_open=max_open,
        ),
        max_attempts=max_attempts,
        metrics=ConsumerMetrics(registry),
    )
    return store, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_partition_is_the_utc_hour_of_arrival() -> None:
    assert partition_of(HOUR) == "dt=2026-11-27/hour=20"
    later = datetime(2026, 11, 28, 1, 30, tzinfo=UTC).astimezone(tz=None)
    assert partition_of(later) == "dt=2026-11-28/hour=01"


async def test_a_full_batch_is_one_gzip_object_of_the_per_email_documents() -> None:
    objects = FakeObjects()
    store, registry = make_store(objects, max_emails=3)
    emails = [envelope(content=f"body {n}\nwith a line break") for n in range(3)]
    results = await asyncio.gather(*(store.store(item) for item in emails))
    assert results == [StoreResult.CREATED] * 3
    (key,) = objects.objects
    match = KEY.fullmatch(key)
    assert match is not None and match.groups() == ("2026-11-27", "20")
    assert objects.lines(key) == [json.loads(item.stored_object()) for item in emails]
    assert gzip.decompress(objects.objects[key]) == b"".join(item.stored_object() + b"\n" for item in emails)
    assert sample(registry, "email_ingest_consumer_batches_total", result="written") == 1
    assert sample(registry, "email_ingest_consumer_batch_emails_sum") == 3
    assert sample(registry, "email_ingest_consumer_batch_emails_held") == 0
    assert sample(registry, "email_ingest_consumer_emails_stored_total", result="created") == 3


async def test_each_line_names_the_client_that_sent_the_email() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_emails=3)
    emails = [dataclasses.replace(envelope(), client=client) for client in ("acme", "globex")] + [envelope()]
    await asyncio.gather(*(store.store(item) for item in emails))
    (key,) = objects.objects
    assert [line.get("client") for line in objects.lines(key)] == ["acme", "globex", None]


async def test_store_returns_only_after_the_batch_is_written() -> None:
    objects = FakeObjects()
    store, registry = make_store(objects, max_emails=2)
    first = asyncio.create_task(store.store(envelope()))
    await asyncio.sleep(0)
    assert not first.done() and not objects.objects
    assert sample(registry, "email_ingest_consumer_batch_emails_held") == 1
    await store.store(envelope())
    assert await first is StoreResult.CREATED
    assert len(objects.objects) == 1


async def test_emails_of_different_hours_go_to_different_partitions() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_seconds=0.05)
    await asyncio.gather(store.store(envelope()), store.store(envelope(received_at=HOUR + timedelta(hours=1))))
    partitions = sorted(KEY.fullmatch(key).groups() for key in objects.objects)  # type: ignore[union-attr]
    assert partitions == [("2026-11-27", "20"), ("2026-11-27", "21")]


async def test_a_batch_is_written_max_seconds_after_its_first_email() -> None:
    objects = FakeObjects()
    store, registry = make_store(objects, max_seconds=0.05)
    assert await asyncio.wait_for(store.store(envelope()), timeout=5) is StoreResult.CREATED
    assert len(objects.objects) == 1
    assert 0.05 <= sample(registry, "email_ingest_consumer_batch_age_seconds_sum") < 5


async def test_an_email_that_would_pass_max_bytes_goes_to_the_next_batch() -> None:
    objects = FakeObjects()
    one = len(envelope(content="x" * 100).stored_object()) + 1
    store, _ = make_store(objects, max_bytes=2 * one + one // 2, max_seconds=0.05)
    await asyncio.gather(*(store.store(envelope(content="x" * 100)) for _ in range(3)))
    sizes = sorted(len(gzip.decompress(body)) for body in objects.objects.values())
    assert sizes == [one, 2 * one]


async def test_an_email_larger_than_max_bytes_is_written_alone() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_bytes=50)
    assert await store.store(envelope(content="y" * 500)) is StoreResult.CREATED
    (key,) = objects.objects
    assert len(objects.lines(key)) == 1


async def test_a_duplicate_email_id_in_an_open_batch_is_written_once() -> None:
    objects = FakeObjects()
    store, registry = make_store(objects, max_seconds=0.05)
    email_id = str(uuid.uuid4())
    results = await asyncio.gather(store.store(envelope(email_id=email_id)), store.store(envelope(email_id=email_id)))
    assert list(results) == [StoreResult.CREATED, StoreResult.ALREADY_STORED]
    (key,) = objects.objects
    assert [line["email_id"] for line in objects.lines(key)] == [email_id]
    assert sample(registry, "email_ingest_consumer_batch_duplicates_total") == 1
    assert sample(registry, "email_ingest_consumer_emails_stored_total", result="already_stored") == 1


async def test_another_email_under_an_email_id_in_the_batch_is_a_line_of_its_own_and_counted() -> None:
    """One client, one Idempotency-Key, two emails: the second is not a duplicate, so it is never dropped."""
    objects = FakeObjects()
    store, registry = make_store(objects, max_seconds=0.05)
    email_id = str(uuid.uuid4())
    results = await asyncio.gather(
        store.store(envelope(email_id=email_id, content="first")),
        store.store(envelope(email_id=email_id, content="second")),
        store.store(envelope(email_id=email_id, content="second")),  # the conflict's own redelivery
    )
    assert list(results) == [StoreResult.CREATED, StoreResult.CONFLICT_STORED, StoreResult.ALREADY_STORED]
    (key,) = objects.objects
    assert [(line["email_id"], line["email_content"]) for line in objects.lines(key)] == [
        (email_id, "first"),
        (email_id, "second"),
    ]
    assert sample(registry, "email_ingest_consumer_idempotency_conflicts_total") == 1
    assert sample(registry, "email_ingest_consumer_batch_duplicates_total") == 1
    assert sample(registry, "email_ingest_consumer_emails_stored_total", result="created") == 2


async def test_a_write_that_fails_every_attempt_fails_every_email_of_the_batch() -> None:
    objects = FakeObjects(failures=3)
    store, registry = make_store(objects, max_emails=2, max_attempts=3)
    results = await asyncio.gather(store.store(envelope()), store.store(envelope()), return_exceptions=True)
    assert all(isinstance(result, StoreFailed) for result in results)
    assert objects.attempts == 3 and not objects.objects
    assert sample(registry, "email_ingest_consumer_batches_total", result="failed") == 1
    assert sample(registry, "email_ingest_consumer_batch_write_failures_total") == 3
    assert sample(registry, "email_ingest_consumer_processing_failures_total", reason="s3_error") == 2


async def test_a_write_that_fails_once_is_retried() -> None:
    objects = FakeObjects(failures=1)
    store, registry = make_store(objects, max_emails=1)
    assert await store.store(envelope()) is StoreResult.CREATED
    assert objects.attempts == 2 and len(objects.objects) == 1
    assert sample(registry, "email_ingest_consumer_batches_total", result="written") == 1


async def test_opening_one_batch_too_many_writes_the_oldest() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_open=2)
    first = asyncio.create_task(store.store(envelope(received_at=HOUR)))
    second = asyncio.create_task(store.store(envelope(received_at=HOUR - timedelta(hours=5))))
    await asyncio.sleep(0)
    assert not objects.objects
    third = asyncio.create_task(store.store(envelope(received_at=HOUR - timedelta(hours=9))))
    assert await first is StoreResult.CREATED  # the oldest open batch, written to make room
    assert not second.done() and not third.done()
    assert await store.flush(timeout=5)
    await asyncio.gather(second, third)
    assert len(objects.objects) == 3


async def test_flush_writes_every_open_batch_at_once() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects)
    waiting = [asyncio.create_task(store.store(envelope())) for _ in range(5)]
    await asyncio.sleep(0)
    assert await store.flush(timeout=5)
    assert [task.result() for task in waiting] == [StoreResult.CREATED] * 5
    (key,) = objects.objects
    assert len(objects.lines(key)) == 5


async def test_close_cancels_a_write_past_the_grace_period_and_keeps_its_messages() -> None:
    objects = FakeObjects()
    objects.gate = asyncio.Event()  # S3 never answers
    store, _ = make_store(objects)
    waiting = asyncio.create_task(store.store(envelope()))
    await asyncio.sleep(0)
    await store.close(timeout=0.05)
    with pytest.raises(StoreFailed):
        await waiting
    assert not objects.objects
    with pytest.raises(StoreFailed, match="closed"):
        await store.store(envelope())


async def test_a_batch_holds_compressed_bytes_not_the_raw_emails() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_bytes=64 << 20, max_emails=100_000, max_held_bytes=1 << 30)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        content = "Dear team, the quarterly figures are attached. " * 200  # ~9 kB, compressible like mail
        waiting = [store.add(envelope(content=content)) for _ in range(2_000)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    raw = 2_000 * len(envelope(content=content).stored_object())
    assert store.emails_held == 2_000
    # The callers keep only their futures: the ~19 MB of lines must not be held as they are.
    assert held - before < raw / 2
    assert await store.flush(timeout=30)
    await asyncio.gather(*waiting)


async def test_room_is_free_below_the_held_bytes_limit() -> None:
    objects = FakeObjects()
    store, _ = make_store(objects, max_held_bytes=1 << 20)
    written = store.add(envelope())
    await asyncio.wait_for(store.room(), timeout=1)
    assert not written.done() and not objects.objects
    assert await store.flush(timeout=5)


async def test_room_writes_the_oldest_batch_and_waits_for_it_when_the_limit_is_reached() -> None:
    objects = FakeObjects()
    objects.gate = asyncio.Event()
    line = len(envelope(content="z" * 1000).stored_object()) + 1
    store, registry = make_store(objects, max_held_bytes=3 * line)
    older = store.add(envelope(content="z" * 1000, received_at=HOUR - timedelta(hours=1)))
    newer = [store.add(envelope(content="z" * 1000)) for _ in range(2)]
    assert store.bytes_held == 3 * line
    room = asyncio.create_task(store.room())
    await asyncio.sleep(0.01)
    assert not room.done()  # the older batch is being written, S3 has not answered
    assert objects.attempts == 1 and sample(registry, "email_ingest_consumer_batch_emails_held") == 3
    objects.gate.set()
    await asyncio.wait_for(room, timeout=5)
    assert older.result() is StoreResult.CREATED and not any(item.done() for item in newer)
    assert store.bytes_held == 2 * line
    assert await store.flush(timeout=5)
