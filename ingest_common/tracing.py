"""OpenTelemetry tracing for both services: off unless the standard OTEL_* variables configure it.

On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless `OTEL_SDK_DISABLED=true`
or `OTEL_TRACES_EXPORTER=none`. The exporter is OTLP over `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` (`http/protobuf`,
the default, or `grpc`); the sampler is `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default
`parentbased_always_on`); the resource is `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`, `service.name`
defaulting to the service's own name. The exporters and the batch processor read their other standard variables
(headers, timeouts, TLS, `OTEL_BSP_*`) themselves. So an operator's existing collector set-up just works.

Off, nothing is installed: each app holds no tracer (`None`), and every instrumented spot is one `is None` test.
On, the provider is the app's own (never OpenTelemetry's global one) and passed to what makes spans; only the
current span travels implicitly, in OpenTelemetry's context variable, as it must to reach log lines.

AWS calls get a client span from the adapters' one accounting wrapper (`ingest_common.aws.AwsCallMetrics`), and only
as the child of a recording span: an email's S3 put is in its trace, while long polls, heartbeats and queue
statistics, which belong to no email, make no root spans of their own. (opentelemetry-instrumentation-botocore
0.66b2 does instrument aiobotocore 2.x, but by patching its client class process-wide and with a span for every
call; and the API's SendMessageBatch goes through its own JSON client, which no instrumentation sees.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanContext, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ingest_common.config import EnvReader

TRACEPARENT_ATTRIBUTE: Final = "traceparent"
"""The SQS message attribute (and envelope field) carrying the producer's W3C trace context."""

PROTOCOLS: Final = ("http/protobuf", "grpc")
SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACEPARENT_MAX: Final = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """What OTEL_* asks for; `enabled=False` (the default) installs nothing."""

    enabled: bool = False
    protocol: str = "http/protobuf"
    sampler: str = "parentbased_always_on"
    sampler_ratio: float = 1.0

    @classmethod
    def from_env(cls, env: EnvReader) -> TracingSettings:
        """Read with the service's own EnvReader, so a bad OTEL_* value is reported with the others."""
        disabled = (env.optional("OTEL_SDK_DISABLED", "false") or "false").lower() in _TRUE
        exporter = (env.optional("OTEL_TRACES_EXPORTER", "otlp") or "otlp").lower()
        if exporter not in {"otlp", "none"}:
            env.problems.append(f"OTEL_TRACES_EXPORTER={exporter!r} is not one of otlp, none")
        endpoint = env.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.optional("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            env.problems.append(f"the OTLP endpoint {endpoint!r} is not an http(s) URL (OTEL_EXPORTER_OTLP_ENDPOINT)")
        protocol_variable = (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
            if env.optional("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            else "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        protocol = env.choice(protocol_variable, "http/protobuf", PROTOCOLS)
        sampler = env.choice("OTEL_TRACES_SAMPLER", "parentbased_always_on", SAMPLERS)
        ratio = 1.0
        if sampler.endswith("traceidratio"):
            ratio = env.number("OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0, maximum=1.0)
        return cls(
            enabled=endpoint is not None and not disabled and exporter == "otlp",
            protocol=protocol,
            sampler=sampler,
            sampler_ratio=ratio,
        )


def make_sampler(settings: TracingSettings) -> Sampler:
    root: Sampler
    name = settings.sampler.removeprefix("parentbased_")
    if name == "always_on":
        root = ALWAYS_ON
    elif name == "always_off":
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(settings.sampler_ratio)
    return ParentBased(root) if settings.sampler.startswith("parentbased_") else root


def _exporter(protocol: str) -> SpanExporter:
    # Imported on demand: a process whose tracing is off loads neither gRPC nor the HTTP exporter.
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def _resource(service_name: str) -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME as the SDK reads them; our name when they give none."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: service_name}))
    return detected


def new_provider(settings: TracingSettings, service_name: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """A provider exporting in batches from a background thread; `exporter` replaces OTLP in unit tests."""
    provider = TracerProvider(resource=_resource(service_name), sampler=make_sampler(settings))
    provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(settings.protocol)))
    return provider


@asynccontextmanager
async def open_tracing(
    settings: TracingSettings, service_name: str, instrumentation: str
) -> AsyncIterator[Tracer | None]:
    """For a cleanup context: a tracer while the app runs (None when off); the last spans exported at the end."""
    if not settings.enabled:
        yield None
        return
    provider = new_provider(settings, service_name)
    try:
        yield provider.get_tracer(instrumentation)
    finally:
        # shutdown() joins the export thread after a last export: a blocking call, off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, provider.shutdown)


# -- carrying the context ---------------------------------------------------------------------------


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent naming `span`, or None when it is not a valid (e.g. non-recording, off) span."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def is_traceparent(value: object) -> bool:
    """A syntactically valid W3C traceparent (as the envelope accepts it)."""
    return (
        isinstance(value, str)
        and len(value) <= _TRACEPARENT_MAX
        and trace.get_current_span(_PROPAGATOR.extract({"traceparent": value})).get_span_context().is_valid
    )


def remote_context(traceparent: str | None) -> SpanContext | None:
    """The producer's span context from its traceparent; None when absent or invalid (the consumer starts a trace)."""
    if not traceparent:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None


def parent_and_links(producer: SpanContext | None) -> tuple[Context | None, list[Link]]:
    """A consumer span's parent and links for one message: the producer's context as both.

    As the OpenTelemetry messaging conventions allow for a single message: the link says "processes the message
    that span created" (and stays right when a message is processed twice), the parent makes one trace of an
    email, from the POST to the stored object.
    """
    if producer is None:
        return None, []
    return trace.set_span_in_context(trace.NonRecordingSpan(producer)), [Link(producer)]


def http_traceparent(headers: Mapping[str, str]) -> Context | None:
    """The caller's context from an incoming `traceparent` header, if any (the API's server span continues it)."""
    if "traceparent" not in headers:
        return None
    return _PROPAGATOR.extract(headers)


# -- reading the current span (log lines, exemplars) ---------------------------------------------


def current_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) in hex of the current span when it is sampled; None otherwise."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def exemplar() -> dict[str, str] | None:
    """A histogram exemplar naming the current sampled trace, so a dashboard leads from a bucket to its trace."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return {"trace_id": f"{context.trace_id:032x}"}
