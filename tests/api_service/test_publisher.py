"""Unit tests of the batching publisher with an in-process SendMessageBatch stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from api_service.metrics import PublisherMetrics
from api_service.publisher import BatchPublisher, PublishRejected
from ingest_common.envelope import PACK_OVERHEAD_BYTES
from ingest_common.sqs_limits import MAX_BATCH_BYTES, message_payload_bytes


def emails_in(entry: Mapping[str, Any]) -> list[str]:
    """The emails of one SendMessageBatch entry: a version-2 body whose items are, in these tests, JSON strings."""
    document = orjson.loads(entry["MessageBody"])
    assert document["v"] == 2 and set(document) == {"v", "emails"}
    return list(document["emails"])


def message_id_of(emails: list[str]) -> str:
    return "mid-" + "|".join(emails)


class FakeSqs:
    """Accepts messages unless told otherwise; records every call. A message is named by the emails it holds."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        # email -> Failed entry template for the message holding it (consumed once)
        self.fail_bodies: dict[str, dict[str, Any]] = {}
        self.call_errors: list[Exception] = []
        self.delay = 0.0
        self.omit_bodies: set[str] = set()
        self.accepted: list[str] = []
        # Rewrites the next responses (consumed one per call): malformed answers from a broken endpoint.
        self.mangle: list[Callable[[dict[str, Any]], dict[str, Any]]] = []

    def messages(self, call: int) -> list[list[str]]:
        return [emails_in(entry) for entry in self.calls[call]]

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.calls.append(entries)
        assert sum(message_payload_bytes(e["MessageBody"], e.get("MessageAttributes")) for e in entries) <= (
            MAX_BATCH_BYTES
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.call_errors:
            raise self.call_errors.pop(0)
        successful, failed = [], []
        for entry in entries:
            emails = emails_in(entry)
            refused = next((email for email in emails if email in self.fail_bodies), None)
            if refused is not None:
                failed.append({"Id": entry["Id"], **self.fail_bodies.pop(refused)})
            elif self.omit_bodies.intersection(emails):
                continue
            else:
                self.accepted.extend(emails)
                successful.append({"Id": entry["Id"], "MessageId": message_id_of(emails)})
        response = {"Successful": successful, "Failed": failed}
        return self.mangle.pop(0)(response) if self.mangle else response


def item(name: str, size: int = 0) -> bytes:
    """An envelope item stand-in: a JSON string, padded to `size` bytes."""
    return orjson.dumps(name.ljust(max(size - 2, len(name)), "."))


def name_of(message_id: str) -> list[str]:
    return [email.rstrip(".") for email in message_id.removeprefix("mid-").split("|")]


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


async def test_concurrent_emails_are_packed_into_one_message(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.05)
    ids = await asyncio.gather(*(publisher.publish(item(f"m{i}")) for i in range(95)))
    names = [f"m{i}" for i in range(95)]
    assert ids == [message_id_of(names)] * 95, "every request hears the id of the message holding its email"
    assert sqs.messages(0) == [names] and len(sqs.calls) == 1
    assert "MessageAttributes" not in sqs.calls[0][0]
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "linger"}) == 1
    assert registry.get_sample_value("email_ingest_publisher_message_emails_sum") == 95
    assert registry.get_sample_value("email_ingest_publisher_batch_emails_sum") == 95


async def test_messages_respect_the_message_byte_limit(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.05, max_message_bytes=1024)
    await asyncio.gather(*(publisher.publish(item(f"m{i}", 400)) for i in range(5)))
    assert [[name.rstrip(".") for name in message] for message in sqs.messages(0)] == [
        ["m0", "m1"],
        ["m2", "m3"],
        ["m4"],
    ]
    assert all(len(entry["MessageBody"].encode()) <= 1024 for entry in sqs.calls[0])
    assert len(sqs.calls[0][0]["MessageBody"].encode()) == PACK_OVERHEAD_BYTES + 2 * 400 + 1


async def test_a_full_call_goes_at_once_and_holds_at_most_ten_messages(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.2, max_message_bytes=1024)
    await asyncio.gather(*(publisher.publish(item(f"m{i}", 400)) for i in range(26)))
    assert [len(call) for call in sqs.calls] == [10, 3]
    assert [len(message) for message in sqs.messages(0)] == [2] * 10
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "full"}) == 1


async def test_calls_respect_the_call_byte_limit(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry, max_batch_bytes=2000, max_message_bytes=1024)
    await asyncio.gather(*(publisher.publish(item(f"m{i}", 400)) for i in range(6)))
    assert [[len(message) for message in sqs.messages(call)] for call in range(len(sqs.calls))] == [[2, 2], [2]]
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "size"}) == 1


