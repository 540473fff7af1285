"""Which messages the heartbeat extends, with in-process fakes for SQS and S3: not those being deleted or given up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry

from consumer_service.consumer import Consumer, PoisonSchedule
from consumer_service.deleter import BatchDeleter
from consumer_service.heartbeat import Heartbeat
from consumer_service.metrics import ConsumerMetrics
from consumer_service.writer import S3Writer
from tests.support.consumer import envelope
from tests.support.fakes import FakeQueue, FakeStore


def one_message(body: str) -> list[dict[str, Any]]:
    return [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": body, "Attributes": {}}]


def consumer_on(sqs: FakeQueue, *, put_seconds: float) -> Consumer:
    metrics = ConsumerMetrics(CollectorRegistry())
    return Consumer(
        queue=sqs,
        store=S3Writer(FakeStore(put_seconds=put_seconds), key_prefix="emails/", max_attempts=1, metrics=metrics),
        deleter=BatchDeleter(sqs.delete_batch, metrics=metrics),
        # Extensions fall due 0.5 s after the receive and every 0.5 s after that.
        heartbeat=Heartbeat(sqs.change_visibility_batch, visibility_timeout_seconds=1, fraction=0.5, metrics=metrics),
        pollers=1,
        max_in_flight=1,
        metrics=metrics,
        poison_schedule=PoisonSchedule(window_seconds=60, max_receive_count=5),
    )


async def test_a_stored_message_is_not_extended_while_its_delete_is_under_way() -> None:
    sqs = FakeQueue(one_message(envelope(1).to_body()), delete_seconds=2.0)
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
    sqs = FakeQueue(one_message("not json"))
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
