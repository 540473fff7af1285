"""The consumer's app in-process on fakes of its SQS and S3 adapters: the data path's decisions and the probes.

The same paths against real servers are in test_consumer_integration.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from consumer_service.app import create_app
from consumer_service.config import ConsumerSettings
from devstack.metrics_text import metric_value
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
