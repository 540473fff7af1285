"""The consumer against a real moto server process: storing, redelivery, poison, S3 outage, heartbeats."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from consumer_service.app import create_app
from devstack.bootstrap import Resources, StackNames, bootstrap, emulator_client
from devstack.emulator import MotoServer
from devstack.faultproxy import FaultProxy, Mode
from devstack.metrics_text import metric_value
from tests.aws_helpers import queue_depth, receive_all, stored_objects
from tests.support.consumer import consumer_settings_for, enqueue, envelope, wait_for, wait_until

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
Consumer = TestClient[web.Request, web.Application]


async def metrics_of(consumer: Consumer) -> str:
    return await (await consumer.get("/metrics")).text()


async def test_stores_every_email_exactly_as_sent_and_empties_the_queue(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources
) -> None:
    envelopes = [envelope(i) for i in range(500)]
    enqueue(sqs_endpoint, aws_resources.queue_url, [item.to_body() for item in envelopes])
    consumer = await aiohttp_client(create_app(consumer_settings_for(aws_resources)))
    await wait_until(
        lambda: queue_depth(sqs_endpoint, aws_resources.queue_url) == (0, 0), timeout=120, what="the queue to drain"
    )
    stored = stored_objects(aws_env, aws_resources.bucket)
    assert stored == {item.s3_key("emails/"): orjson.loads(item.stored_object()) for item in envelopes}
    s3 = emulator_client("s3", aws_env)
    head = s3.head_object(Bucket=aws_resources.bucket, Key=envelopes[0].s3_key("emails/"))
    assert head["ContentType"] == "application/json"
    metrics = await metrics_of(consumer)
    # SQS delivers at least once (moto, under this load, does redeliver a few): every email is created exactly
    # once, and every delivery, first or repeated, ends in a delete, or in a delete SQS refuses because a
    # redelivery made its receipt handle stale. Deletes are batched after a linger: wait for the last one.
    created = metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"})
    again = metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"})
    assert created == 500
    deadline = time.monotonic() + 10
    while True:
        metrics = await metrics_of(consumer)
        deleted = metric_value(metrics, "email_ingest_consumer_messages_deleted_total")
        stale = metric_value(metrics, "email_ingest_consumer_delete_failures_total", {"reason": "receipt_invalid"})
        if deleted + stale == created + again or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert deleted + stale == created + again
    assert stale <= again, "only a redelivery makes a receipt handle stale"
    assert metric_value(metrics, "email_ingest_consumer_messages_received_total") == created + again
    deletes = metric_value(metrics, "email_ingest_aws_requests_total", {"operation": "DeleteMessageBatch"})
    assert deletes <= 500 / 2, f"{deletes} DeleteMessageBatch calls for 500 messages: deletes are not batched"
    assert (await consumer.get("/readyz")).status == 200


async def test_redelivery_of_a_stored_email_deletes_without_overwriting(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources
) -> None:
    item = envelope(1)
    s3 = emulator_client("s3", aws_env)
    # An earlier delivery stored the email, then died before its delete.
    s3.put_object(Bucket=aws_resources.bucket, Key=item.s3_key("emails/"), Body=b'{"marker": "first write"}')
    enqueue(sqs_endpoint, aws_resources.queue_url, [item.to_body()])
    consumer = await aiohttp_client(create_app(consumer_settings_for(aws_resources)))
    await wait_until(
        lambda: queue_depth(sqs_endpoint, aws_resources.queue_url) == (0, 0), timeout=30, what="the delete"
    )
    body = s3.get_object(Bucket=aws_resources.bucket, Key=item.s3_key("emails/"))["Body"].read()
    assert body == b'{"marker": "first write"}', "a redelivery must never overwrite"
    metrics = await metrics_of(consumer)
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"}) == 1
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 0
    assert metric_value(metrics, "email_ingest_consumer_messages_deleted_total") == 1


@pytest.fixture
def fast_redrive_resources(
    moto_server: MotoServer, sqs_endpoint: str, stack_names: StackNames, api_token: str
) -> Resources:
    names = dataclasses.replace(stack_names, max_receive_count=2, visibility_timeout_seconds=2)
    return bootstrap(moto_server.endpoint_url, api_token, names, sqs_endpoint_url=sqs_endpoint)


async def test_poison_goes_to_the_dlq_through_the_redrive_policy_without_blocking(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, fast_redrive_resources: Resources
) -> None:
    resources = fast_redrive_resources
    good = [envelope(i) for i in range(5)]
    bad_version = orjson.dumps({**orjson.loads(good[0].to_body()), "v": 99}).decode()
    bad_email = orjson.dumps({**orjson.loads(good[0].to_body()), "email": {"email_subject": ""}}).decode()
    poison = ["not json at all", bad_version, bad_email]
    enqueue(sqs_endpoint, resources.queue_url, [poison[0], *(item.to_body() for item in good), poison[1], poison[2]])
    consumer = await aiohttp_client(create_app(consumer_settings_for(resources, poison_retry_window_seconds=2)))
    await wait_until(lambda: len(stored_objects(aws_env, resources.bucket)) == 5, timeout=30, what="the good emails")
    await wait_until(
        lambda: queue_depth(sqs_endpoint, resources.dead_letter_queue_url)[0] == 3,
        timeout=60,
        what="the poison to reach the DLQ",
    )
    assert queue_depth(sqs_endpoint, resources.queue_url) == (0, 0)
    in_dlq = receive_all(sqs_endpoint, resources.dead_letter_queue_url, expected=3)
    assert sorted(message["Body"] for message in in_dlq) == sorted(poison)
    metrics = await metrics_of(consumer)
    for reason in ("invalid_json", "unsupported_version", "invalid_envelope"):
        assert metric_value(metrics, "email_ingest_consumer_poison_messages_total", {"reason": reason}) >= 1
    assert metric_value(metrics, "email_ingest_consumer_messages_deleted_total") == 5


async def test_poison_stays_in_the_queue_for_the_retry_window_then_reaches_the_dlq(
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    moto_server: MotoServer,
    stack_names: StackNames,
    api_token: str,
) -> None:
    """A newer API's envelope, which only a newer consumer can read, outlasts a rolling deploy of that length."""
    names = dataclasses.replace(stack_names, max_receive_count=3, visibility_timeout_seconds=2)
    resources = bootstrap(moto_server.endpoint_url, api_token, names, sqs_endpoint_url=sqs_endpoint)
    window = 12  # delays 4 s and 8 s after the first two receives, then 8 s: the DLQ after about 20 s
    newer_version = orjson.dumps({**orjson.loads(envelope(1).to_body()), "v": 3}).decode()
    enqueue(sqs_endpoint, resources.queue_url, [newer_version])
    started = time.monotonic()
    consumer = await aiohttp_client(create_app(consumer_settings_for(resources, poison_retry_window_seconds=window)))
    # Until the window has passed since the first receive (which is after `started`), it is in the main queue.
    while time.monotonic() - started < window - 0.5:
        main = await asyncio.to_thread(queue_depth, sqs_endpoint, resources.queue_url)
        dead = await asyncio.to_thread(queue_depth, sqs_endpoint, resources.dead_letter_queue_url)
        assert dead == (0, 0), f"in the DLQ {time.monotonic() - started:.1f} s after the start, before the window"
        assert sum(main) == 1
        await asyncio.sleep(0.25)
    await wait_until(
        lambda: queue_depth(sqs_endpoint, resources.dead_letter_queue_url)[0] == 1,
        timeout=30,
        what="the poison to reach the DLQ after the window",
    )
    assert time.monotonic() - started >= window
    assert queue_depth(sqs_endpoint, resources.queue_url) == (0, 0)
    [dead_letter] = receive_all(sqs_endpoint, resources.dead_letter_queue_url, expected=1)
    assert dead_letter["Body"] == newer_version, "kept as it was sent"
    metrics = await metrics_of(consumer)
    rejected = metric_value(metrics, "email_ingest_consumer_poison_messages_total", {"reason": "unsupported_version"})
    assert rejected == 3, "delivered maxReceiveCount times, then moved by SQS"
    assert metric_value(metrics, "email_ingest_consumer_messages_deleted_total") == 0


