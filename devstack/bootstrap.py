"""Creates what the services need in an AWS endpoint (the emulator): idempotent, safe to re-run."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest_common.sqs_limits import MAX_MESSAGE_BYTES

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True, slots=True)
class StackNames:
    queue: str = "email-ingest"
    dead_letter_queue: str = "email-ingest-dlq"
    bucket: str = "email-ingest-local"
    token_parameter: str = "/email-ingest/api-token"  # noqa: S105 - a parameter name, not a token
    region: str = "us-east-1"
    max_receive_count: int = 5
    visibility_timeout_seconds: int = 30
    receive_wait_seconds: int = 20

    @classmethod
    def unique(cls, prefix: str, **overrides: Any) -> StackNames:
        """Names no other stack in the same emulator uses (tests sharing one server): `prefix`-<random> queues and
        bucket, and a token parameter under its own path; `overrides` sets the other fields."""
        suffix = uuid.uuid4().hex[:10]
        names = cls(
            queue=f"{prefix}-{suffix}",
            dead_letter_queue=f"{prefix}-{suffix}-dlq",
            bucket=f"{prefix}-{suffix}",
            token_parameter=f"/email-ingest/{suffix}/api-token",
        )
        return replace(names, **overrides)


@dataclass(frozen=True, slots=True)
class Resources:
    region: str
    queue_url: str
    dead_letter_queue_url: str
    bucket: str
    token_parameter: str


def emulator_client(service: str, endpoint_url: str, region: str = "us-east-1", *, config: Config | None = None) -> Any:
    """A boto3 client for an emulator endpoint, with the placeholder credentials emulators accept."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        config=config,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def ensure_queues(sqs_endpoint_url: str, names: StackNames) -> tuple[str, str]:
    sqs = emulator_client("sqs", sqs_endpoint_url, names.region)
    # SQS's largest size for both: a valid email's envelope can be 520 KiB (envelope.largest_message_bytes).
    size = str(MAX_MESSAGE_BYTES)
    dlq_url = sqs.create_queue(
        QueueName=names.dead_letter_queue,
        Attributes={"MessageRetentionPeriod": "1209600", "MaximumMessageSize": size},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(names.visibility_timeout_seconds),
        "MaximumMessageSize": size,
        "ReceiveMessageWaitTimeSeconds": str(names.receive_wait_seconds),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(names.max_receive_count)}),
    }
    try:
        queue_url = sqs.create_queue(QueueName=names.queue, Attributes=attributes)["QueueUrl"]
    except ClientError as exc:  # exists with other attributes: bring it in line instead of failing
        if exc.response["Error"]["Code"] not in {"QueueAlreadyExists", "QueueNameExists"}:
            raise
        queue_url = sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
    return queue_url, dlq_url


def bootstrap(
    endpoint_url: str,
    token: str,
    names: StackNames | None = None,
    *,
    sqs_endpoint_url: str | None = None,
    s3_endpoint_url: str | None = None,
) -> Resources:
    """SSM SecureString with the token, the queue with its DLQ and redrive policy, and the bucket.

    SQS and S3 can be other servers than the emulator that holds SSM (ElasticMQ and gofakes3 for LOCAL_AWS=fast).
    """
    names = names or StackNames()
    ssm = emulator_client("ssm", endpoint_url, names.region)
    ssm.put_parameter(Name=names.token_parameter, Value=token, Type="SecureString", Overwrite=True)
    queue_url, dlq_url = ensure_queues(sqs_endpoint_url or endpoint_url, names)
    s3 = emulator_client("s3", s3_endpoint_url or endpoint_url, names.region)
    try:
        s3.create_bucket(Bucket=names.bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    return Resources(
        region=names.region,
        queue_url=queue_url,
        dead_letter_queue_url=dlq_url,
        bucket=names.bucket,
        token_parameter=names.token_parameter,
    )
