"""The consumer's spans in-process on fakes: a process span per message, child of and linked to the producer's
context (envelope field first, message attribute second), with the S3 put and the delete as its children; a
redelivery is a second process span linked to the same producer."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from botocore.exceptions import ClientError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from consumer_service.app import create_app
from consumer_service.config import ConsumerSettings
from consumer_service.keys import TRACER
from consumer_service.s3_store import S3Store
from ingest_common.aws import AwsCallMetrics
from ingest_common.envelope import pack_body, parse_message
from tests.support.consumer import envelope, wait_for
from tests.support.fakes import FakeQueue
from tests.support.spans import RecordedSpans

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
SETTINGS = ConsumerSettings(
    region="us-east-1",
    queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/emails",
    bucket="emails",
    s3_max_attempts=1,
)
PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_PRODUCER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeS3Client:
    """put_object as aiobotocore's S3 client answers it: the first `failures` calls fail with a 500."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.keys: list[str] = []

    async def put_object(self, **kwargs: Any) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            response: Any = {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
            raise ClientError(response, "PutObject")
        self.keys.append(kwargs["Key"])
        return {}


def message(message_id: str, body: str, traceparent: str | None, receive_count: int = 1) -> dict[str, Any]:
    attributes = {"traceparent": {"DataType": "String", "StringValue": traceparent}} if traceparent else {}
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"receipt-{message_id}-{receive_count}",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(receive_count)},
        "MessageAttributes": attributes,
    }


async def consume(
    aiohttp_client: ClientFactory, messages: list[dict[str, Any]], s3: FakeS3Client, recorded: RecordedSpans
) -> FakeQueue:
    queue = FakeQueue(messages)
    store = S3Store(s3, SETTINGS.bucket, AwsCallMetrics(CollectorRegistry(), tracer=recorded.tracer))  # type: ignore[arg-type]
    app = create_app(SETTINGS, queue=queue, store=store)
    app[TRACER] = recorded.tracer  # what the tracing cleanup context sets when OTEL_* turns tracing on
    await aiohttp_client(app)

    async def processed() -> bool:
        return len(recorded.named("process emails")) == len(messages) == len(queue.deleted)

    await wait_for(processed, timeout=10, what="every message processed")
    return queue


def ids(traceparent: str) -> tuple[int, int]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def assert_child_and_linked(span: ReadableSpan, traceparent: str) -> None:
    trace_id, span_id = ids(traceparent)
    assert span.context.trace_id == trace_id
    assert span.parent is not None and (span.parent.trace_id, span.parent.span_id) == (trace_id, span_id)
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(trace_id, span_id)]


async def test_a_stored_email_is_a_process_span_of_the_producers_trace_with_put_and_delete_as_children(
    aiohttp_client: ClientFactory,
) -> None:
    recorded, s3 = RecordedSpans(), FakeS3Client()
    item = envelope(1)
    queue = await consume(aiohttp_client, [message("m1", item.to_body(), PRODUCER)], s3, recorded)
    assert queue.deleted == ["receipt-m1-1"]
    [process] = recorded.named("process emails")
    assert process.kind is SpanKind.CONSUMER
    assert_child_and_linked(process, PRODUCER)
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == "m1"
    assert process.attributes["email_ingest.email_id"] == item.email_id
    [put] = recorded.named("S3.PutObject")
    [delete] = recorded.named("SQS.DeleteMessageBatch")
    for child in (put, delete):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None and child.parent.span_id == process.context.span_id


async def test_the_envelopes_traceparent_comes_before_the_attribute(aiohttp_client: ClientFactory) -> None:
    recorded = RecordedSpans()
    item = dataclasses.replace(envelope(2), traceparent=PRODUCER)
    await consume(aiohttp_client, [message("m1", item.to_body(), OTHER_PRODUCER)], FakeS3Client(), recorded)
    [process] = recorded.named("process emails")
    assert_child_and_linked(process, PRODUCER)


async def test_without_a_producer_context_the_process_span_starts_a_trace(aiohttp_client: ClientFactory) -> None:
    recorded = RecordedSpans()
    await consume(aiohttp_client, [message("m1", envelope(3).to_body(), None)], FakeS3Client(), recorded)
    [process] = recorded.named("process emails")
    assert process.parent is None
    assert process.links == ()


