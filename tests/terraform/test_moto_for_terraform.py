"""The moto patches that Terraform's AWS provider needs (moto_for_terraform.py), on real server processes.

Each moto bug is shown on the plain moto server of the test session (so this fails, and the patch can go, once moto
fixes it), and fixed on the patched server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import emulator_client
from devstack.emulator import MotoServer
from devstack.processes import LOOPBACK, ManagedProcess, free_port, python_module
from tests.tooling import REPO_ROOT

TLS_ONLY = {"Version": "2012-10-17", "Statement": [{"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "sqs:*"}]}


@pytest.fixture(scope="module")
def patched_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = ManagedProcess(
        "moto-for-terraform",
        python_module("tests.terraform.moto_for_terraform", "-H", LOOPBACK, "-p", str(port)),
        log_path=Path(tmp_path_factory.mktemp("moto-tf")) / "moto.log",
        cwd=REPO_ROOT,
    )
    process.start()
    try:
        process.wait_until(f"http://{LOOPBACK}:{port}/moto-api/data.json", timeout=60)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.stop(10)


def _queues(endpoint: str) -> tuple[Any, str, str]:
    sqs = emulator_client("sqs", endpoint)
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"tf-dlq-{suffix}")["QueueUrl"]
    main = sqs.create_queue(QueueName=f"tf-main-{suffix}")["QueueUrl"]
    return sqs, main, dlq


def _arn(sqs: Any, url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def _attributes(sqs: Any, url: str) -> dict[str, str]:
    attributes: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes


def _behaviour(endpoint: str) -> dict[str, Any]:
    """What the provider sees after the queue module's calls: policy, redrive allow policy, redrive policy text."""
    sqs, main, dlq = _queues(endpoint)
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"Policy": json.dumps(TLS_ONLY)})
    redrive = {"deadLetterTargetArn": _arn(sqs, dlq), "maxReceiveCount": 5}
    sqs.set_queue_attributes(QueueUrl=main, Attributes={"RedrivePolicy": json.dumps(redrive)})
    allow = json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [_arn(sqs, main)]})
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": allow})
    found_allow = _attributes(sqs, dlq).get("RedriveAllowPolicy")
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": ""})
    main_attributes = _attributes(sqs, main)
    return {
        "policy kept": "Policy" in main_attributes,
        "allow policy returned": found_allow == allow,
        "allow policy removed": "RedriveAllowPolicy" not in _attributes(sqs, dlq),
        "redrive policy compact": main_attributes.get("RedrivePolicy") == json.dumps(redrive, separators=(",", ":")),
    }


def test_plain_moto_still_has_the_bugs(moto_server: MotoServer) -> None:
    """If this fails, moto fixed one: drop that part of moto_for_terraform.patch_sqs."""
    assert _behaviour(moto_server.endpoint_url) == {
        "policy kept": False,
        "allow policy returned": False,
        "allow policy removed": True,
        "redrive policy compact": False,
    }


def test_patched_moto_behaves_as_sqs(patched_moto: str) -> None:
    assert _behaviour(patched_moto) == {
        "policy kept": True,
        "allow policy returned": True,
        "allow policy removed": True,
        "redrive policy compact": True,
    }
