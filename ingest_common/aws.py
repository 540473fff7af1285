"""AWS client settings and call accounting shared by both services."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Counter, Histogram

T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "KMS.ThrottlingException",
        # SQS's own code when the KMS key of an SSE-KMS queue throttles it (SenderFault, yet transient).
        "KmsThrottled",
        "SlowDown",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "AWS.SimpleQueueService.ServiceUnavailable",
    }
)


def client_config(
    *, max_pool_connections: int, read_timeout: float, connect_timeout: float = 2.0, max_attempts: int = 3
) -> AioConfig:
    """A client config; callers that retry by themselves pass max_attempts=1 so retries do not multiply."""
    return AioConfig(
        max_pool_connections=max_pool_connections,
        read_timeout=read_timeout,
        connect_timeout=connect_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
    )


def full_jitter_seconds(attempt: int, *, base: float, cap: float = math.inf) -> float:
    """A retry delay with "full jitter" (uniform in 0 .. min(cap, base x 2^attempt)): clients retrying after the same
    outage spread out instead of arriving together."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - jitter, not security


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def http_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def is_retryable(exc: BaseException) -> bool:
    """Throttling, server-side errors and transport errors are worth another try; client errors are not."""
    if isinstance(exc, ClientError):
        status = http_status(exc)
        return error_code(exc) in THROTTLING_CODES or (status is not None and status >= 500)
    return isinstance(exc, OSError | TimeoutError) or type(exc).__module__.startswith(("botocore", "aiohttp"))


# The AWS SDK's span conventions (rpc.system "aws-api"): the service as AWS names it, the operation as the method.
_RPC_SERVICES = {"sqs": "SQS", "s3": "S3", "ssm": "SSM"}


class AwsCallMetrics:
    """Counts and times every AWS call a service makes: the basis of 'requests per email'.

    With a tracer (tracing on), a call made while a recording span is current gets a client span, its child: an
    email's S3 put is in the email's trace. Calls made for no email (long polls, heartbeats, queue statistics,
    token refreshes) run with no current span and make none, so they fill no trace store with root spans.
    """

    def __init__(self, registry: CollectorRegistry, tracer: Tracer | None = None) -> None:
        self._tracer = tracer
        self.requests = Counter(
            "email_ingest_aws_requests_total",
            "AWS API calls by service, operation and outcome.",
            ["service", "operation", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "email_ingest_aws_request_duration_seconds",
            "Duration of AWS API calls.",
            ["service", "operation"],
            registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25),
        )
        self.billed = Counter(
            "email_ingest_aws_billed_requests_total",
            "Successful AWS calls as AWS bills them: SQS counts each started 64 KiB of a call's payload as one.",
            ["service", "operation"],
            registry=registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric._name, *labels)  # the name is the only stable identity prometheus offers
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def record(self, service: str, operation: str, seconds: float, *, ok: bool) -> None:
        self._child(self.requests, service, operation, "success" if ok else "error").inc()
        self._child(self.duration, service, operation).observe(seconds)

    def bill(self, service: str, operation: str, requests: int) -> None:
        self._child(self.billed, service, operation).inc(requests)

    async def call(self, service: str, operation: str, request: Callable[[], Awaitable[T]]) -> T:
        if self._tracer is not None and trace.get_current_span().is_recording():
            return await self._traced_call(self._tracer, service, operation, request)
        started = time.perf_counter()
        try:
            result = await request()
        except BaseException:
            self.record(service, operation, time.perf_counter() - started, ok=False)
            raise
        self.record(service, operation, time.perf_counter() - started, ok=True)
        return result

    async def _traced_call(
        self, tracer: Tracer, service: str, operation: str, request: Callable[[], Awaitable[T]]
    ) -> T:
        rpc_service = _RPC_SERVICES.get(service, service)
        attributes = {"rpc.system": "aws-api", "rpc.service": rpc_service, "rpc.method": operation}
        with tracer.start_as_current_span(
            f"{rpc_service}.{operation}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            started = time.perf_counter()
            try:
                result = await request()
            except BaseException as exc:
                self.record(service, operation, time.perf_counter() - started, ok=False)
                # The code, not the exception's text: an S3 412 on a redelivery is an expected answer.
                span.set_attribute("aws.error.code", error_code(exc))
                status = http_status(exc)
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                span.set_status(Status(StatusCode.ERROR, error_code(exc)))
                raise
            self.record(service, operation, time.perf_counter() - started, ok=True)
            return result
