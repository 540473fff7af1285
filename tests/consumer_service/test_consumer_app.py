"""The consumer's app in-process on fakes of its SQS and S3 adapters: the data path's decisions and the probes.

The same paths against real servers are in test_consumer_integration.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from consumer_service.app import create_app
from consumer_service.config import ConsumerSettings
from devstack.metrics_text import metric_value
from ingest_common.envelope import pack_body
from tests.support.consumer import envelope, wait_for
from tests.support.fakes import FakeQueue, FakeStore

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
SETTINGS = ConsumerSettings(
    region="us-east-1", queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/emails", bucket="emails"
)


async def test_stores_then_deletes_and_leaves_poison_to_the_redrive_policy(aiohttp_client: ClientFactory) -> None:
    good = envelope(1)
    queue = FakeQueue(
        [
            {"MessageId": "m1", "ReceiptHandle": "r1", "Body": good.to_body(), "Attributes": {}},
            {"MessageId": "m2", "ReceiptHandle": "r2", "Body": "not json", "Attributes": {}},
        ]
    )
    store = FakeStore()
    client = await aiohttp_client(create_app(SETTINGS, queue=queue, store=store))

    async def settled() -> bool:
        return queue.deleted == ["r1"] and bool(queue.visibility_changes)

    await wait_for(settled, timeout=10, what="the store, the delete and the poison delay")
    assert list(store.objects) == [good.s3_key("emails/")]
    assert [(handle, seconds > 0) for _, handle, seconds in queue.visibility_changes] == [("r2", True)]
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 1
    assert metric_value(metrics, "email_ingest_consumer_poison_messages_total", {"reason": "invalid_json"}) == 1
    assert metric_value(metrics, "email_ingest_consumer_messages_deleted_total") == 1


async def test_a_redelivered_stored_email_is_deleted_without_a_second_object(aiohttp_client: ClientFactory) -> None:
    item = envelope(2)
    store = FakeStore()
    store.objects[item.s3_key("emails/")] = b"stored before"
    queue = FakeQueue([{"MessageId": "m1", "ReceiptHandle": "r1", "Body": item.to_body(), "Attributes": {}}])
    client = await aiohttp_client(create_app(SETTINGS, queue=queue, store=store))

    async def deleted() -> bool:
        return queue.deleted == ["r1"]

    await wait_for(deleted, timeout=10, what="the delete")
    assert store.objects == {item.s3_key("emails/"): b"stored before"}
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"}) == 1


async def test_probes(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(create_app(SETTINGS, queue=FakeQueue(), store=FakeStore()))
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()


# -- packed messages (envelope version 2) ------------------------------------------------------------


def message(number: int, body: str) -> dict[str, object]:
    return {"MessageId": f"m{number}", "ReceiptHandle": f"r{number}", "Body": body, "Attributes": {}}


async def test_versions_one_and_two_are_read_side_by_side(aiohttp_client: ClientFactory) -> None:
    """A rolling deploy has both in flight: a version-1 body, a version-2 body of one email and a pack of five."""
    emails = [envelope(number) for number in range(7)]
    queue = FakeQueue(
        [
            message(1, emails[0].to_v1_body()),
            message(2, emails[1].to_body()),
            message(3, pack_body([item.to_item() for item in emails[2:]])),
        ]
    )
    store = FakeStore()
    client = await aiohttp_client(create_app(SETTINGS, queue=queue, store=store))

    async def deleted() -> bool:
        return sorted(queue.deleted) == ["r1", "r2", "r3"]

    await wait_for(deleted, timeout=10, what="three deletes")
    assert sorted(store.objects) == sorted(item.s3_key("emails/") for item in emails)
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 7
    assert metric_value(metrics, "email_ingest_consumer_message_emails_sum") == 7
    assert metric_value(metrics, "email_ingest_consumer_message_emails_count") == 3
    assert metric_value(metrics, "email_ingest_consumer_messages_deleted_total") == 3


async def test_a_pack_with_one_failing_write_is_kept_then_finished_exactly_once(aiohttp_client: ClientFactory) -> None:
    emails = [envelope(number) for number in range(4)]
    body = pack_body([item.to_item() for item in emails])
    queue = FakeQueue([message(1, body)])
    store = FakeStore()
    store.failing_keys.add(emails[2].s3_key("emails/"))
    settings = dataclasses.replace(SETTINGS, s3_max_attempts=1)
    client = await aiohttp_client(create_app(settings, queue=queue, store=store))

    async def others_stored() -> bool:
        return len(store.objects) == 3

    await wait_for(others_stored, timeout=10, what="the three good writes")
    await asyncio.sleep(0.2)  # give a wrong delete the time to happen
    assert queue.deleted == [], "a pack is deleted only when every email in it is stored"
    # SQS delivers it again; the failed write now succeeds, the three stored ones are found by key.
    store.failing_keys.clear()
    queue.redeliver([message(2, body)])

    async def deleted() -> bool:
        return queue.deleted == ["r2"]

    await wait_for(deleted, timeout=10, what="the second delivery's delete")
    assert sorted(store.objects) == sorted(item.s3_key("emails/") for item in emails)
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 4
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"}) == 3


async def test_one_invalid_email_in_a_pack_keeps_the_message_and_loses_no_good_email(
    aiohttp_client: ClientFactory,
) -> None:
    emails = [envelope(number) for number in range(3)]
    unreadable = orjson.dumps({"email_id": "from-a-newer-api", "schema": 3})
    body = pack_body([emails[0].to_item(), unreadable, emails[1].to_item(), emails[2].to_item()])
    queue = FakeQueue([message(1, body)])
    store = FakeStore()
    client = await aiohttp_client(create_app(SETTINGS, queue=queue, store=store))

    async def poisoned() -> bool:
        return bool(queue.visibility_changes)

    await wait_for(poisoned, timeout=10, what="the poison delay")
    assert sorted(store.objects) == sorted(item.s3_key("emails/") for item in emails), "the good emails are stored"
    assert queue.deleted == [], "the message is kept whole, for a consumer that can read it or the DLQ"
    assert [(handle, seconds > 0) for _, handle, seconds in queue.visibility_changes] == [("r1", True)]
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_poison_messages_total", {"reason": "invalid_envelope"}) == 1


async def test_a_pack_in_the_batched_layout_is_deleted_once_its_lines_are_written(
    aiohttp_client: ClientFactory,
) -> None:
    emails = [envelope(number) for number in range(25)]
    queue = FakeQueue(
        [message(1, pack_body([item.to_item() for item in emails[:20]])), message(2, emails[20].to_body())]
    )
    store = FakeStore()
    settings = dataclasses.replace(SETTINGS, storage_layout="batched", batch_max_seconds=0.2)
    client = await aiohttp_client(create_app(settings, queue=queue, store=store))

    async def deleted() -> bool:
        return sorted(queue.deleted) == ["r1", "r2"]

    await wait_for(deleted, timeout=10, what="both deletes")
    lines = [orjson.loads(line) for body in store.objects.values() for line in gzip.decompress(body).splitlines()]
    assert sorted(line["email_id"] for line in lines) == sorted(item.email_id for item in emails[:21])
    metrics = await (await client.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 21


async def test_after_a_short_receive_a_poller_lets_the_queue_fill(aiohttp_client: ClientFactory) -> None:
    """RECEIVE_FILL_SECONDS: each receive is billed whatever it returns, so a thin queue is not polled at once."""
    queue = FakeQueue([message(number, envelope(number).to_body()) for number in range(3)])
    settings = dataclasses.replace(SETTINGS, pollers=1, receive_fill_seconds=0.6)
    await aiohttp_client(create_app(settings, queue=queue, store=FakeStore()))

    async def deleted() -> bool:
        return len(queue.deleted) == 3

    await wait_for(deleted, timeout=10, what="three deletes")
    await asyncio.sleep(0.3)
    assert queue.receives == 1, "no second receive within the fill time"

    async def received_again() -> bool:
        return queue.receives >= 2

    await wait_for(received_again, timeout=5, what="the next receive after the fill time")
