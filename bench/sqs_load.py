"""Keeps an SQS server as busy as the API keeps it: SendMessageBatch calls of 10 envelopes at a fixed rate.

Run beside the paced ceiling, so the bare handler shares the machine with a working ElasticMQ the way the
API does (on two cores the JVM's work slows every other process's instructions). Runs until killed.
Usage: python -m bench.sqs_load ENDPOINT_URL QUEUE_URL BATCHES_PER_SECOND
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aioboto3

from api_service.sqs.json_client import SqsJsonClient, session_credentials
from bench.emails import envelope_body
from ingest_common.runtime import run_main


async def load(endpoint_url: str, queue_url: str, batches_per_second: float) -> None:
    sqs = SqsJsonClient(
        endpoint_url=endpoint_url,
        region="us-east-1",
        credentials=await session_credentials(aioboto3.Session()),
        max_connections=16,
        request_timeout=10.0,
    )
    entries = [{"Id": str(index), "MessageBody": envelope_body(["load"])} for index in range(10)]
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
