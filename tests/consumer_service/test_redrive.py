"""The DLQ redrive tool: packing by bytes, per-entry and whole-call failures, against real moto and ElasticMQ.

Both emulators refuse a SendMessageBatch whose bodies add up to more than 1 MiB (moto: `BatchRequestTooLong`;
ElasticMQ 1.7: `InvalidAttributeValue` "MessageTooLong"), so ten 200 KB dead letters in one batch fail there as on
SQS. Neither counts message attributes, nor bytes rather than characters, as SQS does: the tests check the sizes
the tool sent through a recording wrapper, with the size SQS counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.exceptions import ClientError

from consumer_service.redrive import RetryPolicy, pack_batches, redrive, send_entry
from devstack.bootstrap import DUMMY_CREDENTIALS, Resources, emulator_client
from devstack.emulator import MotoServer
from ingest_common.aws import client_config
from ingest_common.sqs_limits import MAX_BATCH_BYTES, SQS_MAX_BATCH, message_payload_bytes
from tests.aws_helpers import queue_depth, receive_all

FAST_RETRY = RetryPolicy(attempts=4, backoff_base_seconds=0.01, backoff_cap_seconds=0.05)
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"

# -- packing (unit) -------------------------------------------------------------------------------------------------


def test_pack_fills_a_batch_up_to_exactly_the_byte_limit() -> None:
    half = MAX_BATCH_BYTES // 2
    assert pack_batches([half, half], int) == [[half, half]]
    assert pack_batches([half, half + 1], int) == [[half], [half + 1]]
    assert pack_batches([MAX_BATCH_BYTES, 1], int) == [[MAX_BATCH_BYTES], [1]]


def test_pack_never_puts_more_than_ten_entries_in_a_batch() -> None:
    assert [len(batch) for batch in pack_batches(list(range(25)), lambda _: 1)] == [10, 10, 5]
    assert pack_batches([], int) == []


def test_pack_sends_a_message_over_the_limit_alone_and_keeps_the_order() -> None:
    giant = MAX_BATCH_BYTES * 2
    assert pack_batches([1, 2, giant, 3, 4], int) == [[1, 2], [giant], [3, 4]]
    assert pack_batches([giant], int) == [[giant]]


def test_pack_of_200_kb_dead_letters_stays_under_the_limit() -> None:
    sizes = [200_000] * 12
    batches = pack_batches(sizes, int)
    assert [len(batch) for batch in batches] == [5, 5, 2]
    assert all(sum(batch) <= MAX_BATCH_BYTES and len(batch) <= SQS_MAX_BATCH for batch in batches)


def test_attributes_count_towards_the_batch_bytes() -> None:
    attributes = {"request_id": {"DataType": "String", "StringValue": "r" * 100}}
    entry_bytes = message_payload_bytes("x" * (MAX_BATCH_BYTES // 2), attributes)
    assert entry_bytes == MAX_BATCH_BYTES // 2 + len("request_id") + len("String") + 100
    entries = [("x" * (MAX_BATCH_BYTES // 2), attributes)] * 2  # the bodies alone would fit in one batch
    batches = pack_batches(entries, lambda entry: message_payload_bytes(*entry))
    assert [len(batch) for batch in batches] == [1, 1]


def test_payload_bytes_are_utf8_bytes_and_raw_binary_lengths() -> None:
    attributes: dict[str, dict[str, Any]] = {
        "é": {"DataType": "String", "StringValue": "ü"},
        "n": {"DataType": "Number", "StringValue": "12"},
        "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
    }
    assert message_payload_bytes("é€", None) == 2 + 3
    assert message_payload_bytes("", attributes) == (2 + 6 + 2) + (1 + 6 + 2) + (1 + 6 + 3)


def test_send_entry_keeps_message_attributes_and_only_sendable_system_attributes() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "h",
        "Body": "body é",
        "Attributes": {"AWSTraceHeader": TRACE_HEADER, "SenderId": "AIDA", "ApproximateReceiveCount": "6"},
        "MessageAttributes": {
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01", "BinaryListValues": [], "StringListValues": []},
            "count": {"DataType": "Number.int", "StringValue": "7"},
        },
    }  # fmt: skip
    assert send_entry(message) == {
        "MessageBody": "body é",
        "MessageAttributes": {
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "count": {"DataType": "Number.int", "StringValue": "7"},
        },
        "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE_HEADER}},
    }
    assert send_entry({"Body": "plain", "Attributes": {"SenderId": "x"}}) == {"MessageBody": "plain"}


# -- helpers against the real servers -------------------------------------------------------------------------------


def big_body(index: int, size: int = 200_000) -> str:
    head = f"dead-{index:03d}:"
    return head + "x" * (size - len(head))


def attributes_for(index: int) -> dict[str, dict[str, Any]]:
    return {
        "request_id": {"DataType": "String", "StringValue": f"req-{index}-é"},
        "attempt": {"DataType": "Number", "StringValue": str(index)},
        "digest": {"DataType": "Binary", "BinaryValue": bytes([0, 255, index % 256, 10, 13])},
    }


def fill(endpoint_url: str, queue_url: str, bodies: list[str], *, with_attributes: bool = True) -> None:
    sqs = emulator_client("sqs", endpoint_url)
    for index, body in enumerate(bodies):
        extra: dict[str, Any] = {"MessageAttributes": attributes_for(index)} if with_attributes else {}
        if with_attributes and index % 2 == 0:
            extra["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE_HEADER}}
        sqs.send_message(QueueUrl=queue_url, MessageBody=body, **extra)


def receive_with_system_attributes(endpoint_url: str, queue_url: str, expected: int) -> list[dict[str, Any]]:
    sqs = emulator_client("sqs", endpoint_url)
    messages: list[dict[str, Any]] = []
    for _ in range(50):
        if len(messages) >= expected:
            break
        messages += sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=300,
            MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
    return messages


def normalized_attributes(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {key: value for key, value in attribute.items() if value not in (None, [])}
        for name, attribute in (message.get("MessageAttributes") or {}).items()
    }


@dataclasses.dataclass
class Recording:
    """The real aioboto3 client, with every SendMessageBatch's entry sizes (as SQS counts them) noted."""

    sqs: Any
    batches: list[list[int]] = dataclasses.field(default_factory=list)
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    async def send_message_batch(self, **kwargs: Any) -> Any:
        entries = kwargs["Entries"]
        self.entries.extend(entries)
        self.batches.append([message_payload_bytes(e["MessageBody"], e.get("MessageAttributes")) for e in entries])
        return await self.sqs.send_message_batch(**kwargs)


