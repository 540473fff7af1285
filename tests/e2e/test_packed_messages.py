"""Packed SQS messages end to end: concurrent POSTs share version-2 messages, every email is stored once.

Real processes (moto, both services). The API's linger is raised so that concurrent requests are sure to
wait together; the packs' sizes are read from both services' own histograms.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.metrics_text import metric_value, scrape
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import queue_depth, seed_payload, stored_keys, wait_for
from tests.support.api import post_many

pytestmark = pytest.mark.integration


def packed_stack(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, **api_env: str) -> DevStack:
    return DevStack(
        StackConfig(
            names=stack_names,
            log_dir=tmp_path,
            emulator_endpoint_url=moto_server.endpoint_url,
            api_env={"PUBLISH_LINGER_MS": "200", **api_env},
            consumer_env={"SQS_WAIT_TIME_SECONDS": "1"},
        )
    )


def post_all(stack: DevStack, count: int, content: str) -> list[str]:
    payloads = [seed_payload(stack.token, email_content=f"{index} {content}") for index in range(count)]
    answers = asyncio.run(post_many(stack.api_url, payloads, [{}] * count, connections=count))
    assert [status for status, _ in answers] == [200] * count
    return [body["email_id"] for _, body in answers]


def test_concurrent_requests_share_messages_and_every_email_is_stored_once(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer
) -> None:
    with packed_stack(tmp_path, stack_names, moto_server) as stack:
        assert stack.resources is not None
        bucket, queue_url = stack.resources.bucket, stack.resources.queue_url
        email_ids = post_all(stack, 200, "x" * 1000)
        wait_for(lambda: len(stored_keys(stack.endpoint_url, bucket)) >= 200, timeout=60, message="200 objects")
        wait_for(lambda: queue_depth(stack.endpoint_url, queue_url) == (0, 0), timeout=60, message="an empty queue")
        keys = stored_keys(stack.endpoint_url, bucket)
        api, consumer = scrape(stack.api_url), scrape(stack.consumer_url)
    assert sorted(key.rsplit("/", 1)[1] for key in keys) == sorted(f"{email_id}.json" for email_id in email_ids)
    messages = metric_value(api, "email_ingest_publisher_message_emails_count")
    assert metric_value(api, "email_ingest_publisher_message_emails_sum") == 200
    assert messages < 50, f"200 concurrent requests went out in {messages} messages: they were not packed"
    assert metric_value(consumer, "email_ingest_consumer_message_emails_sum") == 200
    assert metric_value(consumer, "email_ingest_consumer_message_emails_count") == messages
    assert metric_value(consumer, "email_ingest_consumer_emails_stored_total", {"result": "created"}) == 200
    billed = metric_value(
        api, "email_ingest_aws_billed_requests_total", {"service": "sqs", "operation": "SendMessageBatch"}
    )
    assert billed is not None and billed < 200 * 0.2


def test_the_largest_packs_stay_within_the_message_limit(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer
) -> None:
    """Emails of 100 KB: two fit in a 256 KiB pack, three do not."""
    with packed_stack(tmp_path, stack_names, moto_server) as stack:
        assert stack.resources is not None
        bucket = stack.resources.bucket
        email_ids = post_all(stack, 12, "y" * 100_000)
        wait_for(lambda: len(stored_keys(stack.endpoint_url, bucket)) >= 12, timeout=60, message="12 objects")
        api = scrape(stack.api_url)
        s3 = emulator_client("s3", stack.endpoint_url)
        stored = [
            json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            for key in stored_keys(stack.endpoint_url, bucket)
        ]
    assert sorted(document["email_id"] for document in stored) == sorted(email_ids)
    assert all(len(document["email_content"]) > 100_000 for document in stored)
    messages = metric_value(api, "email_ingest_publisher_message_emails_count")
    assert metric_value(api, "email_ingest_publisher_message_emails_bucket", {"le": "2.0"}) == messages
    assert messages is not None and 6 <= messages < 12, "packs of two, never three"
