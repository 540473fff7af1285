"""Moves messages from the dead-letter queue back to the main queue: receive, send, delete; bounded.

    python -m consumer_service.redrive --source DLQ_URL --destination QUEUE_URL [--max-messages 1000] [--dry-run]

For emulators without `StartMessageMoveTask` (moto) and for picking only some messages. A message is
deleted from the source only after the destination accepted it, so an interrupted run duplicates at
worst (the consumer's conditional writes make that harmless) and never loses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, cast

import aioboto3
import orjson

from ingest_common.aws import client_config


@dataclass
class RedriveReport:
    received: int = 0
    moved: int = 0
    failed: int = 0
    dry_run: bool = False


async def redrive(
    sqs: Any, *, source: str, destination: str, max_messages: int, dry_run: bool, wait_seconds: int = 1
) -> RedriveReport:
    report = RedriveReport(dry_run=dry_run)
    held: list[str] = []  # dry run: receipts kept invisible until the end, so nothing is listed twice
    empty_receives = 0
    while report.received < max_messages and empty_receives < 2:
        response = await sqs.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=min(10, max_messages - report.received),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            empty_receives += 1
            continue
        empty_receives = 0
        report.received += len(messages)
        if dry_run:
            for message in messages:
                print(orjson.dumps({"message_id": message["MessageId"], "body_bytes": len(message["Body"])}).decode())
            held.extend(message["ReceiptHandle"] for message in messages)
            continue
        entries = []
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = await sqs.send_message_batch(QueueUrl=destination, Entries=cast(Any, entries))
        moved_ids = {int(success["Id"]) for success in sent.get("Successful", [])}
        report.failed += len(messages) - len(moved_ids)
        if moved_ids:
            deleted = await sqs.delete_message_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "ReceiptHandle": messages[i]["ReceiptHandle"]} for i in sorted(moved_ids)],
            )
            report.moved += len(deleted.get("Successful", []))
    for start in range(0, len(held), 10):  # a dry run gives everything back as it was
        await sqs.change_message_visibility_batch(
            QueueUrl=source,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(held[start : start + 10])
            ],
        )
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m consumer_service.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="the dead-letter queue URL")
    parser.add_argument("--destination", required=True, help="the main queue URL")
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many (default 1000)")
    parser.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)
    if args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    if not args.region:
        parser.error("--region (or AWS_REGION) is required")
    return args


async def _main(args: argparse.Namespace) -> RedriveReport:
    session = aioboto3.Session()
    config = client_config(max_pool_connections=2, read_timeout=30.0)
    async with session.client("sqs", region_name=args.region, config=config) as sqs:
        return await redrive(
            sqs,
            source=args.source,
            destination=args.destination,
            max_messages=args.max_messages,
            dry_run=args.dry_run,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(_main(args))
    print(orjson.dumps({"summary": asdict(report)}).decode())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