async def sqs_client(endpoint_url: str) -> Any:
    session = aioboto3.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    config = client_config(max_pool_connections=2, read_timeout=30.0, max_attempts=1)
    return session.client("sqs", endpoint_url=endpoint_url, config=config)


# -- large dead letters against both servers ------------------------------------------------------------------------


def test_the_servers_refuse_ten_200_kb_messages_in_one_batch(sqs_endpoint: str, aws_resources: Resources) -> None:
    """What the old tool did (one SendMessageBatch per received group) fails on both emulators, as on SQS."""
    sqs = emulator_client("sqs", sqs_endpoint)
    entries = [{"Id": str(i), "MessageBody": big_body(i)} for i in range(10)]
    with pytest.raises(ClientError) as refused:
        sqs.send_message_batch(QueueUrl=aws_resources.queue_url, Entries=entries)
    code = refused.value.response["Error"]["Code"]
    assert code in {"AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong", "InvalidAttributeValue"}


async def test_redrive_moves_large_dead_letters_in_batches_under_1_mib_intact(
    sqs_endpoint: str, aws_resources: Resources, moto_server: MotoServer
) -> None:
    bodies = [big_body(i) for i in range(12)]
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, bodies)
    async with await sqs_client(sqs_endpoint) as client:
        recording = Recording(client)
        report = await redrive(
            recording,
            source=aws_resources.dead_letter_queue_url,
            destination=aws_resources.queue_url,
            max_messages=1000,
            dry_run=False,
        )
    assert (report.received, report.moved, report.left, report.failed, report.duplicates) == (12, 12, 0, 0, 0)
    assert report.errors == {}
    assert sum(len(batch) for batch in recording.batches) == 12, "each message sent once"
    assert all(sum(batch) <= MAX_BATCH_BYTES and len(batch) <= SQS_MAX_BATCH for batch in recording.batches)
    assert len(recording.batches) >= 3, "2.4 MB cannot go in fewer than three 1 MiB batches"
    moved = receive_with_system_attributes(sqs_endpoint, aws_resources.queue_url, expected=12)
    assert sorted(message["Body"] for message in moved) == bodies
    for message in moved:
        index = int(message["Body"][5:8])
        assert normalized_attributes(message) == attributes_for(index)
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (0, 0)
    # The trace header (the one system attribute SendMessage takes) is sent on; moto drops it from batches.
    traced = {entry["MessageBody"] for entry in recording.entries if "MessageSystemAttributes" in entry}
    assert traced == set(bodies[::2])
    assert all(
        entry["MessageSystemAttributes"] == {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE_HEADER}}
        for entry in recording.entries
        if entry["MessageBody"] in traced
    )
    if sqs_endpoint != moto_server.endpoint_url:
        assert {m["Body"] for m in moved if m["Attributes"].get("AWSTraceHeader") == TRACE_HEADER} == traced


