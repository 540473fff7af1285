"""Keeps an SQS server as busy as the API keeps it: SendMessageBatch calls of 10 envelopes at a fixed rate.

Run beside the paced ceiling, so the bare handler shares the machine with a working ElasticMQ the way the
API does (on two cores the JVM's work slows every other process's instructions). Runs until killed.
Usage: python -m bench.sqs_load ENDPOINT_URL QUEUE_URL BATCHES_PER_SECOND
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any, cast

import aioboto3

from ingest_common.email import Email
from ingest_common.envelope import Envelope, email_id_for
from ingest_common.runtime import run_main
from ingest_common.sqs_json import FrozenCredentials, SqsJsonClient

CONTENT = ("Just want to say... Happy new year!!! " * 12).strip()


async def load(endpoint_url: str, queue_url: str, batches_per_second: float) -> None:
    credentials = cast(Any, await cast(Any, aioboto3.Session().get_credentials()))

    async def frozen() -> FrozenCredentials:
        return cast(FrozenCredentials, await credentials.get_frozen_credentials())

    sqs = SqsJsonClient(
        endpoint_url=endpoint_url, region="us-east-1", credentials=frozen, max_connections=16, request_timeout=10.0
    )
    email = Email("Happy new year!", "John doe", 1693561101, CONTENT)
    entries = [
        {"Id": str(index), "MessageBody": Envelope(email_id_for(None), datetime.now(UTC), "load", email).to_body()}
        for index in range(10)
    ]
    in_flight: set[asyncio.Task[Any]] = set()
    began = time.monotonic()
    sent = 0
    while True:
        sent += 1
        delay = began + sent / batches_per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) < 16:  # never pile up calls the server cannot absorb
            task = asyncio.create_task(sqs.send_message_batch(queue_url, entries))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)


if __name__ == "__main__":
    run_main(load(sys.argv[1], sys.argv[2], float(sys.argv[3])))