async def test_s3_outage_deletes_nothing_and_stores_everything_after_recovery(
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    moto_server: MotoServer,
    stack_names: StackNames,
    api_token: str,
) -> None:
    names = dataclasses.replace(stack_names, visibility_timeout_seconds=2, max_receive_count=50)
    resources = bootstrap(moto_server.endpoint_url, api_token, names, sqs_endpoint_url=sqs_endpoint)
    s3 = emulator_client("s3", aws_env)
    s3.delete_bucket(Bucket=resources.bucket)  # S3 fails: NoSuchBucket on every put
    envelopes = [envelope(i) for i in range(8)]
    enqueue(sqs_endpoint, resources.queue_url, [item.to_body() for item in envelopes])
    consumer = await aiohttp_client(create_app(consumer_settings_for(resources, s3_max_attempts=2)))

    async def every_store_failed() -> bool:
        metrics = await metrics_of(consumer)
        return metric_value(metrics, "email_ingest_consumer_processing_failures_total", {"reason": "s3_error"}) >= 8

    await wait_for(every_store_failed, timeout=30, what="failed stores")
    assert metric_value(await metrics_of(consumer), "email_ingest_consumer_messages_deleted_total") == 0
    # Visible and in-flight counts are read one after the other, so a message whose visibility runs out in
    # between is in neither: look again for a moment. A deleted message would never come back.
    await wait_until(
        lambda: sum(queue_depth(sqs_endpoint, resources.queue_url)) == 8, timeout=5, what="all 8 still queued"
    )
    s3.create_bucket(Bucket=resources.bucket)
    await wait_until(lambda: queue_depth(sqs_endpoint, resources.queue_url) == (0, 0), timeout=60, what="recovery")
    assert set(stored_objects(aws_env, resources.bucket)) == {item.s3_key("emails/") for item in envelopes}
    assert queue_depth(sqs_endpoint, resources.dead_letter_queue_url) == (0, 0)