async def test_an_email_larger_than_the_pack_limit_goes_alone_with_its_attributes(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.05, max_message_bytes=1024)
    attributes = {"request_id": {"DataType": "String", "StringValue": "r-big"}}
    big, small = await asyncio.gather(
        publisher.publish(item("big", 5000), attributes), publisher.publish(item("small"), attributes)
    )
    assert name_of(big) == ["big"] and name_of(small) == ["small"]
    assert [entry.get("MessageAttributes") for entry in sqs.calls[0]] == [attributes, attributes]


async def test_a_lone_email_keeps_its_attributes_and_a_packed_one_leaves_them(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.02)
    attributes = {"request_id": {"DataType": "String", "StringValue": "r-1"}}
    await publisher.publish(item("solo"), attributes)
    assert sqs.calls[0][0]["MessageAttributes"] == attributes
    await asyncio.gather(publisher.publish(item("a"), attributes), publisher.publish(item("b"), attributes))
    assert "MessageAttributes" not in sqs.calls[1][0]


async def test_a_refused_message_fails_every_email_in_it_and_each_is_retried(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["b"] = {"Code": "InternalError", "SenderFault": False}
    publisher = await started(sqs, registry)
    ids = await asyncio.gather(*(publisher.publish(item(name)) for name in "abc"))
    assert sqs.messages(0) == [["a", "b", "c"]]
    assert sorted(sqs.accepted) == ["a", "b", "c"], "nothing of the refused message counted as taken"
    assert all(name in name_of(message_id) for name, message_id in zip("abc", ids, strict=True))
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 3


async def test_a_lone_message_waits_only_the_linger(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry, linger_seconds=0.02)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await publisher.publish(item("solo")) == message_id_of(["solo"])
    assert 0.015 <= loop.time() - began < 1.0


async def test_partial_failure_retries_only_the_failed_entry(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies[orjson.loads(item("b", 600))] = {
        "Code": "InternalError",
        "SenderFault": False,
        "Message": "try again",
    }
    publisher = await started(sqs, registry, max_message_bytes=1024)
    ids = await asyncio.gather(*(publisher.publish(item(body, 600)) for body in "abc"))
    assert [name_of(message_id) for message_id in ids] == [["a"], ["b"], ["c"]]
    assert sorted(name.rstrip(".") for name in sqs.accepted) == ["a", "b", "c"]  # b is sent twice, accepted once
    assert [[name.rstrip(".") for name in message] for message in sqs.messages(1)] == [["b"]]
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1


async def test_throttling_marked_as_sender_fault_is_still_retried(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["a"] = {"Code": "RequestThrottled", "SenderFault": True}
    publisher = await started(sqs, registry)
    assert await publisher.publish(item("a")) == message_id_of(["a"])


async def test_permanent_entry_failure_is_a_503_not_a_success(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies[orjson.loads(item("bad", 600))] = {"Code": "InvalidMessageContents", "SenderFault": True}
    publisher = await started(sqs, registry, max_message_bytes=1024)
    results = await asyncio.gather(
        publisher.publish(item("good", 600)), publisher.publish(item("bad", 600)), return_exceptions=True
    )
    assert isinstance(results[0], str) and name_of(results[0]) == ["good"]
    assert isinstance(results[1], PublishRejected)
    assert results[1].reason == "publish_failed"
    assert registry.get_sample_value("email_ingest_publisher_entries_failed_total", {"reason": "permanent"}) == 1


async def test_entry_missing_from_the_response_is_never_acknowledged(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.omit_bodies.add("ghost")
    publisher = await started(sqs, registry, deadline_seconds=0.3)
    with pytest.raises(PublishRejected):
        await publisher.publish(item("ghost"))
    assert "ghost" not in sqs.accepted


async def test_retryable_call_errors_retry_until_success(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.call_errors = [ConnectionResetError("reset"), client_error("ServiceUnavailable", 503)]
    publisher = await started(sqs, registry)
    assert await publisher.publish(item("x")) == message_id_of(["x"])
    assert len(sqs.calls) == 3


async def test_outage_longer_than_the_deadline_gives_up(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.call_errors = [ConnectionRefusedError("down")] * 1000
    publisher = await started(sqs, registry, deadline_seconds=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(PublishRejected) as caught:
        await publisher.publish(item("x"))
    assert caught.value.reason == "publish_failed"
    assert loop.time() - began < 1.0
    assert registry.get_sample_value("email_ingest_publisher_entries_failed_total", {"reason": "deadline"}) == 1


async def test_client_errors_are_not_retried(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.call_errors = [client_error("AccessDenied", 403)]
    publisher = await started(sqs, registry)
    with pytest.raises(PublishRejected):
        await publisher.publish(item("x"))
    assert len(sqs.calls) == 1


async def test_bounded_pending_sheds_at_once(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.delay = 0.2
    publisher = await started(sqs, registry, max_pending=5, max_batches_in_flight=1)
    results = await asyncio.gather(*(publisher.publish(item(f"m{i}")) for i in range(8)), return_exceptions=True)
    accepted = [result for result in results if isinstance(result, str)]
    shed = [result for result in results if isinstance(result, PublishRejected)]
    assert len(accepted) == 5
    assert len(shed) == 3
    assert {rejection.reason for rejection in shed} == {"queue_full"}
    assert sorted(sqs.accepted) == sorted({name for result in accepted for name in name_of(result)})


async def test_in_flight_batches_are_bounded(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    sqs.delay = 0.05
    publisher = await started(sqs, registry, max_batches_in_flight=2, max_message_bytes=1024)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, int(registry.get_sample_value("email_ingest_publisher_batches_in_flight") or 0))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(publisher.publish(item(f"m{i}", 600)) for i in range(60)))
    watcher.cancel()
    assert peak == 2


async def test_drain_answers_everything_queued_then_refuses(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    publisher = await started(sqs, registry, linger_seconds=10.0)
    pending = [asyncio.create_task(publisher.publish(item(f"m{i}"))) for i in range(3)]
    await asyncio.sleep(0.01)
    await publisher.close(2.0)  # does not wait for the 10 s linger
    assert [task.result() for task in pending] == [message_id_of(["m0", "m1", "m2"])] * 3
    with pytest.raises(PublishRejected) as caught:
        await publisher.publish(item("late"))
    assert caught.value.reason == "draining"
    assert registry.get_sample_value("email_ingest_publisher_flushes_total", {"reason": "drain"}) == 1


async def test_drain_that_times_out_answers_503_not_silence(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.delay = 5.0
    publisher = await started(sqs, registry)
    task = asyncio.create_task(publisher.publish(item("slow")))
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
            await publisher.publish(item(body))
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
    await asyncio.gather(*(publisher.publish(item(f"m{i}")) for i in range(250)))
    assert registry.get_sample_value("email_ingest_publisher_pending_entries") == 0
    assert not publisher._deadlines, "the deadline line holds only unanswered entries"
    sqs.delay = 0.2
    in_flight = [asyncio.create_task(publisher.publish(item(f"n{i}"))) for i in range(7)]
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
    assert await publisher.publish(item("first")) == message_id_of(["first"])
    assert publisher.outstanding == 0
    # With max_pending=1, a count left too high would shed every later request as queue_full.
    assert [await publisher.publish(item(f"next-{i}")) for i in range(3)] == [
        message_id_of([f"next-{i}"]) for i in range(3)
    ]
    assert publisher.outstanding == 0


async def test_a_success_without_a_message_id_is_sent_again_not_acknowledged(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.mangle.append(lambda r: {**r, "Successful": [{"Id": "0"}]})
    publisher = await started(sqs, registry)
    assert await publisher.publish(item("a")) == message_id_of(["a"])
    assert len(sqs.calls) == 2
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1


async def test_kms_throttling_on_an_sse_kms_queue_is_retried(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    sqs.fail_bodies["a"] = {"Code": "KmsThrottled", "SenderFault": True, "Message": "KMS throttled"}
    publisher = await started(sqs, registry)
    assert await publisher.publish(item("a")) == message_id_of(["a"])
    assert registry.get_sample_value("email_ingest_publisher_retries_total") == 1


async def test_a_call_just_past_a_billing_chunk_holds_its_tail_back_once(
    started: Start, sqs: FakeSqs, registry: CollectorRegistry
) -> None:
    """SQS bills each started 64 KiB: 70 emails of 1,000 bytes would pay two chunks for 70 KB; 65 go, 5 wait."""
    publisher = await started(sqs, registry, linger_seconds=0.05)
    ids = await asyncio.gather(*(publisher.publish(item(f"m{i}", 1000)) for i in range(70)))
    payloads = [sum(len(entry["MessageBody"].encode()) for entry in call) for call in sqs.calls]
    assert len(sqs.calls) == 2
    assert payloads[0] <= 65_536 < payloads[0] + 1001, "the first call fills one chunk exactly"
    assert [len(emails_in(entry)) for entry in sqs.calls[1]] == [70 - len(emails_in(sqs.calls[0][0]))]
    assert sorted(name for message_id in set(ids) for name in name_of(message_id)) == sorted(f"m{i}" for i in range(70))


async def test_a_drain_holds_nothing_back(started: Start, sqs: FakeSqs, registry: CollectorRegistry) -> None:
    publisher = await started(sqs, registry, linger_seconds=10.0)
    pending = [asyncio.create_task(publisher.publish(item(f"m{i}", 1000))) for i in range(70)]
    await asyncio.sleep(0.05)
    await publisher.close(2.0)  # the drain sends all 70 at once, past the chunk or not
    assert all(task.done() and not task.exception() for task in pending)
    assert len(sqs.calls) == 1 and sum(len(emails_in(entry)) for entry in sqs.calls[0]) == 70
