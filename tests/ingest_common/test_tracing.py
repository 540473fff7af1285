"""Tracing's settings from OTEL_*, the context carried with a message, AWS call spans, log lines and exemplars."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest
import structlog
from botocore.exceptions import ClientError
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from ingest_common.aws import AwsCallMetrics
from ingest_common.config import ConfigError, EnvReader
from ingest_common.logging import AccessLog, configure_logging
from ingest_common.tracing import (
    TracingSettings,
    current_ids,
    exemplar,
    make_sampler,
    open_tracing,
    parent_and_links,
    remote_context,
    traceparent_of,
)
from tests.support.spans import RecordedSpans


def settings_from(environ: dict[str, str]) -> TracingSettings:
    env = EnvReader(environ)
    settings = TracingSettings.from_env(env)
    env.finish()
    return settings


# -- off unless configured ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"},  # no endpoint: nowhere to send
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_tracing_is_off_unless_an_endpoint_is_set_and_nothing_disables_it(environ: dict[str, str]) -> None:
    assert settings_from(environ).enabled is False


def test_the_standard_variables_configure_it() -> None:
    settings = settings_from(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        }
    )
    assert settings == TracingSettings(
        enabled=True, protocol="grpc", sampler="parentbased_traceidratio", sampler_ratio=0.01
    )
    sampler = make_sampler(settings)
    assert isinstance(sampler, ParentBased)
    assert "0.01" in sampler.get_description()  # type: ignore[no-untyped-call]
    traces_only = settings_from(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces", "OTEL_TRACES_SAMPLER": "traceidratio"}
    )
    assert traces_only.enabled and traces_only.protocol == "http/protobuf"
    assert isinstance(make_sampler(traces_only), TraceIdRatioBased)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", **environ})
    assert named in str(refused.value)


async def test_off_opens_no_tracer_at_all() -> None:
    async with open_tracing(TracingSettings(), "email-ingest-api", "tests") as tracer:
        assert tracer is None


# -- the context carried with a message --------------------------------------------------------------


def test_a_producer_span_travels_as_a_traceparent_and_becomes_parent_and_link() -> None:
    recorded = RecordedSpans()
    with recorded.tracer.start_as_current_span("send") as producer:
        traceparent = traceparent_of(producer)
    assert traceparent is not None
    context = remote_context(traceparent)
    assert context is not None and context.is_remote
    assert (context.trace_id, context.span_id) == (
        producer.get_span_context().trace_id,
        producer.get_span_context().span_id,
    )
    parent, links = parent_and_links(context)
    with recorded.tracer.start_as_current_span("process", context=parent, links=links) as consumer:
        assert consumer.get_span_context().trace_id == context.trace_id
    [process] = recorded.named("process")
    assert process.parent is not None and process.parent.span_id == context.span_id
    assert [link.context.span_id for link in process.links] == [context.span_id]


@pytest.mark.parametrize("value", [None, "", "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"])
def test_no_or_an_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert remote_context(value) is None
    assert parent_and_links(None) == (None, [])


# -- AWS calls ---------------------------------------------------------------------------------------


async def test_an_aws_call_is_a_child_span_only_under_a_recording_span() -> None:
    recorded = RecordedSpans()
    calls = AwsCallMetrics(CollectorRegistry(), tracer=recorded.tracer)

    async def ok() -> str:
        return "done"

    async def refused() -> None:
        response: Any = {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}}
        raise ClientError(response, "PutObject")

    assert await calls.call("sqs", "ReceiveMessage", ok) == "done"  # a long poll belongs to no email: no span
    assert recorded.finished() == ()
    with recorded.tracer.start_as_current_span("process") as parent:
        await calls.call("s3", "PutObject", ok)
        with pytest.raises(ClientError):
            await calls.call("s3", "PutObject", refused)
    put, failed = recorded.named("S3.PutObject")
    for span in (put, failed):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
        assert span.attributes is not None
        assert dict(span.attributes)["rpc.system"] == "aws-api"
        assert dict(span.attributes)["rpc.method"] == "PutObject"
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["aws.error.code"] == "PreconditionFailed"
    assert failed.attributes["http.response.status_code"] == 412


async def test_without_a_tracer_an_aws_call_makes_no_span_even_under_one() -> None:
    recorded = RecordedSpans()
    calls = AwsCallMetrics(CollectorRegistry())

    async def ok() -> None:
        await asyncio.sleep(0)

    with recorded.tracer.start_as_current_span("process"):
        await calls.call("s3", "PutObject", ok)
    assert [span.name for span in recorded.finished()] == ["process"]


# -- log lines and exemplars -------------------------------------------------------------------------


def test_log_lines_carry_the_trace_of_a_sampled_current_span_when_tracing_is_on() -> None:
    recorded = RecordedSpans()
    stream = io.BytesIO()
    configure_logging("info", "api", stream=stream, trace_ids=True)
    try:
        structlog.get_logger("test").info("outside")
        with recorded.tracer.start_as_current_span("request") as span:
            structlog.get_logger("test").info("inside")
            AccessLog("test.access").request(method="POST", path="/api/email", status=200)
            ids = current_ids()
            sample = exemplar()
    finally:
        structlog.reset_defaults()
    outside, inside, access = (orjson.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert ids == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert sample == {"trace_id": f"{context.trace_id:032x}"}
    assert "trace_id" not in outside
    for line in (inside, access):
        assert (line["trace_id"], line["span_id"]) == ids


def test_log_lines_carry_no_trace_ids_when_tracing_is_off() -> None:
    recorded = RecordedSpans()
    stream = io.BytesIO()
    configure_logging("info", "api", stream=stream)
    try:
        with recorded.tracer.start_as_current_span("request"):
            structlog.get_logger("test").info("inside")
    finally:
        structlog.reset_defaults()
    assert "trace_id" not in orjson.loads(stream.getvalue())


def test_an_unsampled_span_gives_no_ids_and_no_exemplar() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    recorded = RecordedSpans(sampler=ALWAYS_OFF)
    with recorded.tracer.start_as_current_span("request"):
        assert current_ids() is None
        assert exemplar() is None
    assert current_ids() is None
