"""Which messages the heartbeat extends, with in-process fakes for SQS and S3: not those being deleted or given up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from consumer_service.deleter import BatchDeleter
from consumer_service.heartbeat import Heartbeat
from consumer_service.metrics import ConsumerMetrics
from consumer_service.poller import Consumer, PoisonSchedule
from consumer_service.writer import S3Writer
from tests.consumer_service.test_consumer_integration import envelope


class FakeSqs:
    """One message to hand out; records every visibility change and delete, with when it was asked for."""

    def __init__(self, body: str, *, delete_seconds: float) -> None:
        self._messages = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": body, "Attributes": {}}]
        self._delete_seconds = delete_seconds
        self.extensions: list[tuple[float, list[str]]] = []
        self.visibility_changes: list[tuple[float, str, int]] = []
        self.delete_started: float | None = None

    async def receive(self, count: int) -> Mapping[str, Any]:
        if self._messages:
            messages, self._messages = self._messages[:count], self._messages[count:]
            return {"Messages": messages}
        await asyncio.sleep(0.05)
        return {"Messages": []}

    async def change_visibility(self, receipt_handle: str, seconds: int) -> Mapping[str, Any]:
        self.visibility_changes.append((time.monotonic(), receipt_handle, seconds))
        return {}

    async def change_visibility_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.extensions.append((time.monotonic(), [entry["ReceiptHandle"] for entry in entries]))
        return {"Successful": [{"Id": entry["Id"]} for entry in entries]}

    async def delete_batch(self, entries: list[dict[str, str]]) -> Mapping[str, Any]:
        self.delete_started = time.monotonic()
        await asyncio.sleep(self._delete_seconds)
        return {"Successful": [{"Id": entry["Id"]} for entry in entries]}


def consumer_on(sqs: FakeSqs, *, put_seconds: float) -> Consumer:
    metrics = ConsumerMetrics(CollectorRegistry())

    async def put_object(**kwargs: Any) -> Mapping[str, Any]:
        await asyncio.sleep(put_seconds)
        return {}

    return Consumer(
        receive=sqs.receive,
        change_visibility=sqs.change_visibility,
        store=S3Writer(put_object, bucket="b", key_prefix="emails/", max_attempts=1, metrics=metrics),
        deleter=BatchDeleter(sqs.delete_batch, metrics=metrics),
        # Extensions fall due 0.5 s after the receive and every 0.5 s after that.
        heartbeat=Heartbeat(sqs.change_visibility_batch, visibility_timeout_seconds=1, fraction=0.5, metrics=metrics),
        pollers=1,
        max_in_flight=1,
        metrics=metrics,
        poison_schedule=PoisonSchedule(window_seconds=60, max_receive_count=5),
    )


async def test_a_stored_message_is_not_extended_while_its_delete_is_under_way() -> None:
    sqs = FakeSqs(envelope(1).to_body(), delete_seconds=2.0)
    consumer = consumer_on(sqs, put_seconds=0.7)  # one extension is due while the email is being stored
    consumer.start()
    try:
        deadline = time.monotonic() + 5
        while sqs.delete_started is None or time.monotonic() < sqs.delete_started + 1.5:
            assert time.monotonic() < deadline, "the delete never started"
            await asyncio.sleep(0.05)
    finally:
        await consumer.drain(5)
    assert sqs.delete_started is not None
    assert [at for at, _ in sqs.extensions if at < sqs.delete_started], "extended while storing"
    late = [at - sqs.delete_started for at, _ in sqs.extensions if at >= sqs.delete_started]
    assert not late, f"extended {late} s after its delete was sent"


async def test_a_poison_message_keeps_its_poison_delay() -> None:
    sqs = FakeSqs("not json", delete_seconds=0)
    consumer = consumer_on(sqs, put_seconds=0)
    consumer.start()
    try:
        await asyncio.sleep(1.5)  # three extension periods
    finally:
        await consumer.drain(5)
    assert [(handle, seconds) for _, handle, seconds in sqs.visibility_changes] == [
        ("r1", 4)
    ]  # 60 s over 4 receives: 4, 8, 16, 32
    assert not sqs.extensions, "an extension would undo the poison delay"
    assert sqs.delete_started is None, "poison is never deleted"
