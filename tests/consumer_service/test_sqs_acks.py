"""Deletes and visibility changes against a real moto server: partial failures and heartbeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aioboto3
import pytest
from prometheus_client import CollectorRegistry

from consumer_service.deleter import BatchDeleter
from consumer_service.heartbeat import Heartbeat
from consumer_service.metrics import ConsumerMetrics
from devstack.bootstrap import Resources, emulator_client
from devstack.faultproxy import FaultProxy, Mode
from ingest_common.aws import client_config
from tests.aws_helpers import queue_depth
from tests.support import Cleanups
from tests.support.consumer import wait_until


@pytest.fixture
async def sqs(aws_env: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("sqs", region_name="us-east-1") as client:
        yield client


def receive_handles(endpoint_url: str, queue_url: str, count: int, *, visibility: int = 2) -> list[str]:
    client = emulator_client("sqs", endpoint_url)
    client.send_message_batch(
        QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(count)]
    )
    handles: list[str] = []
    while len(handles) < count:
        messages = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=visibility)
        handles.extend(message["ReceiptHandle"] for message in messages.get("Messages", []))
    return handles


async def test_delete_batch_partial_failure_is_reported_per_message(
    sqs_endpoint: str, sqs: Any, aws_env: str, aws_resources: Resources, cleanups: Cleanups
) -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    queue_url = aws_resources.queue_url
    deleter = BatchDeleter(
        lambda entries: sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries), metrics=metrics
    )
    deleter.start()
    cleanups.append(lambda: deleter.close(1))
    [good_a, good_b] = receive_handles(sqs_endpoint, queue_url, 2)
    results = await asyncio.gather(deleter.delete(good_a), deleter.delete("not-a-receipt"), deleter.delete(good_b))
    assert list(results) == [True, False, True]
    assert registry.get_sample_value("email_ingest_consumer_messages_deleted_total") == 2
    assert registry.get_sample_value("email_ingest_consumer_delete_failures_total", {"reason": "receipt_invalid"}) == 1
    assert queue_depth(sqs_endpoint, queue_url) == (0, 0)


async def test_heartbeat_keeps_a_slow_message_invisible(
    sqs_endpoint: str, sqs: Any, aws_env: str, aws_resources: Resources, cleanups: Cleanups
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
    cleanups.append(heartbeat.stop)
    heartbeat.track("m0", handle, asyncio.get_running_loop().time())
    received = time.monotonic()
    # Three extensions, one a second: the message outlives its 2 s visibility timeout only through them.
    await wait_until(
        lambda: (registry.get_sample_value("email_ingest_consumer_visibility_extensions_total") or 0) >= 3,
        timeout=10,
        what="three extensions",
        interval=0.05,
    )
    assert time.monotonic() - received > 2, "past the visibility timeout"
    assert queue_depth(sqs_endpoint, queue_url) == (0, 1), "still in flight: the heartbeat extended it"
    await heartbeat.release([handle])
    assert queue_depth(sqs_endpoint, queue_url) == (1, 0), "released messages are visible again at once"


async def test_without_heartbeat_the_message_comes_back(
    sqs_endpoint: str, aws_env: str, aws_resources: Resources
) -> None:
    """The control for the test above: it would fail if moto ignored visibility timeouts."""
    receive_handles(sqs_endpoint, aws_resources.queue_url, 1)
    received = time.monotonic()
    await wait_until(lambda: queue_depth(sqs_endpoint, aws_resources.queue_url) == (1, 0), 10, "the message back")
    assert time.monotonic() - received > 1.5, "back only once its 2 s visibility timeout ran out"


# -- the heartbeat behind a fault proxy: a hung call, and a release racing an extension ----------------------


@pytest.fixture
def sqs_proxy(sqs_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy.for_url(sqs_endpoint, name="sqs") as proxy:
        yield proxy


@pytest.fixture
async def proxied_sqs(aws_env: str, sqs_proxy: FaultProxy) -> AsyncIterator[Any]:
    """An SQS client configured like the consumer's (long-poll read timeout, 3 attempts), through the proxy."""
    config = client_config(max_pool_connections=8, read_timeout=1 + 10.0, max_attempts=3)
    session = aioboto3.Session()
    async with session.client("sqs", region_name="us-east-1", endpoint_url=sqs_proxy.endpoint_url, config=config) as c:
        yield c


def other_consumer_receives(endpoint_url: str, queue_url: str) -> list[dict[str, Any]]:
    """One receive by another consumer, straight to the server."""
    client = emulator_client("sqs", endpoint_url)
    return list(client.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0, VisibilityTimeout=30).get("Messages", []))