# -- a destination that refuses entries: a proxy in front of the real server ----------------------------------------


@dataclasses.dataclass
class RefusingProxy:
    """Forwards to the real server and makes it refuse entries the way SQS does, chosen by body prefix.

    `refuse-`: refused for good (SenderFault true). `flaky-`: refused once as a server fault. `vanish-`: left out of
    the first answer altogether. `stuck-`: accepted, but its delete from the source fails (ReceiptHandleIsInvalid).
    `call_failures`: that many SendMessageBatch calls answered 500 InternalError as a whole.
    """

    upstream: str
    call_failures: int = 0
    sent: list[str] = dataclasses.field(default_factory=list)
    refused_once: set[str] = dataclasses.field(default_factory=set)
    stuck_handles: set[str] = dataclasses.field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if target == "SendMessageBatch" and self.call_failures > 0:
            self.call_failures -= 1
            return self.answer({"__type": "InternalError", "message": "injected"}, status=500)
        injected: list[dict[str, Any]] = []
        document = orjson.loads(body) if body else {}
        if target == "SendMessageBatch":
            kept = []
            for entry in document["Entries"]:
                text = entry["MessageBody"]
                once = text not in self.refused_once
                if text.startswith("refuse-"):
                    injected.append({"Id": entry["Id"], "Code": "InvalidMessageContents", "SenderFault": True})
                elif text.startswith("flaky-") and once:
                    self.refused_once.add(text)
                    injected.append({"Id": entry["Id"], "Code": "InternalError", "SenderFault": False})
                elif text.startswith("vanish-") and once:
                    self.refused_once.add(text)  # in neither Successful nor Failed
                else:
                    kept.append(entry)
            self.sent.extend(entry["MessageBody"] for entry in kept)
            document["Entries"] = kept
            if not kept:
                return self.answer({"Successful": [], "Failed": injected})
        elif target == "DeleteMessageBatch":
            kept = []
            for entry in document["Entries"]:
                if entry["ReceiptHandle"] in self.stuck_handles:
                    injected.append({"Id": entry["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True})
                else:
                    kept.append(entry)
            document["Entries"] = kept
            if not kept:
                return self.answer({"Successful": [], "Failed": injected})
        forwarded = orjson.dumps(document) if injected or target == "SendMessageBatch" else body
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream, data=forwarded, headers=headers) as up,
        ):
            answer, status = await up.read(), up.status
        if status == 200 and target == "ReceiveMessage":
            for message in orjson.loads(answer).get("Messages", []):
                if message["Body"].startswith("stuck-"):
                    self.stuck_handles.add(message["ReceiptHandle"])
        if status == 200 and injected:
            result = orjson.loads(answer)
            result.setdefault("Failed", []).extend(injected)
            return self.answer(result)
        return web.Response(body=answer, status=status, content_type="application/x-amz-json-1.0")

    @staticmethod
    def answer(document: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(document), status=status, content_type="application/x-amz-json-1.0")


@pytest.fixture
async def refusing_proxy(sqs_endpoint: str) -> AsyncIterator[tuple[RefusingProxy, str]]:
    proxy = RefusingProxy(sqs_endpoint + "/")
    app = web.Application(client_max_size=4 * MAX_BATCH_BYTES)
    app.router.add_post("/{tail:.*}", proxy.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield proxy, str(server.make_url("/")).rstrip("/")
    await server.close()


def refusal_bodies() -> dict[str, list[str]]:
    padding = "p" * 150_000  # several batches per received group
    return {
        kind: [f"{kind}-{i}-{padding}" for i in range(count)]
        for kind, count in (("ok", 9), ("refuse", 3), ("flaky", 3), ("vanish", 2), ("stuck", 2))
    }


async def test_refused_entries_stay_in_the_dlq_and_only_accepted_ones_are_deleted(
    sqs_endpoint: str, aws_resources: Resources, refusing_proxy: tuple[RefusingProxy, str]
) -> None:
    _, proxy_url = refusing_proxy
    bodies = refusal_bodies()
    everything = [body for kind in bodies.values() for body in kind]
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, everything, with_attributes=False)
    progress = io.StringIO()
    async with await sqs_client(proxy_url) as client:
        report = await redrive(
            client,
            source=aws_resources.dead_letter_queue_url,
            destination=aws_resources.queue_url,
            max_messages=1000,
            dry_run=False,
            retry=FAST_RETRY,
            progress=progress,
            progress_seconds=0,
            out=io.StringIO(),
        )
    assert report.received == 19
    assert report.moved == 9 + 3 + 2, "ok, flaky and vanish are accepted (the last two on a retry)"
    assert report.failed == 3 and report.duplicates == 2 and report.not_sent == 0
    assert report.left == 5 and report.stopped is None
    assert report.retries >= 5
    assert report.errors["InvalidMessageContents"] == 3 and report.errors["ReceiptHandleIsInvalid"] == 2
    assert report.errors["InternalError"] == 3 and report.errors["MissingFromResponse"] == 2
    # What the destination refused, and what it took but could not be deleted, is back in the DLQ, visible at once.
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (5, 0)
    left = receive_all(sqs_endpoint, aws_resources.dead_letter_queue_url, expected=5)
    assert sorted(message["Body"] for message in left) == sorted(bodies["refuse"] + bodies["stuck"])
    moved = receive_all(sqs_endpoint, aws_resources.queue_url, expected=16)
    assert sorted(message["Body"] for message in moved) == sorted(
        bodies["ok"] + bodies["flaky"] + bodies["vanish"] + bodies["stuck"]
    )
    events = [json.loads(line) for line in progress.getvalue().splitlines()]
    assert sum(1 for event in events if event.get("event") == "not_moved") == 3
    assert sum(1 for event in events if event.get("event") == "duplicate") == 2
    assert events[-1]["progress"]["left"] == 5


async def test_a_transient_outage_of_the_destination_is_retried(
    sqs_endpoint: str, aws_resources: Resources, refusing_proxy: tuple[RefusingProxy, str]
) -> None:
    proxy, proxy_url = refusing_proxy
    proxy.call_failures = 2
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, [f"m{i}" for i in range(15)], with_attributes=False)
    async with await sqs_client(proxy_url) as client:
        report = await redrive(client, source=aws_resources.dead_letter_queue_url, destination=aws_resources.queue_url,
                               max_messages=1000, dry_run=False, retry=FAST_RETRY)  # fmt: skip
    assert (report.moved, report.left, report.stopped) == (15, 0, None)
    assert report.errors == {"InternalError": 2}
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (0, 0)


