"""Reading what the services left in SQS and S3 (test side, plain boto3 against the emulator)."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from devstack.bootstrap import emulator_client


def emails_of(body: str) -> list[dict[str, Any]]:
    """The envelope items of a message body, version 2 (a pack) or 1 (one email)."""
    document = json.loads(body)
    return list(document["emails"]) if document.get("v") == 2 else [document]


def receive_emails(
    endpoint_url: str, queue_url: str, *, expected: int, timeout: float = 30.0
) -> list[tuple[str, dict[str, Any]]]:
    """(MessageId, envelope item) of every email in the queue's messages, once `expected` emails arrived."""
    emails: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while len(emails) < expected and time.monotonic() < deadline:
        for message in receive_all(endpoint_url, queue_url, expected=1, timeout=max(0.1, deadline - time.monotonic())):
            emails.extend((message["MessageId"], item) for item in emails_of(message["Body"]))
    return emails


def receive_all(
    endpoint_url: str, queue_url: str, *, expected: int | None = None, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Every message in the queue, hidden for 5 minutes so none is seen twice."""
    sqs = emulator_client("sqs", endpoint_url)
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    empty_in_a_row = 0
    while time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=300,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        messages.extend(batch)
        if expected is not None and len(messages) >= expected:
            break
        empty_in_a_row = 0 if batch else empty_in_a_row + 1
        if expected is None and empty_in_a_row >= 2:
            break
        if not batch:
            time.sleep(0.1)
    return messages


def queue_depth(endpoint_url: str, queue_url: str) -> tuple[int, int]:
    """(visible, in flight)."""
    attributes = emulator_client("sqs", endpoint_url).get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def stored_keys(endpoint_url: str, bucket: str, prefix: str = "emails/") -> set[str]:
    s3 = emulator_client("s3", endpoint_url)
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def stored_objects(endpoint_url: str, bucket: str, prefix: str = "emails/") -> dict[str, dict[str, Any]]:
    """key -> parsed JSON body of every object under the prefix."""
    s3 = emulator_client("s3", endpoint_url)
    objects: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = orjson.loads(body)
    return objects


def wait_for(condition: Any, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition") -> Any:
    """condition()'s first truthy result; AssertionError naming `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def seed_payload(token: str | None, **data_overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "email_subject": "Happy new year!",
        "email_sender": "John doe",
        "email_timestream": "1693561101",
        "email_content": "Just want to say... Happy new year!!!",
    }
    data.update(data_overrides)
    payload: dict[str, Any] = {"data": data}
    if token is not None:
        payload["token"] = token
    return payload
