"""The per-email writer on a fake S3: a 412 told apart as a redelivery (same email) or an Idempotency-Key conflict
(another email under the same id), which is stored beside the first, never dropped."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from prometheus_client import CollectorRegistry

from consumer_service.metrics import ConsumerMetrics
from consumer_service.writer import DIGEST_METADATA, REQUEST_ID_METADATA, S3Writer, StoreFailed, StoreResult
from ingest_common.email import Email
from tests.support.consumer import envelope
from tests.support.fakes import FakeStore


def make_writer(store: FakeStore, max_attempts: int = 3) -> tuple[S3Writer, CollectorRegistry]:
    registry = CollectorRegistry()
    writer = S3Writer(store, key_prefix="emails/", max_attempts=max_attempts, metrics=ConsumerMetrics(registry))
    return writer, registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_the_same_email_twice_is_one_object() -> None:
    store = FakeStore()
    writer, registry = make_writer(store)
    email = envelope(1)
    retry = dataclasses.replace(email, request_id="req-retry")  # a client's retry: another request, same email
    assert await writer.store(email) is StoreResult.CREATED
    assert await writer.store(retry) is StoreResult.ALREADY_STORED
    assert list(store.objects) == [email.s3_key("emails/")]
    assert store.object_metadata[email.s3_key("emails/")] == {
        DIGEST_METADATA: email.content_digest(),
        REQUEST_ID_METADATA: "req-1",
    }
    assert sample(registry, "email_ingest_consumer_idempotency_conflicts_total") == 0
    assert sample(registry, "email_ingest_consumer_emails_stored_total", result="already_stored") == 1


async def test_another_email_under_the_same_id_is_stored_beside_the_first_and_counted() -> None:
    store = FakeStore()
    writer, registry = make_writer(store)
    first = envelope(1)
    other = dataclasses.replace(
        first, request_id="req-other", email=dataclasses.replace(first.email, content="a different email")
    )
    assert await writer.store(first) is StoreResult.CREATED
    assert await writer.store(other) is StoreResult.CONFLICT_STORED
    assert await writer.store(other) is StoreResult.ALREADY_STORED, "the conflict's redelivery"
    assert set(store.objects) == {first.s3_key("emails/"), other.conflict_s3_key("emails/")}
    assert orjson.loads(store.objects[other.conflict_s3_key("emails/")])["email_content"] == "a different email"
    assert orjson.loads(store.objects[first.s3_key("emails/")])["email_content"] == first.email.content
    assert sample(registry, "email_ingest_consumer_idempotency_conflicts_total") == 1, "counted once"
    assert sample(registry, "email_ingest_consumer_emails_stored_total", result="created") == 2


async def test_a_different_client_is_a_different_email() -> None:
    store = FakeStore()
    writer, registry = make_writer(store)
    email = dataclasses.replace(envelope(1), client="shop")
    assert await writer.store(email) is StoreResult.CREATED
    assert await writer.store(dataclasses.replace(email, client="billing")) is StoreResult.CONFLICT_STORED
    assert sample(registry, "email_ingest_consumer_idempotency_conflicts_total") == 1


async def test_an_object_without_a_digest_is_taken_for_a_redelivery() -> None:
    """Objects written before digests were stored: only a redelivery can reach them (ids are new since)."""
    store = FakeStore()
    writer, registry = make_writer(store)
    email = envelope(1)
    store.objects[email.s3_key("emails/")] = b"stored by an older consumer"
    assert await writer.store(email) is StoreResult.ALREADY_STORED
    assert sample(registry, "email_ingest_consumer_idempotency_conflicts_total") == 0


async def test_a_failing_head_is_retried_then_fails_the_store_keeping_the_message() -> None:
    store = FakeStore()
    writer, registry = make_writer(store, max_attempts=2)
    email = envelope(1)
    await writer.store(email)
    store.failing_heads = 1
    assert await writer.store(email) is StoreResult.ALREADY_STORED, "one failed HeadObject, then the answer"
    store.failing_heads = 2
    with pytest.raises(StoreFailed):
        await writer.store(email)
    failed_attempts = sum(
        sample(registry, "email_ingest_consumer_processing_failures_total", reason=reason)
        for reason in ("s3_error", "s3_throttled")
    )
    assert failed_attempts == 3, "each failed HeadObject is a failed attempt"


def test_the_digest_covers_the_client_and_the_four_fields_only() -> None:
    email = envelope(1)
    same = dataclasses.replace(email, email_id="another-id", request_id="another-request", traceparent=None)
    assert same.content_digest() == email.content_digest()
    for changed in (
        dataclasses.replace(email, client="shop"),
        dataclasses.replace(
            email, email=Email("other", email.email.sender, email.email.timestream, email.email.content)
        ),
        dataclasses.replace(email, email=dataclasses.replace(email.email, sender="other")),
        dataclasses.replace(email, email=dataclasses.replace(email.email, timestream=email.email.timestream + 1)),
        dataclasses.replace(email, email=dataclasses.replace(email.email, content="other")),
    ):
        assert changed.content_digest() != email.content_digest()
