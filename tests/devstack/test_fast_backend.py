"""LOCAL_AWS=fast (devstack.stack with ElasticMQ and gofakes3 beside moto): the same queues as on moto, an S3 that
honours the conditional put the consumer's exactly-once write relies on, and every service pointed at the right
server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.bootstrap import StackNames, emulator_client, ensure_queues
from devstack.emulator import MotoServer
from devstack.gofakes3 import GoFakeS3Server
from devstack.stack import DevStack, StackConfig
from ingest_common.sqs_limits import MAX_MESSAGE_BYTES
from tests.tooling import require_fast_backend

pytestmark = pytest.mark.tools

# What a queue's attributes must agree on across backends (counts, timestamps and ARNs' account ids differ).
COMPARED = ("VisibilityTimeout", "ReceiveMessageWaitTimeSeconds", "DelaySeconds")


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    require_fast_backend()
    config = StackConfig(local_aws="fast", with_api=False, with_consumer=False,
                         emulator_log_dir=tmp_path_factory.mktemp("fast"))  # fmt: skip
    with DevStack(config) as stack:
        yield stack


def queue_settings(endpoint_url: str, queue_url: str) -> dict[str, Any]:
    attributes = emulator_client("sqs", endpoint_url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    attributes = attributes["Attributes"]
    settings: dict[str, Any] = {name: attributes.get(name) for name in COMPARED}
    if "RedrivePolicy" in attributes:
        policy = json.loads(attributes["RedrivePolicy"])
        settings["dead letters to"] = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
        settings["maxReceiveCount"] = int(policy["maxReceiveCount"])
    return settings


def test_the_bootstrap_gives_both_backends_the_same_queues(fast_stack: DevStack, moto_server: MotoServer) -> None:
    names = StackNames()
    moto_queue, moto_dlq = ensure_queues(
        moto_server.endpoint_url, StackNames(queue="same-q", dead_letter_queue="same-dlq")
    )
    fast = fast_stack.resources
    assert fast is not None
    assert fast.queue_url.startswith(fast_stack.sqs_endpoint_url), "the queues are ElasticMQ's"
    on_moto = queue_settings(moto_server.endpoint_url, moto_queue)
    on_fast = queue_settings(fast_stack.sqs_endpoint_url, fast.queue_url)
    assert on_fast == on_moto | {"dead letters to": names.dead_letter_queue}
    assert on_fast == {"VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "20", "DelaySeconds": "0",
                       "dead letters to": "email-ingest-dlq", "maxReceiveCount": 5}  # fmt: skip
    assert queue_settings(fast_stack.sqs_endpoint_url, fast.dead_letter_queue_url) == queue_settings(
        moto_server.endpoint_url, moto_dlq
    )
    # The bootstrap is idempotent on ElasticMQ too.
    assert ensure_queues(fast_stack.sqs_endpoint_url, names) == (fast.queue_url, fast.dead_letter_queue_url)


def test_queue_and_dlq_take_the_largest_sqs_message(fast_stack: DevStack) -> None:
    resources = fast_stack.resources
    assert resources is not None
    sqs = emulator_client("sqs", fast_stack.sqs_endpoint_url)
    for url in (resources.queue_url, resources.dead_letter_queue_url):
        sqs.send_message(QueueUrl=url, MessageBody="x" * MAX_MESSAGE_BYTES)
        with pytest.raises(ClientError, match="MessageTooLong"):
            sqs.send_message(QueueUrl=url, MessageBody="x" * (MAX_MESSAGE_BYTES + 1))
        sqs.purge_queue(QueueUrl=url)


def test_s3_refuses_to_overwrite_with_a_conditional_put(fast_stack: DevStack) -> None:
    """The consumer writes with If-None-Match: * and counts a 412 as "already stored" (exactly once)."""
    resources = fast_stack.resources
    assert resources is not None
    s3 = emulator_client("s3", fast_stack.s3_endpoint_url)
    key = "emails/2031/01/01/conditional.json"
    s3.put_object(Bucket=resources.bucket, Key=key, Body=b'{"first": true}', IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=resources.bucket, Key=key, Body=b'{"second": true}', IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=resources.bucket, Key=key)["Body"].read() == b'{"first": true}'
    s3.delete_object(Bucket=resources.bucket, Key=key)


def test_each_service_is_pointed_at_its_server(fast_stack: DevStack) -> None:
    env = fast_stack.aws_env()
    assert env["AWS_ENDPOINT_URL"] == fast_stack.endpoint_url  # SSM: moto
    assert env["AWS_ENDPOINT_URL_SQS"] == fast_stack.sqs_endpoint_url
    assert env["AWS_ENDPOINT_URL_S3"] == fast_stack.s3_endpoint_url
    assert len({fast_stack.endpoint_url, fast_stack.sqs_endpoint_url, fast_stack.s3_endpoint_url}) == 3
    resources = fast_stack.resources
    assert resources is not None
    ssm = emulator_client("ssm", fast_stack.endpoint_url)
    token = ssm.get_parameter(Name=resources.token_parameter, WithDecryption=True)["Parameter"]["Value"]
    assert token == fast_stack.token
    emulator_client("s3", fast_stack.s3_endpoint_url).head_bucket(Bucket=resources.bucket)
    assert set(fast_stack.emulator_logs()) == {"moto", "ElasticMQ", "gofakes3"}


def test_gofakes3_server_starts_and_stops(tmp_path: Path) -> None:
    require_fast_backend()
    server = GoFakeS3Server(log_path=tmp_path / "gofakes3.log", quiet=True)
    server.start()
    try:
        emulator_client("s3", server.endpoint_url).create_bucket(Bucket="started")
    finally:
        server.stop()
    assert not server.process.running()
    with pytest.raises(FileNotFoundError, match="install-gofakes3"):
        GoFakeS3Server(binary=tmp_path / "nowhere").start()


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="local_aws"):
        DevStack(StackConfig(local_aws="quick"))
