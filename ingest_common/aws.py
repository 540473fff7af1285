"""AWS client settings and call accounting shared by both services."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError
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


class AwsCallMetrics:
    """Counts and times every AWS call a service makes: the basis of 'requests per email'."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
        started = time.perf_counter()
        try:
            result = await request()
        except BaseException:
            self.record(service, operation, time.perf_counter() - started, ok=False)
            raise
        self.record(service, operation, time.perf_counter() - started, ok=True)
        return result
