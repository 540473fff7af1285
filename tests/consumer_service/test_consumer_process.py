"""The consumer as a real process: start-up validation, SIGTERM mid-batch, and the DLQ redrive tool."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.faultproxy import FaultProxy, Mode
from devstack.stack import DevStack, StackConfig
from ingest_common.envelope import pack_body
from tests.aws_helpers import queue_depth, stored_keys, wait_for
from tests.support.consumer import enqueue, envelope


@pytest.mark.integration
def test_bad_configuration_exits_2_naming_every_variable() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "consumer_service"],
        env={"PATH": "/usr/bin:/bin", "CONSUMER_POLLERS": "0", "S3_KEY_PREFIX": "/abs", "SQS_DLQ_URL": "dlq"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    for variable in ("AWS_REGION", "SQS_QUEUE_URL", "S3_BUCKET", "CONSUMER_POLLERS", "S3_KEY_PREFIX", "SQS_DLQ_URL"):
        assert variable in completed.stderr


def stored_results(log_text: str) -> list[str]:
    return [
        result
        for line in log_text.splitlines()
        if '"event":"emails_stored"' in line
        for result, count in json.loads(line)["results"].items()
        for _ in range(count)
    ]


@pytest.mark.parametrize("pack", [1, 8], ids=["one-email-per-message", "packs-of-8"])
def test_sigterm_mid_batch_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, pack: int
) -> None:
    names = dataclasses.replace(stack_names, visibility_timeout_seconds=5)
    # S3 behind a slow proxy: the consumer is mid-batch, with writes in flight, whenever SIGTERM lands.
    slow_s3 = FaultProxy.for_url(moto_server.endpoint_url, name="slow-s3").start()
    slow_s3.set_mode(Mode.LATENCY, latency=0.05)
    config = StackConfig(
        with_api=False,
        names=names,
        log_dir=tmp_path / "first",
        emulator_endpoint_url=moto_server.endpoint_url,
        consumer_env={
            "SQS_WAIT_TIME_SECONDS": "1",
            "SHUTDOWN_GRACE_SECONDS": "5",
            "CONSUMER_MAX_IN_FLIGHT": "8",
            "S3_MAX_CONCURRENT_WRITES": "8",
            "AWS_ENDPOINT_URL_S3": slow_s3.endpoint_url,
        },
    )
    envelopes = [envelope(i) for i in range(400)]
    with DevStack(config) as stack:
        assert stack.resources is not None and stack.consumer is not None and stack.consumer.process is not None
        resources = stack.resources
        packs = [envelopes[start : start + pack] for start in range(0, len(envelopes), pack)]
        enqueue(stack.endpoint_url, resources.queue_url, [pack_body([e.to_item() for e in p]) for p in packs])
        wait_for(
            lambda: len(stored_keys(stack.endpoint_url, resources.bucket)) >= 20,
            timeout=60,
            message="the first emails",
            interval=0.02,
        )
        began = time.monotonic()
        stack.consumer.signal(signal.SIGTERM)
        assert stack.consumer.process.wait(30) == 0
        assert time.monotonic() - began < 5 + 3, "the drain stays within its grace period"
        first_log = stack.consumer.log_text()
        assert '"event":"consumer_drained"' in first_log
        partial = len(stored_keys(stack.endpoint_url, resources.bucket))
        assert partial < 400, "the test must stop the consumer mid-run"
        # A second consumer finishes the queue.
        stack.config.log_dir = tmp_path / "second"
        second = stack.start_consumer()
        wait_for(
            lambda: queue_depth(stack.endpoint_url, resources.queue_url) == (0, 0),
            timeout=120,
            message="the second consumer to drain the queue",
        )
        stored = stored_keys(stack.endpoint_url, resources.bucket)
        second.stop()
        results = stored_results(first_log) + stored_results(second.log_text())
    slow_s3.stop()
    assert set(stored) == {item.s3_key("emails/") for item in envelopes}
    assert results.count("created") == 400, "every email written exactly once"


def test_redrive_moves_dead_letters_back_and_dry_run_changes_nothing(
    sqs_endpoint: str, aws_env: str, moto_server: MotoServer, stack_names: StackNames, api_token: str
) -> None:
    from devstack.bootstrap import bootstrap

    resources = bootstrap(moto_server.endpoint_url, api_token, stack_names, sqs_endpoint_url=sqs_endpoint)
    enqueue(sqs_endpoint, resources.dead_letter_queue_url, [f"dead-{i}" for i in range(25)])
    command = [
        sys.executable, "-m", "consumer_service.redrive",
        "--source", resources.dead_letter_queue_url, "--destination", resources.queue_url,
    ]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": aws_env, "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.splitlines()[-1])["summary"] == {
        "received": 25, "moved": 0, "left": 0, "failed": 0, "duplicates": 0, "not_sent": 0, "retries": 0,
        "errors": {}, "stopped": None, "dry_run": True,
    }  # fmt: skip
    assert queue_depth(sqs_endpoint, resources.dead_letter_queue_url) == (25, 0)
    limited = subprocess.run([*command, "--max-messages", "10"], env=env, capture_output=True, text=True,
                             timeout=120, check=False)  # fmt: skip
    assert json.loads(limited.stdout.splitlines()[-1])["summary"]["moved"] == 10
    rest = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert rest.returncode == 0, rest.stderr
    assert json.loads(rest.stdout.splitlines()[-1])["summary"]["moved"] == 15
    assert queue_depth(sqs_endpoint, resources.dead_letter_queue_url) == (0, 0)
    sqs = emulator_client("sqs", sqs_endpoint)
    bodies: set[str] = set()
    while len(bodies) < 25:
        batch = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        bodies.update(message["Body"] for message in batch.get("Messages", []))
    assert bodies == {f"dead-{i}" for i in range(25)}


@pytest.mark.integration
def test_redrive_rejects_bad_arguments() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "consumer_service.redrive", "--source", "a", "--destination", "b",
         "--max-messages", "0", "--region", "us-east-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "--max-messages" in completed.stderr