async def wait_for_dropped_bytes(proxy: FaultProxy) -> None:
    deadline = time.monotonic() + 5
    while proxy.stats().dropped_bytes == 0:
        assert time.monotonic() < deadline, "the request never reached the proxy"
        await asyncio.sleep(0.01)


async def test_a_hung_extension_call_does_not_hold_back_the_next_extensions(
    sqs_endpoint: str, aws_env: str, aws_resources: Resources, sqs_proxy: FaultProxy, proxied_sqs: Any
) -> None:
    queue_url = aws_resources.queue_url
    registry = CollectorRegistry()
    calls: list[float] = []

    async def change(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        calls.append(time.monotonic())
        call = proxied_sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        if len(calls) > 1:
            return await call  # type: ignore[no-any-return]
        # The first extension goes out on a connection that then hangs (no answer, no reset, for good).
        await asyncio.to_thread(sqs_proxy.set_mode, Mode.BLACKHOLE)
        pending = asyncio.ensure_future(call)
        await wait_for_dropped_bytes(sqs_proxy)
        await asyncio.to_thread(sqs_proxy.set_mode, Mode.PASS, reset_stalled=False)
        return await pending  # type: ignore[no-any-return]

    heartbeat = Heartbeat(change, visibility_timeout_seconds=4, fraction=0.5, metrics=ConsumerMetrics(registry))
    [handle] = await asyncio.to_thread(receive_handles, sqs_endpoint, queue_url, 1, visibility=4)
    heartbeat.track("m0", handle, time.monotonic())
    heartbeat.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 10:  # 2.5 visibility timeouts; the hung call alone lasts 11 s or more
            taken = await asyncio.to_thread(other_consumer_receives, sqs_endpoint, queue_url)
            assert not taken, f"another consumer received the message {time.monotonic() - started:.1f} s in"
            await asyncio.sleep(0.2)
        assert len(calls) >= 4, f"{len(calls)} extension calls: the hung one held back the others"
        assert (registry.get_sample_value("email_ingest_consumer_visibility_extensions_total") or 0) >= 3
    finally:
        await heartbeat.release([handle])
        await heartbeat.stop()
    assert len(await asyncio.to_thread(other_consumer_receives, sqs_endpoint, queue_url)) == 1


async def test_a_released_message_is_not_hidden_again_by_an_extension_in_flight(
    sqs_endpoint: str, aws_env: str, aws_resources: Resources, sqs_proxy: FaultProxy, proxied_sqs: Any
) -> None:
    queue_url = aws_resources.queue_url
    extension_sent = asyncio.Event()
    extension_answered = asyncio.Event()
    carried: list[tuple[float, list[str], int]] = []

    async def change(entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        seconds = int(entries[0]["VisibilityTimeout"])
        carried.append((time.monotonic(), [entry["ReceiptHandle"] for entry in entries], seconds))
        call = proxied_sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        if seconds == 0 or extension_sent.is_set():
            return await call  # type: ignore[no-any-return]
        # The first extension is held 0.6 s on its way to SQS (within the heartbeat's 1 s call timeout);
        # the release, on another connection, is not.
        await asyncio.to_thread(sqs_proxy.set_mode, Mode.LATENCY, latency=0.6)
        pending = asyncio.ensure_future(call)
        await asyncio.sleep(0.15)
        await asyncio.to_thread(sqs_proxy.set_mode, Mode.PASS)
        extension_sent.set()
        try:
            return await pending  # type: ignore[no-any-return]
        finally:
            extension_answered.set()

    heartbeat = Heartbeat(
        change, visibility_timeout_seconds=6, fraction=0.5, metrics=ConsumerMetrics(CollectorRegistry())
    )
    [handle] = await asyncio.to_thread(receive_handles, sqs_endpoint, queue_url, 1, visibility=6)
    tracked = heartbeat.track("m0", handle, time.monotonic())
    heartbeat.start()
    try:
        await asyncio.wait_for(extension_sent.wait(), timeout=10)
        # What the drain does: the processing task is cancelled (it untracks its message), then release.
        heartbeat.untrack(tracked)
        await heartbeat.release([handle])
        released_at = time.monotonic()
        await asyncio.wait_for(extension_answered.wait(), timeout=5)
        await asyncio.sleep(0.1)
        taken = await asyncio.to_thread(other_consumer_receives, sqs_endpoint, queue_url)
        assert [message["Body"] for message in taken] == ["m0"], "the late extension hid the released message"
        await asyncio.sleep(1)
        assert not [at for at, handles, seconds in carried if at > released_at and handle in handles], "re-extended"
    finally:
        await heartbeat.stop()
