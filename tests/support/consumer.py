"""Consumer test helpers: envelopes to enqueue, settings for a bootstrapped stack, waiting on a condition."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from consumer_service.config import ConsumerSettings
from devstack.bootstrap import Resources, emulator_client
from ingest_common.email import Email
from ingest_common.envelope import Envelope
from ingest_common.sqs_limits import SQS_MAX_BATCH


def envelope(index: int, *, content: str | None = None) -> Envelope:
    return Envelope(
        email_id=str(uuid.uuid4()),
        received_at=datetime.now(UTC),
        request_id=f"req-{index}",
        email=Email(f"subject {index}", "John doe", 1693561101 + index * 86_400, content or f"content {index} é"),
    )


def enqueue(endpoint_url: str, queue_url: str, bodies: list[str]) -> None:
    sqs = emulator_client("sqs", endpoint_url)
    for start in range(0, len(bodies), SQS_MAX_BATCH):
        chunk = bodies[start : start + SQS_MAX_BATCH]
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )
        assert len(response["Successful"]) == len(chunk)


def consumer_settings_for(resources: Resources, **overrides: Any) -> ConsumerSettings:
    base = ConsumerSettings(
        region=resources.region,
        queue_url=resources.queue_url,
        dead_letter_queue_url=resources.dead_letter_queue_url,
        bucket=resources.bucket,
        wait_time_seconds=1,
        queue_metrics_interval_seconds=0.5,
    )
    return dataclasses.replace(base, **overrides)


async def wait_until(condition: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.2) -> None:
    """Polls `condition` (in a thread: it may make blocking calls) until it holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, *, interval: float = 0.2
) -> None:
    """`wait_until` for a condition that is itself a coroutine (a metrics scrape through the test client)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