async def test_a_lasting_outage_stops_the_run_and_gives_the_messages_back(
    sqs_endpoint: str, aws_resources: Resources, refusing_proxy: tuple[RefusingProxy, str]
) -> None:
    proxy, proxy_url = refusing_proxy
    proxy.call_failures = 1_000
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, [f"m{i}" for i in range(25)], with_attributes=False)
    async with await sqs_client(proxy_url) as client:
        report = await redrive(client, source=aws_resources.dead_letter_queue_url, destination=aws_resources.queue_url,
                               max_messages=1000, dry_run=False, retry=FAST_RETRY)  # fmt: skip
    assert report.stopped is not None and "SendMessageBatch" in report.stopped
    assert report.moved == 0 and report.left == report.received == 10
    assert report.failed + report.not_sent == 10
    assert report.errors == {"InternalError": FAST_RETRY.attempts}
    # Nothing was deleted, and what the run held is visible again at once for a rerun.
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (25, 0)
    assert queue_depth(sqs_endpoint, aws_resources.queue_url) == (0, 0)


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_an_interrupted_run_finishes_its_batch_and_gives_the_rest_back(
    sqs_endpoint: str, aws_resources: Resources
) -> None:
    bodies = [big_body(i, size=300_000) for i in range(10)]  # one received group, three batches
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, bodies, with_attributes=False)
    stop = asyncio.Event()

    @dataclasses.dataclass
    class StopAfterFirstSend(Recording):
        async def send_message_batch(self, **kwargs: Any) -> Any:
            stop.set()  # as SIGINT/SIGTERM does in the command
            return await super().send_message_batch(**kwargs)

    async with await sqs_client(sqs_endpoint) as client:
        recording = StopAfterFirstSend(client)
        report = await redrive(recording, source=aws_resources.dead_letter_queue_url,
                               destination=aws_resources.queue_url, max_messages=1000, dry_run=False,
                               stop_requested=stop)  # fmt: skip
    assert recording.batches == [[300_000] * 3]
    assert (report.received, report.moved, report.not_sent, report.left) == (10, 3, 7, 7)
    assert report.stopped == "interrupted"
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (7, 0)


