"""The whole local stack, API -> SQS -> consumer -> S3, as real processes over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import StackNames
from devstack.emulator import MotoServer
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import queue_depth, seed_payload, stored_keys, stored_objects, wait_for
from tests.support.api import post_many

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer) -> Iterator[DevStack]:
    config = StackConfig(
        names=stack_names,
        log_dir=tmp_path,
        emulator_endpoint_url=moto_server.endpoint_url,
        consumer_env={"SQS_WAIT_TIME_SECONDS": "2"},
    )
    with DevStack(config) as running:
        yield running


def test_every_acknowledged_email_is_stored_exactly_once(stack: DevStack) -> None:
    count = 300

    # Every tenth request is a client's retry of the one before it, with the same Idempotency-Key and payload:
    # both must map to one email_id and one object.
    def original(i: int) -> int:
        return i - 1 if i % 10 == 0 and i > 0 else i

    payloads = [
        seed_payload(stack.token, email_subject=f"subject {original(i)}", email_content=f"content {original(i)} ✓",
                     email_timestream=str(1693561101 + original(i) * 3600))
        for i in range(count)
    ]  # fmt: skip
    headers = [{"Idempotency-Key": f"key-{original(i)}"} for i in range(count)]
    results = asyncio.run(post_many(stack.api_url, payloads, headers))
    assert [status for status, _ in results] == [200] * count
    assert stack.resources is not None
    expected: dict[str, dict[str, Any]] = {}
    for (_, body), payload in zip(results, payloads, strict=True):
        expected[body["email_id"]] = payload["data"]
    resources = stack.resources
    wait_for(lambda: queue_depth(stack.endpoint_url, resources.queue_url) == (0, 0)
             and len(stored_keys(stack.endpoint_url, resources.bucket)) >= len(expected),
             timeout=120, interval=1.0, message="the pipeline to store everything")  # fmt: skip
    stored = stored_objects(stack.endpoint_url, resources.bucket)
    by_id = {document["email_id"]: document for document in stored.values()}
    assert len(expected) == count - count // 10 + 1
    assert len(stored) == len(by_id) == len(expected), "one object per acknowledged email_id, no duplicates"
    for email_id, data in expected.items():
        document = by_id[email_id]
        assert document["email_subject"] == data["email_subject"]
        assert document["email_content"] == data["email_content"]
        assert document["email_timestream"] == int(data["email_timestream"])


def test_request_id_travels_from_the_api_to_the_consumer_logs(stack: DevStack) -> None:
    [(status, body)] = asyncio.run(post_many(stack.api_url, [seed_payload(stack.token)],
                                             [{"X-Request-ID": "trace-e2e-0001"}]))  # fmt: skip
    assert status == 200
    assert stack.api is not None and stack.consumer is not None

    def consumer_logged() -> bool:
        assert stack.consumer is not None
        return "trace-e2e-0001" in stack.consumer.log_text()

    wait_for(consumer_logged, timeout=30, message="the consumer to log the request id")
    api_lines = [json.loads(line) for line in stack.api.log_text().splitlines() if "trace-e2e-0001" in line]
    consumer_lines = [json.loads(line) for line in stack.consumer.log_text().splitlines() if "trace-e2e-0001" in line]
    assert any(line["event"] == "request" and line["status"] == 200 for line in api_lines)
    stored_line = next(line for line in consumer_lines if line["event"] == "emails_stored")
    assert stored_line["email_ids"] == [body["email_id"]]
    assert stored_line["request_ids"] == ["trace-e2e-0001"]


def test_smoke_script_passes_against_the_local_stack(stack: DevStack) -> None:
    assert stack.resources is not None
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "smoke.py"), "--api-url", stack.api_url, f"--token={stack.token}",
         "--bucket", stack.resources.bucket, "--region", "us-east-1", "--s3-endpoint-url", stack.endpoint_url,
         "--timeout", "30"],
        env={**stack.aws_env(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_smoke_script_fails_when_the_consumer_is_down(stack: DevStack) -> None:
    assert stack.resources is not None and stack.consumer is not None
    stack.consumer.stop()
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "smoke.py"), "--api-url", stack.api_url, f"--token={stack.token}",
         "--bucket", stack.resources.bucket, "--region", "us-east-1", "--s3-endpoint-url", stack.endpoint_url,
         "--timeout", "3"],
        env={**stack.aws_env(), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr
