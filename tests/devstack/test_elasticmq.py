"""ElasticMQ (devstack/elasticmq.py): config, lifecycle, loopback-only binding, and the SQS features we rely on
through botocore's JSON protocol (batches, attributes, visibility, redrive to the DLQ)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.exceptions import ClientError

from devstack import processes
from devstack.elasticmq import (
    ELASTICMQ_VERSION,
    QUICK_START_JVM_OPTIONS,
    ElasticMQError,
    ElasticMQServer,
    default_install_dir,
)
from ingest_common.envelope import largest_message_bytes
from tests.tooling import REPO_ROOT, require_tool

MAX_RECEIVE_COUNT = 3
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def _require_elasticmq() -> None:
    require_tool("java")
    jar = default_install_dir() / "lib" / f"elasticmq-server_2.13-{ELASTICMQ_VERSION}.jar"
    if not jar.is_file():
        message = f"{jar} is missing: run scripts/tools/install-elasticmq.sh"
        if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ElasticMQServer]:
    _require_elasticmq()
    with ElasticMQServer(
        max_receive_count=MAX_RECEIVE_COUNT,
        visibility_timeout_seconds=30,
        receive_wait_seconds=0,
        jvm_options=QUICK_START_JVM_OPTIONS,
        work_dir=tmp_path_factory.mktemp("elasticmq"),
    ) as running:
        yield running


@pytest.fixture
def sqs(server: ElasticMQServer) -> Any:
    client = boto3.client("sqs", **server.client_kwargs())
    for url in (server.queue_url, server.dlq_url):
        client.purge_queue(QueueUrl=url)
    return client


# -- configuration (no JVM) ---------------------------------------------------------------------------------------


def test_version_matches_the_pom() -> None:
    pom = (REPO_ROOT / "tools" / "elasticmq" / "pom.xml").read_text(encoding="utf-8")
    match = re.search(r"<elasticmq\.version>([^<]+)</elasticmq\.version>", pom)
    assert match is not None
    assert match.group(1) == ELASTICMQ_VERSION


def test_config_binds_loopback_and_disables_the_stats_ui() -> None:
    config = ElasticMQServer(max_receive_count=7, visibility_timeout_seconds=45, receive_wait_seconds=3).render_config(
        port=41234
    )
    assert "0.0.0.0" not in config
    rest_sqs = re.search(r"rest-sqs \{(.*?)\}", config, re.DOTALL)
    rest_stats = re.search(r"rest-stats \{(.*?)\}", config, re.DOTALL)
    assert rest_sqs is not None
    assert rest_stats is not None
    assert 'bind-hostname = "127.0.0.1"' in rest_sqs.group(1)
    assert "bind-port = 41234" in rest_sqs.group(1)
    assert "enabled = false" in rest_stats.group(1)
    assert 'bind-hostname = "127.0.0.1"' in rest_stats.group(1)
    assert 'name = "email-ingest-dlq"' in config
    assert "maxReceiveCount = 7" in config
    assert "defaultVisibilityTimeout = 45 seconds" in config
    assert "receiveMessageWait = 3 seconds" in config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_name": "has space"},
        {"dlq_name": 'quote"injection'},
        {"queue_name": "same", "dlq_name": "same"},
        {"max_receive_count": 0},
        {"visibility_timeout_seconds": 43201},
        {"receive_wait_seconds": 21},
        {"port": 0},
    ],
    ids=",".join,
)
def test_bad_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"invalid|must"):
        ElasticMQServer(**kwargs)


def test_missing_install_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ElasticMQError, match=r"install-elasticmq\.sh"):
        ElasticMQServer(install_dir=tmp_path / "nowhere").start()


def test_properties_need_a_running_server() -> None:
    idle = ElasticMQServer()
    with pytest.raises(ElasticMQError, match="not running"):
        _ = idle.queue_url
    idle.stop()  # stopping a server that never started is a no-op


# -- a running server ---------------------------------------------------------------------------------------------


@pytest.mark.tools
def test_botocore_talks_json_to_it(server: ElasticMQServer, sqs: Any) -> None:
    assert sqs.meta.service_model.protocol == "json"
    assert server.startup_seconds is not None
    assert server.queue_url == f"{server.endpoint_url}/000000000000/email-ingest"
    assert server.dlq_url.endswith("/email-ingest-dlq")
    attributes = sqs.get_queue_attributes(QueueUrl=server.queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:email-ingest-dlq",
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    assert attributes["VisibilityTimeout"] == "30"


@pytest.mark.tools
def test_bound_to_loopback_only(server: ElasticMQServer) -> None:
    listening = [
        connection
        for connection in psutil.Process(server.pid).net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    ]
    assert listening, "ElasticMQ listens on nothing"
    assert {connection.laddr.ip for connection in listening} <= LOOPBACK
    # Only the SQS port: no statistics UI, no JMX.
    assert {connection.laddr.port for connection in listening} == {server.port}


@pytest.mark.tools
def test_send_receive_delete_with_attributes(server: ElasticMQServer, sqs: Any) -> None:
    sent = sqs.send_message(
        QueueUrl=server.queue_url,
        MessageBody='{"v": 1}',
        MessageAttributes={"request_id": {"DataType": "String", "StringValue": "req-1"}},
    )
    received = sqs.receive_message(
        QueueUrl=server.queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
    )["Messages"]
    assert len(received) == 1
    message = received[0]
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == '{"v": 1}'
    assert message["MessageAttributes"]["request_id"] == {"StringValue": "req-1", "DataType": "String"}
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert int(message["Attributes"]["SentTimestamp"]) > 0

    counts = sqs.get_queue_attributes(
        QueueUrl=server.queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "ApproximateNumberOfMessagesDelayed": "0",
    }
    sqs.delete_message(QueueUrl=server.queue_url, ReceiptHandle=message["ReceiptHandle"])
    with pytest.raises(ClientError) as error:
        sqs.delete_message(QueueUrl=server.queue_url, ReceiptHandle="not-a-receipt-handle")
    assert error.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"


@pytest.mark.tools
def test_batches_and_visibility(server: ElasticMQServer, sqs: Any) -> None:
    entries = [{"Id": str(index), "MessageBody": f"message {index}"} for index in range(10)]
    sent = sqs.send_message_batch(QueueUrl=server.queue_url, Entries=entries)
    assert len(sent["Successful"]) == 10
    assert not sent.get("Failed")
    with pytest.raises(ClientError, match="TooManyEntriesInBatchRequest"):
        sqs.send_message_batch(QueueUrl=server.queue_url, Entries=[*entries, {"Id": "10", "MessageBody": "x"}])

    messages: list[dict[str, Any]] = []
    while len(messages) < 10:
        batch = sqs.receive_message(QueueUrl=server.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        assert batch.get("Messages"), "fewer than 10 messages came back"
        messages.extend(batch["Messages"])
    assert sorted(message["Body"] for message in messages) == sorted(entry["MessageBody"] for entry in entries)

    # Make two visible again at once; a bad receipt handle comes back as a Failed entry, not an exception.
    changed = sqs.change_message_visibility_batch(
        QueueUrl=server.queue_url,
        Entries=[
            {"Id": "a", "ReceiptHandle": messages[0]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "b", "ReceiptHandle": messages[1]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "c", "ReceiptHandle": "bogus", "VisibilityTimeout": 0},
        ],
    )
    assert sorted(entry["Id"] for entry in changed["Successful"]) == ["a", "b"]
    assert [(entry["Id"], entry["Code"]) for entry in changed["Failed"]] == [("c", "ReceiptHandleIsInvalid")]
    again = sqs.receive_message(QueueUrl=server.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    assert sorted(message["Body"] for message in again) == sorted([messages[0]["Body"], messages[1]["Body"]])

    handles = list({message["MessageId"]: message["ReceiptHandle"] for message in [*messages, *again]}.values())
    deleted = sqs.delete_message_batch(
        QueueUrl=server.queue_url,
        Entries=[
            *({"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(handles[:9])),
            {"Id": "bogus", "ReceiptHandle": "bogus"},
        ],
    )
    assert len(deleted["Successful"]) == 9
    assert [entry["Id"] for entry in deleted["Failed"]] == ["bogus"]
    sqs.delete_message(QueueUrl=server.queue_url, ReceiptHandle=handles[9])
    left = sqs.get_queue_attributes(
        QueueUrl=server.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert left == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


@pytest.mark.tools
def test_redrive_to_the_dlq_after_max_receive_count(server: ElasticMQServer, sqs: Any) -> None:
    sqs.send_message(QueueUrl=server.queue_url, MessageBody="poison")
    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        # VisibilityTimeout=0: a consumer that fails and leaves the message to SQS.
        messages = sqs.receive_message(
            QueueUrl=server.queue_url,
            VisibilityTimeout=0,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )["Messages"]
        assert [message["Body"] for message in messages] == ["poison"]
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    # The next receive moves it to the DLQ instead of delivering it a fourth time.
    assert not sqs.receive_message(QueueUrl=server.queue_url, WaitTimeSeconds=1).get("Messages")
    dead = sqs.receive_message(
        QueueUrl=server.dlq_url, WaitTimeSeconds=1, MessageSystemAttributeNames=["DeadLetterQueueSourceArn"]
    )["Messages"]
    assert [message["Body"] for message in dead] == ["poison"]
    assert dead[0]["Attributes"]["DeadLetterQueueSourceArn"] == "arn:aws:sqs:us-east-1:000000000000:email-ingest"
    assert sqs.list_dead_letter_source_queues(QueueUrl=server.dlq_url)["queueUrls"] == [server.queue_url]


@pytest.mark.tools
def test_message_size_limit_is_one_mebibyte(server: ElasticMQServer, sqs: Any) -> None:
    assert largest_message_bytes() < 1024 * 1024  # so the queue and its DLQ take every valid email
    sqs.send_message(QueueUrl=server.dlq_url, MessageBody="x" * (1024 * 1024))
    sqs.send_message(QueueUrl=server.queue_url, MessageBody="x" * (1024 * 1024))
    with pytest.raises(ClientError, match="MessageTooLong"):
        sqs.send_message(QueueUrl=server.queue_url, MessageBody="x" * (1024 * 1024 + 1))


def _is_running(server: ElasticMQServer) -> bool:
    return server.running


@pytest.mark.tools
def test_start_stop_and_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require_elasticmq()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ElasticMQError, match=r"could not start|exited"):
            ElasticMQServer(port=port, jvm_options=QUICK_START_JVM_OPTIONS, work_dir=tmp_path / "busy").start()
        # It fails on the bind error in the log, not after the 60 s start-up timeout.
        assert time.monotonic() - started < 45

        # An auto-picked port that got taken in the meantime: it retries on another one.
        picks = [port]
        original_free_port = processes.free_port

        def taken_first() -> int:
            return picks.pop() if picks else original_free_port()

        monkeypatch.setattr(processes, "free_port", taken_first)
        server = ElasticMQServer(jvm_options=QUICK_START_JVM_OPTIONS)
        with server:
            assert _is_running(server)
            assert server.port != port
            pid = server.pid
            endpoint_port = server.port
            client = boto3.client("sqs", **server.client_kwargs())
            assert sorted(client.list_queues()["QueueUrls"]) == sorted([server.dlq_url, server.queue_url])
    assert not _is_running(server)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(("127.0.0.1", endpoint_port)) != 0, "the port still accepts connections"
    server.stop()  # idempotent


@pytest.mark.tools
def test_jvm_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """A SIGKILLed parent (a killed test run, `timeout -s KILL`) must not leave an orphaned JVM."""
    _require_elasticmq()
    script = (
        "import time\n"
        "from devstack.elasticmq import ElasticMQServer, QUICK_START_JVM_OPTIONS\n"
        "server = ElasticMQServer(jvm_options=QUICK_START_JVM_OPTIONS)\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        jvm_pid = int(parent.stdout.readline())
        assert psutil.pid_exists(jvm_pid)
    finally:
        parent.kill()
        parent.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not psutil.pid_exists(jvm_pid) or psutil.Process(jvm_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.2)
    else:
        psutil.Process(jvm_pid).kill()
        pytest.fail(f"the JVM {jvm_pid} outlived its killed parent")