async def test_a_redelivered_message_is_a_second_process_span_linked_to_the_same_producer(
    aiohttp_client: ClientFactory,
) -> None:
    """The first delivery's put fails (the message is kept: an error span), the second stores it."""
    recorded, s3 = RecordedSpans(), FakeS3Client(failures=1)
    body = envelope(4).to_body()
    first = message("m1", body, PRODUCER, receive_count=1)
    second = message("m1", body, PRODUCER, receive_count=2)
    queue = FakeQueue([first])
    store = S3Store(s3, SETTINGS.bucket, AwsCallMetrics(CollectorRegistry(), tracer=recorded.tracer))  # type: ignore[arg-type]
    app = create_app(SETTINGS, queue=queue, store=store)
    app[TRACER] = recorded.tracer
    await aiohttp_client(app)

    async def first_processed() -> bool:
        return len(recorded.named("process emails")) == 1

    await wait_for(first_processed, timeout=10, what="the first delivery")
    queue._messages.append(second)  # SQS hands it out again after its visibility timeout

    async def redelivered_and_deleted() -> bool:
        return queue.deleted == ["receipt-m1-2"]

    await wait_for(redelivered_and_deleted, timeout=10, what="the redelivery stored and deleted")
    failed, stored = sorted(
        recorded.named("process emails"),
        key=lambda span: str(dict(span.attributes or {})["messaging.message.delivery_count"]),
    )
    assert failed.status.status_code is StatusCode.ERROR
    assert stored.status.status_code is StatusCode.UNSET
    for span in (failed, stored):
        assert_child_and_linked(span, PRODUCER)
    assert failed.context.span_id != stored.context.span_id
    assert s3.keys == [parse_message(body).envelopes[0].s3_key(SETTINGS.key_prefix)]


async def test_a_batch_write_is_its_own_span_linked_to_each_emails_process_span(aiohttp_client: ClientFactory) -> None:
    recorded, s3 = RecordedSpans(), FakeS3Client()
    settings = dataclasses.replace(SETTINGS, storage_layout="batched", batch_max_seconds=0.2)
    bodies = [envelope(10 + index).to_body() for index in range(3)]
    queue = FakeQueue([message(f"m{index}", body, PRODUCER) for index, body in enumerate(bodies)])
    store = S3Store(s3, settings.bucket, AwsCallMetrics(CollectorRegistry(), tracer=recorded.tracer))  # type: ignore[arg-type]
    app = create_app(settings, queue=queue, store=store)
    app[TRACER] = recorded.tracer
    await aiohttp_client(app)

    async def deleted() -> bool:
        return len(queue.deleted) == 3 and len(recorded.named("process emails")) == 3

    await wait_for(deleted, timeout=10, what="the batch written and its messages deleted")
    [write] = recorded.named("write batch")
    [put] = recorded.named("S3.PutObject")
    processes = recorded.named("process emails")
    assert write.parent is None, "the batch's own trace, not one email's"
    assert put.parent is not None and put.parent.span_id == write.context.span_id
    assert {link.context.span_id for link in write.links} == {process.context.span_id for process in processes}
    for process in processes:
        assert_child_and_linked(process, PRODUCER)


async def test_a_packed_message_links_to_each_emails_producer_and_has_no_parent(aiohttp_client: ClientFactory) -> None:
    """One receive is not the child of one producer: a pack's process span links to every email's publish span."""
    recorded = RecordedSpans()
    items = [
        dataclasses.replace(envelope(20), traceparent=PRODUCER),
        dataclasses.replace(envelope(21), traceparent=OTHER_PRODUCER),
        envelope(22),  # published untraced: nothing to link
    ]
    body = pack_body([item.to_item() for item in items])
    s3 = FakeS3Client()
    await consume(aiohttp_client, [message("m1", body, None)], s3, recorded)
    [process] = recorded.named("process emails")
    assert process.parent is None
    assert {(link.context.trace_id, link.context.span_id) for link in process.links} == {
        ids(PRODUCER),
        ids(OTHER_PRODUCER),
    }
    assert process.attributes is not None and process.attributes["messaging.batch.message_count"] == 3
    assert len(recorded.named("S3.PutObject")) == 3 and len(s3.keys) == 3
