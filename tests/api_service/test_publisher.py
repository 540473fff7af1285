"""Unit tests of the batching publisher with an in-process SendMessageBatch stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from api_service.metrics import PublisherMetrics
from api_service.publisher import BatchPublisher, PublishRejected


class FakeSqs:
    """Accepts entries unless told otherwise; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail_bodies: dict[str, dict[str, Any]] = {}  # body -> Failed entry template (consumed once)
        self.call_errors: list[Exception] = []
        self.delay = 0.0
        self.omit_bodies: set[str] = set()
        self.accepted: list[str] = []
        # Rewrites the next responses (consumed one per call): malformed answers from a broken endpoint.
        self.mangle: list[Callable[[dict[str, Any]], dict[str, Any]]] = []

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.calls.append(entries)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.call_errors:
            raise self.call_errors.pop(0)
        successful, failed = [], []
        for entry in entries:
            body = entry["MessageBody"]
            if body in self.fail_bodies:
                failed.append({"Id": entry["Id"], **self.fail_bodies.pop(body)})
            elif body in self.omit_bodies:
                continue
            else:
                self.accepted.append(body)
                successful.append({"Id": entry["Id"], "MessageId": f"mid-{body}"})
        response = {"Successful": successful, "Failed": failed}
        return self.mangle.pop(0)(response) if self.mangle else response


def client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "SendMessageBatch")


@pytest.fixture
def sqs() -> FakeSqs:
    return FakeSqs()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


Start = Callable[..., Awaitable[BatchPublisher]]


@pytest.fixture
async def started() -> AsyncIterator[Start]:
    """Starts publishers on a fake SQS; each one is closed at teardown, even when its test fails."""
    publishers: list[BatchPublisher] = []

    async def start(sqs: FakeSqs, registry: CollectorRegistry, **overrides: Any) -> BatchPublisher:
        settings: dict[str, Any] = {
            "linger_seconds": 0.01,
            "max_batches_in_flight": 4,
            "max_pending": 1000,
            "deadline_seconds": 2.0,
        }
        settings.update(overrides)
        publisher = BatchPublisher(sqs.send_batch, metrics=PublisherMetrics(registry), **settings)
        publishers.append(publisher)
        publisher.start()
        return publisher

    yield start
    for publisher in publishers:
        await publisher.close(1)


async def test_concurrent_messages_share_full_batches(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.05)
    ids = await asyncio.gather(*(publisher.publish(f"m{i}") for i in range(95)))
    assert ids == [f"mid-m{i}" for i in range(95)]
    assert [len(call) for call in sqs.calls] == [10] * 9 + [5]
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "full"}) == 9
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "linger"}) == 1
    assert registry.get_sample_value("email_ingest_publisher_batch_entries_count") == 10


async def test_a_lone_message_waits_only_the_linger(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.02)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await publisher.publish("solo") == "mid-solo"
    assert 0.015 <= loop.time() - began < 1.0


async def test_batches_respect_the_byte_limit(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry, max_batch_bytes=1000)
    await asyncio.gather(*(publisher.publish(f"{i}" + "x" * 399) for i in range(5)))
    assert [len(call) for call in sqs.calls] == [2, 2, 1]
    assert all(sum(len(entry["MessageBody"]) for entry in call) <= 1000 for call in sqs.calls)