# -- the command line -----------------------------------------------------------------------------------------------


def cli_env(endpoint_url: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL_SQS": endpoint_url, "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip


async def run_cli(endpoint_url: str, *args: str) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """Exit status, stdout JSON lines, stderr JSON lines (the server may be a proxy in this loop: no blocking)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumer_service.redrive", *args,
        env=cli_env(endpoint_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode is not None
    return (
        process.returncode,
        [json.loads(line) for line in stdout.decode().splitlines()],
        [json.loads(line) for line in stderr.decode().splitlines()],
    )


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_cli_prints_progress_and_a_summary_and_exits_0(sqs_endpoint: str, aws_resources: Resources) -> None:
    bodies = [big_body(i) for i in range(12)]
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, bodies)
    source, destination = aws_resources.dead_letter_queue_url, aws_resources.queue_url
    common = ("--source", source, "--destination", destination, "--progress-seconds", "0")
    code, stdout, _ = await run_cli(sqs_endpoint, *common, "--dry-run")
    assert code == 0
    assert len(stdout) == 13 and stdout[-1]["summary"]["received"] == 12 and stdout[-1]["summary"]["dry_run"]
    assert sorted(line["payload_bytes"] for line in stdout[:-1]) == sorted(
        message_payload_bytes(body, attributes_for(index)) for index, body in enumerate(bodies)
    )
    assert queue_depth(sqs_endpoint, source) == (12, 0), "a dry run gives everything back"
    code, stdout, stderr = await run_cli(sqs_endpoint, *common)
    assert code == 0, stderr
    progress = [line["progress"] for line in stderr if "progress" in line]
    assert len(progress) >= 3 and progress[-1]["moved"] == 12 and progress[-1]["left"] == 0
    assert [line["received"] for line in progress] == sorted(line["received"] for line in progress)
    assert stdout[-1] == {"summary": {
        "received": 12, "moved": 12, "left": 0, "failed": 0, "duplicates": 0, "not_sent": 0, "retries": 0,
        "errors": {}, "stopped": None, "dry_run": False,
    }}  # fmt: skip
    assert queue_depth(sqs_endpoint, source) == (0, 0)
    assert sorted(message["Body"] for message in receive_all(sqs_endpoint, destination, expected=12)) == bodies


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_cli_exits_1_and_says_what_was_left(
    sqs_endpoint: str, aws_resources: Resources, refusing_proxy: tuple[RefusingProxy, str]
) -> None:
    _, proxy_url = refusing_proxy
    bodies = ["ok-1", "refuse-1", "ok-2", "stuck-1"]
    fill(sqs_endpoint, aws_resources.dead_letter_queue_url, bodies, with_attributes=False)
    code, stdout, stderr = await run_cli(
        proxy_url, "--source", aws_resources.dead_letter_queue_url, "--destination", aws_resources.queue_url
    )
    assert code == 1
    summary = stdout[-1]["summary"]
    assert (summary["moved"], summary["left"], summary["failed"], summary["duplicates"]) == (2, 2, 1, 1)
    assert {event["event"] for event in stderr if "event" in event} >= {"not_moved", "duplicate"}
    assert stderr[-1]["progress"]["left"] == 2
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (2, 0)
