"""The consumer's baseline: receive -> put -> delete with aioboto3 at the same concurrency, and nothing else.

No validation, no idempotent put, no heartbeat, no metrics, no logs: what the consumer's guarantees cost is
the gap between this loop and the real consumer on the same endpoints.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aioboto3
import orjson

from ingest_common.aws import client_config
from ingest_common.runtime import run_main


async def drain(queue_url: str, bucket: str, pollers: int, expected: int) -> None:
    session = aioboto3.Session()
    stored = 0
    done = asyncio.Event()
    sqs_config = client_config(max_pool_connections=pollers + 8, read_timeout=30.0)
    s3_config = client_config(max_pool_connections=pollers * 10, read_timeout=30.0)
    region = os.environ.get("AWS_REGION", "us-east-1")
    async with (
        session.client("sqs", region_name=region, config=sqs_config) as sqs,
        session.client("s3", region_name=region, config=s3_config) as s3,
    ):

        async def store(message: Any) -> None:
            # One email per message in this loop's backlog (version 2, one item): stored as the body reads.
            [email] = orjson.loads(message["Body"])["emails"]
            await s3.put_object(Bucket=bucket, Key=f"bare/{email['email_id']}.json", Body=message["Body"].encode())

        async def poll() -> None:
            nonlocal stored
            while not done.is_set():
                response = await sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                messages = response.get("Messages", [])
                if not messages:
                    continue
                await asyncio.gather(*(store(message) for message in messages))
                await sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
                stored += len(messages)
                if stored >= expected:
                    done.set()

        await asyncio.gather(*(poll() for _ in range(pollers)))


if __name__ == "__main__":
    run_main(drain(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
