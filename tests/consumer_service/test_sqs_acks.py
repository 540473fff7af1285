"""Deletes and visibility changes against a real moto server: partial failures and heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from prometheus_client import CollectorRegistry

from consumer_service.deleter import BatchDeleter
from consumer_service.heartbeat import Heartbeat
from consumer_service.metrics import ConsumerMetrics
from devstack.bootstrap import Resources, emulator_client
from tests.aws_helpers import queue_depth


@pytest.fixture
async def sqs(aws_env: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("sqs", region_name="us-east-1") as client:
        yield client


def receive_handles(endpoint_url: str, queue_url: str, count: int) -> list[str]:
    client = emulator_client("sqs", endpoint_url)
    client.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(count)]
    )
    handles: list[str] = []
    while len(handles) < count:
        messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=2)
        handles.extend(message["ReceiptHandle"] for message in messages.get("Messages", []))
    return handles


async def test_delete_batch_partial_failure_is_reported_per_message(
    sqs_endpoint: str, sqs: Any, aws_env: str, aws_resources: Resources
) -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    queue_url = aws_resources.queue_url
    deleter = BatchDeleter(
        lambda entries: sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries), metrics=metrics
    )
    deleter.start()
    [good_a, good_b] = receive_handles(sqs_endpoint, queue_url, 2)
    results = await asyncio.gather(deleter.delete(good_a), deleter.delete("not-a-receipt"), deleter.delete(good_b))
    assert list(results) == [True, False, True]
    assert registry.get_sample_value("email_ingest_consumer_messages_deleted_total") == 2
    assert registry.get_sample_value("email_ingest_consumer_delete_failures_total", {"reason": "receipt_invalid"}) == 1
    assert queue_depth(sqs_endpoint, queue_url) == (0, 0)
    await deleter.close(1)


async def test_heartbeat_keeps_a_slow_message_invisible(
    sqs_endpoint: str, sqs: Any, aws_env: str, aws_resources: Resources
) -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    queue_url = aws_resources.queue_url
    heartbeat = Heartbeat(
        lambda entries: sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries),
        visibility_timeout_seconds=2,
        fraction=0.5,
        metrics=metrics,
    )
    [handle] = receive_handles(sqs_endpoint, queue_url, 1)
    heartbeat.start()
    heartbeat.track("m0", handle, asyncio.get_running_loop().time())
    await asyncio.sleep(4.5)  # more than twice the visibility timeout
    assert queue_depth(sqs_endpoint, queue_url) == (0, 1), "still in flight: the heartbeat extended it"
    assert (registry.get_sample_value("email_ingest_consumer_visibility_extensions_total") or 0) >= 3
    await heartbeat.release([handle])
    await heartbeat.stop()
    assert queue_depth(sqs_endpoint, queue_url) == (1, 0), "released messages are visible again at once"


async def test_without_heartbeat_the_message_comes_back(
    sqs_endpoint: str, aws_env: str, aws_resources: Resources
) -> None:
    """The control for the test above: it would fail if moto ignored visibility timeouts."""
    receive_handles(sqs_endpoint, aws_resources.queue_url, 1)
    await asyncio.sleep(2.5)
    assert queue_depth(sqs_endpoint, aws_resources.queue_url) == (1, 0)