async def test_partial_failure_retries_only_the_failed_entry(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["b"] = {"Code": "InternalError", "SenderFault": False, "Message": "try again"}
    publisher = await started(sqs, registry)
    ids = await asyncio.gather(*(publisher.publish(body) for body in "abc"))
    assert ids == ["mid-a", "mid-b", "mid-c"]
    assert sorted(sqs.accepted) == ["a", "b", "c"]  # b is sent twice but accepted once
    assert [entry["MessageBody"] for entry in sqs.calls[1]] == ["b"]
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1


async def test_throttling_marked_as_sender_fault_is_still_retried(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["a"] = {"Code": "RequestThrottled", "SenderFault": True}
    publisher = await started(sqs, registry)
    assert await publisher.publish("a") == "mid-a"


async def test_permanent_entry_failure_is_a_503_not_a_success(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["bad"] = {"Code": "InvalidMessageContents", "SenderFault": True}
    publisher = await started(sqs, registry)
    results = await asyncio.gather(publisher.publish("good"), publisher.publish("bad"), return_exceptions=True)
    assert results[0] == "mid-good"
    assert isinstance(results[1], PublishRejected)
    assert results[1].reason == "publish_failed"
    assert registry.get_sample_value("email_ingest_publisher_entries_failed_total", {"reason": "permanent"}) == 1


async def test_entry_missing_from_the_response_is_never_acknowledged(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.omit_bodies.add("ghost")
    publisher = await started(sqs, registry, deadline_seconds=0.3)
    with pytest.raises(PublishRejected):
        await publisher.publish("ghost")
    assert "ghost" not in sqs.accepted


async def test_retryable_call_errors_retry_until_success(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.call_errors = [ConnectionResetError("reset"), client_error("ServiceUnavailable", 503)]
    publisher = await started(sqs, registry)
    assert await publisher.publish("x") == "mid-x"
    assert len(sqs.calls) == 3


async def test_outage_longer_than_the_deadline_gives_up(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.call_errors = [ConnectionRefusedError("down")] * 1000
    publisher = await started(sqs, registry, deadline_seconds=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(PublishRejected) as caught:
        await publisher.publish("x")
    assert caught.value.reason == "publish_failed"
    assert loop.time() - began < 1.0
    assert registry.get_sample_value("email_ingest_publisher_entries_failed_total", {"reason": "deadline"}) == 1


async def test_client_errors_are_not_retried(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.call_errors = [client_error("AccessDenied", 403)]
    publisher = await started(sqs, registry)
    with pytest.raises(PublishRejected):
        await publisher.publish("x")
    assert len(sqs.calls) == 1


async def test_bounded_pending_sheds_at_once(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.delay = 0.2
    publisher = await started(sqs, registry, max_pending=5, max_batches_in_flight=1)
    results = await asyncio.gather(*(publisher.publish(f"m{i}") for i in range(8)), return_exceptions=True)
    accepted = [result for result in results if isinstance(result, str)]
    shed = [result for result in results if isinstance(result, PublishRejected)]
    assert len(accepted) == 5
    assert len(shed) == 3
    assert {rejection.reason for rejection in shed} == {"queue_full"}
    assert sorted(sqs.accepted) == sorted(result.removeprefix("mid-") for result in accepted)


async def test_in_flight_batches_are_bounded(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.delay = 0.05
    publisher = await started(sqs, registry, max_batches_in_flight=2)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, int(registry.get_sample_value("email_ingest_publisher_batches_in_flight") or 0))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(publisher.publish(f"m{i}") for i in range(60)))
    watcher.cancel()
    assert peak == 2


async def test_drain_answers_everything_queued_then_refuses(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=10.0)
    pending = [asyncio.create_task(publisher.publish(f"m{i}")) for i in range(3)]
    await asyncio.sleep(0.01)
    await publisher.close(2.0)  # does not wait for the 10 s linger
    assert [task.result() for task in pending] == ["mid-m0", "mid-m1", "mid-m2"]
    with pytest.raises(PublishRejected) as caught:
        await publisher.publish("late")
    assert caught.value.reason == "draining"
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "drain"}) == 1


async def test_drain_that_times_out_answers_503_not_silence(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.delay = 5.0
    publisher = await started(sqs, registry)
    task = asyncio.create_task(publisher.publish("slow"))
    await asyncio.sleep(0.05)
    await publisher.close(0.1)
    with pytest.raises(PublishRejected):
        task.result()
    assert publisher.outstanding == 0


async def test_deadline_holds_while_a_call_hangs_and_each_entry_gets_its_own(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.delay = 5.0  # SendMessageBatch never answers in time
    publisher = await started(sqs, registry, deadline_seconds=0.3, max_batches_in_flight=4)
    loop = asyncio.get_running_loop()
    answered_at: dict[str, float] = {}

    async def publish_and_time(body: str) -> None:
        with pytest.raises(PublishRejected) as caught:
            await publisher.publish(body)
        assert caught.value.reason == "publish_failed"
        answered_at[body] = loop.time()

    began = loop.time()
    first = asyncio.create_task(publish_and_time("early"))
    await asyncio.sleep(0.2)
    second = asyncio.create_task(publish_and_time("late"))
    await asyncio.gather(first, second)
    assert 0.28 <= answered_at["early"] - began < 0.45
    assert 0.48 <= answered_at["late"] - began < 0.65, "the later entry keeps its own deadline, not the first's"
    assert registry.get_sample_value("email_ingest_publisher_entries_failed_total", {"reason": "deadline"}) == 2
    await publisher.close(0.1)
    assert publisher.outstanding == 0


async def test_answered_entries_leave_no_trace(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry)
    await asyncio.gather(*(publisher.publish(f"m{i}") for i in range(250)))
    assert registry.get_sample_value("email_ingest_publisher_pending_entries") == 0
    assert not publisher._deadlines, "the deadline line holds only unanswered entries"
    sqs.delay = 0.2
    in_flight = [asyncio.create_task(publisher.publish(f"n{i}")) for i in range(7)]
    await asyncio.sleep(0.05)
    assert registry.get_sample_value("email_ingest_publisher_pending_entries") == 7
    await asyncio.gather(*in_flight)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda r: {**r, "Successful": [{"Id": "7", "MessageId": "x"}, *r["Successful"]]}, id="unknown-id"),
        pytest.param(lambda r: {**r, "Successful": [{"Id": "x", "MessageId": "x"}, *r["Successful"]]}, id="bad-id"),
        pytest.param(lambda r: {**r, "Successful": r["Successful"] * 2}, id="duplicated-success"),
        pytest.param(
            lambda r: {**r, "Failed": [{"Id": s["Id"], "Code": "InternalError"} for s in r["Successful"]]},
            id="success-and-failure-for-one-id",
        ),
        pytest.param(lambda r: {**r, "Successful": [{"Id": "0"}]}, id="missing-message-id"),
    ],
)
async def test_a_malformed_response_leaves_the_count_of_unanswered_entries_right(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry, mangle: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    sqs.mangle.append(mangle)
    publisher = await started(sqs, registry, max_pending=1)
    assert await publisher.publish("first") == "mid-first"
    assert publisher.outstanding == 0
    # With max_pending=1, a count left too high would shed every later request as queue_full.
    assert [await publisher.publish(f"next-{i}") for i in range(3)] == [f"mid-next-{i}" for i in range(3)]
    assert publisher.outstanding == 0


async def test_a_success_without_a_message_id_is_sent_again_not_acknowledged(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.mangle.append(lambda r: {**r, "Successful": [{"Id": "0"}]})
    publisher = await started(sqs, registry)
    assert await publisher.publish("a") == "mid-a"
    assert len(sqs.calls) == 2
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1


async def test_kms_throttling_on_an_sse_kms_queue_is_retried(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["a"] = {"Code": "KmsThrottled", "SenderFault": True, "Message": "KMS throttled"}
    publisher = await started(sqs, registry)
    assert await publisher.publish("a") == "mid-a"
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1
