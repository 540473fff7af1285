"""One email's trace across both services, through a real Jaeger: the API's server and publish spans, and the
consumer's process spans, children of and linked to the publish span, with the S3 put and the delete under them;
a redelivered message (its first S3 write failed) is a second process span, linked to the same producer.

Real processes over real sockets: Jaeger v2 (scripts/tools/install-jaeger.sh), moto, the API (OTLP over
http/protobuf) and the consumer (OTLP over gRPC, so both exporters are exercised).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.bootstrap import StackNames
from devstack.emulator import MotoServer
from devstack.jaeger import INSTALLER, JaegerServer, jaeger_binary
from devstack.processes import LOOPBACK, free_port
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import seed_payload, stored_keys, wait_for
from tests.support.api import post_many

pytestmark = pytest.mark.integration

# A failing first write, then a redelivery: the message must stay hidden long enough for the failing consumer to
# be stopped before it could take the message again, and come back soon after.
VISIBILITY_SECONDS = 6


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    if not jaeger_binary().is_file():
        message = f"jaeger is not installed at {jaeger_binary()}: run {INSTALLER} (or make tools)"
        if os.environ.get("EMAIL_INGEST_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    server = JaegerServer(log_path=tmp_path_factory.mktemp("jaeger") / "jaeger.log")
    server.start()
    yield server
    server.stop()


def otel_env(endpoint: str, protocol: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second, not the default five
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e",
    }


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def spans_by_operation(trace: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(service, operation) -> spans, from the query API's JSON (each span names its process)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        grouped.setdefault((service, span["operationName"]), []).append(span)
    return grouped


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def references_to(span: dict[str, Any], target: dict[str, Any]) -> list[str]:
    return [ref["refType"] for ref in span.get("references", []) if ref["spanID"] == target["spanID"]]


def test_one_emails_trace_crosses_both_services_and_a_redelivery_is_a_second_linked_span(
    tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, jaeger: JaegerServer
) -> None:
    config = StackConfig(
        names=stack_names,
        log_dir=tmp_path,
        emulator_endpoint_url=moto_server.endpoint_url,
        with_consumer=False,
        api_env=otel_env(jaeger.otlp_http_url, "http/protobuf"),
    )
    queue = stack_names.queue
    with DevStack(config) as stack:
        assert stack.api is not None and stack.resources is not None
        [(status, body)] = asyncio.run(
            post_many(stack.api_url, [seed_payload(stack.token)], [{"X-Request-ID": "tracing-e2e-1"}])
        )
        assert status == 200, body

        # The first consumer cannot reach S3 (a closed port) and tries once: the message is kept, hidden for
        # VISIBILITY_SECONDS from its receive.
        consumer_otel = otel_env(jaeger.otlp_grpc_url, "grpc")
        stack.config.consumer_env = {
            **consumer_otel,
            "AWS_ENDPOINT_URL_S3": f"http://{LOOPBACK}:{free_port()}",
            "S3_MAX_ATTEMPTS": "1",
            "VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS),
            "SQS_WAIT_TIME_SECONDS": "1",
        }
        failing = stack.start_consumer()
        wait_for(lambda: "store_failed_message_kept" in failing.log_text(), timeout=30,
                 message="the first consumer's failed write")  # fmt: skip
        failing.stop()
        failed_lines = log_lines(failing.log_text())

        # The second consumer stores it once the visibility timeout has passed: the redelivery.
        stack.config.consumer_env = {**consumer_otel, "SQS_WAIT_TIME_SECONDS": "1"}
        storing = stack.start_consumer()
        bucket = stack.resources.bucket
        wait_for(lambda: bool(stored_keys(stack.endpoint_url, bucket)), timeout=60,
                 message="the redelivered email stored")  # fmt: skip
        wait_for(lambda: "emails_stored" in storing.log_text(), timeout=30, message="the stored line")
        storing.stop()  # its last spans are exported on the way out
        api_lines = log_lines(stack.api.log_text())
        stored_lines = log_lines(storing.log_text())

    # The trace id is in both services' log lines: the API's access line, each consumer's line for the email.
    [access] = [line for line in api_lines if line.get("request_id") == "tracing-e2e-1" and line["event"] == "request"]
    trace_id = access["trace_id"]
    [kept] = [line for line in failed_lines if line["event"] == "store_failed_message_kept"]
    [stored] = [line for line in stored_lines if line["event"] == "emails_stored"]
    assert kept["trace_id"] == stored["trace_id"] == trace_id
    assert stored["email_ids"] == [body["email_id"]]

    def whole_trace() -> bool:
        found = jaeger.trace(trace_id)
        if found is None:
            return False
        grouped = spans_by_operation(found)
        return len(grouped.get(("email-ingest-consumer", f"process {queue}"), [])) == 2 and bool(
            grouped.get(("email-ingest-consumer", "SQS.DeleteMessageBatch"))
        )

    wait_for(whole_trace, timeout=30, interval=0.5, message="Jaeger to hold the whole trace")
    trace = jaeger.trace(trace_id)
    assert trace is not None
    spans = spans_by_operation(trace)

    [server] = spans[("email-ingest-api", "POST /api/email")]
    [publish] = spans[("email-ingest-api", f"send {queue}")]
    assert tags(server)["http.response.status_code"] == 200
    assert tags(server)["email_ingest.request_id"] == "tracing-e2e-1"
    assert references_to(publish, server) == ["CHILD_OF"]
    assert tags(publish)["messaging.message.id"] == body["message_id"]
    assert trace["processes"][server["processID"]]["serviceName"] == "email-ingest-api"
    assert {"key": "deployment.environment.name", "type": "string", "value": "e2e"} in trace["processes"][
        server["processID"]
    ]["tags"]

    processes = sorted(spans[("email-ingest-consumer", f"process {queue}")], key=lambda span: span["startTime"])
    assert len(processes) == 2, "the failed delivery and the redelivery"
    for process in processes:
        # Parent and link are the same producer span; Jaeger's model keeps one reference, of the link's type.
        assert references_to(process, publish) == ["FOLLOWS_FROM"]
        assert tags(process)["messaging.message.id"] == body["message_id"]
        assert tags(process)["email_ingest.email_id"] == body["email_id"]
    first, second = processes
    assert tags(first)["messaging.message.delivery_count"] == 1
    assert tags(second)["messaging.message.delivery_count"] == 2
    assert tags(first).get("error") is True
    assert tags(second).get("error") is not True

    puts = spans[("email-ingest-consumer", "S3.PutObject")]
    assert sorted(references_to(put, first) + references_to(put, second) == ["CHILD_OF"] for put in puts) == [
        True,
        True,
    ], "one put under each delivery"
    failed_put = next(put for put in puts if references_to(put, first))
    assert tags(failed_put).get("error") is True
    [delete] = spans[("email-ingest-consumer", "SQS.DeleteMessageBatch")]
    assert references_to(delete, second) == ["CHILD_OF"]