async def test_a_configured_visibility_timeout_longer_than_the_queues_holds_from_the_receive(
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    moto_server: MotoServer,
    stack_names: StackNames,
    api_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VISIBILITY_TIMEOUT_SECONDS=10 on a queue of 2 s: the heartbeat first extends at 5 s, so through a store of
    3 s or more only the receive itself can keep the message hidden."""
    names = dataclasses.replace(stack_names, visibility_timeout_seconds=2)
    resources = bootstrap(moto_server.endpoint_url, api_token, names, sqs_endpoint_url=sqs_endpoint)
    item = envelope(1)
    enqueue(sqs_endpoint, resources.queue_url, [item.to_body()])
    with FaultProxy.for_url(aws_env, name="slow-s3") as slow_s3:
        slow_s3.set_mode(Mode.LATENCY, latency=1.5)  # each way: a PutObject takes 3 s or more
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", slow_s3.endpoint_url)
        consumer = await aiohttp_client(create_app(consumer_settings_for(resources, visibility_timeout_seconds=10)))
        await wait_until(
            lambda: queue_depth(sqs_endpoint, resources.queue_url) == (0, 0), timeout=30, what="the slow store"
        )
        metrics = await metrics_of(consumer)
    assert metric_value(metrics, "email_ingest_consumer_messages_received_total") == 1, "received twice"
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 1
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"}) == 0
    assert set(stored_objects(aws_env, resources.bucket)) == {item.s3_key("emails/")}


async def test_queue_depth_metrics_cover_the_queue_and_its_dlq(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources
) -> None:
    enqueue(sqs_endpoint, aws_resources.dead_letter_queue_url, ["dead"] * 3)
    consumer = await aiohttp_client(create_app(consumer_settings_for(aws_resources)))
    for _ in range(40):
        metrics = await metrics_of(consumer)
        dlq_seen = metric_value(metrics, "email_ingest_queue_messages", {"queue": "dlq", "state": "visible"}) == 3
        if dlq_seen and metric_value(metrics, "email_ingest_consumer_receives_total", {"result": "empty"}) >= 1:
            break
        await asyncio.sleep(0.25)
    assert metric_value(metrics, "email_ingest_queue_messages", {"queue": "dlq", "state": "visible"}) == 3
    assert metric_value(metrics, "email_ingest_queue_messages", {"queue": "main", "state": "visible"}) == 0
    assert metric_value(metrics, "email_ingest_consumer_receives_total", {"result": "empty"}) >= 1
