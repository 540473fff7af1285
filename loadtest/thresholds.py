"""Pass/fail thresholds for headless runs (pure logic; loadtest/check_thresholds.py wires it into locust).

From locust's per-name stats the run is judged on:

* error rate: failures / requests over every request except ``shed`` ones (``LOADTEST_MAX_ERROR_RATE``, 0.01);
* p95 and p99 response times of the accepted-path requests, i.e. everything except the deliberately bad
  requests and ``shed`` (``LOADTEST_MAX_P95_MS``, 500; ``LOADTEST_MAX_P99_MS``, 1000);
* shed rate: ``shed`` / all requests (``LOADTEST_MAX_SHED_RATE``, 0.05; raise it for spike runs that are
  meant to shed);
* at least ``LOADTEST_MIN_REQUESTS`` (1) counted requests, and no unhandled exception in the locustfile.

A ``429`` with ``Retry-After`` (the client over its rate limit, RATE_LIMIT_RPS) is its own outcome,
``rate_limited``: reported, and kept out of the error rate, the latency and the shed rate (it is the limit doing
its job, not the service failing).

This module must not import locust: importing locust monkey-patches the standard library with gevent, which
would break every asyncio test running in the same pytest process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from loadtest.settings import env_float, env_int

# Request names in locust's stats (the locustfile uses them).
ACCEPT: Final = "POST /api/email"
ACCEPT_IDEMPOTENT: Final = "POST /api/email [idempotent]"
RETRY_IDEMPOTENT: Final = "POST /api/email [idempotent retry]"
BAD_TOKEN: Final = "POST /api/email [bad token]"  # noqa: S105 - a request name, not a secret
MISSING_FIELDS: Final = "POST /api/email [missing fields]"
MALFORMED_JSON: Final = "POST /api/email [malformed json]"
SHED: Final = "shed"
RATE_LIMITED: Final = "rate_limited"  # 429 + Retry-After: the client is over its limit, not a failure
REJECTION_NAMES: Final = frozenset({BAD_TOKEN, MISSING_FIELDS, MALFORMED_JSON})


class StatsEntryLike(Protocol):
    """The fields of ``locust.stats.StatsEntry`` that the thresholds read."""

    name: str
    num_requests: int
    num_none_requests: int
    num_failures: int
    response_times: dict[int, int]


@dataclass(frozen=True)
class Limits:
    max_error_rate: float = 0.01
    max_p95_ms: float = 500.0
    max_p99_ms: float = 1000.0
    max_shed_rate: float = 0.05
    min_requests: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        d = cls()
        return cls(
            max_error_rate=env_float("LOADTEST_MAX_ERROR_RATE", d.max_error_rate, maximum=1.0, environ=environ),
            max_p95_ms=env_float("LOADTEST_MAX_P95_MS", d.max_p95_ms, environ=environ),
            max_p99_ms=env_float("LOADTEST_MAX_P99_MS", d.max_p99_ms, environ=environ),
            max_shed_rate=env_float("LOADTEST_MAX_SHED_RATE", d.max_shed_rate, maximum=1.0, environ=environ),
            min_requests=env_int("LOADTEST_MIN_REQUESTS", d.min_requests, environ=environ),
        )


@dataclass(frozen=True)
class Summary:
    requests: int
    """All requests except shed ones."""
    failures: int
    shed: int
    latency_samples: int
    p95_ms: float
    p99_ms: float
    rate_limited: int = 0
    """Answered 429 with Retry-After: outside requests, failures and latency, like shed ones."""

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def shed_rate(self) -> float:
        total = self.requests + self.shed
        return self.shed / total if total else 0.0


def percentile(response_times: Mapping[int, int], count: int, fraction: float) -> int:
    """The response time (ms) that ``fraction`` of ``count`` requests finished within (locust's algorithm)."""
    within = int(count * fraction)
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        if count - processed <= within:
            return response_time
    return 0


def summarize(entries: Iterable[StatsEntryLike]) -> Summary:
    """Aggregates locust's per-name entries the way the thresholds read them."""
    requests = failures = shed = rate_limited = samples = 0
    latency: dict[int, int] = {}
    for entry in entries:
        if entry.name == SHED:
            shed += entry.num_requests
            continue
        if entry.name == RATE_LIMITED:
            rate_limited += entry.num_requests
            continue
        requests += entry.num_requests
        failures += entry.num_failures
        if entry.name in REJECTION_NAMES:
            continue
        samples += entry.num_requests - entry.num_none_requests
        for response_time, count in entry.response_times.items():
            latency[response_time] = latency.get(response_time, 0) + count
    return Summary(
        requests=requests,
        failures=failures,
        shed=shed,
        rate_limited=rate_limited,
        latency_samples=samples,
        p95_ms=float(percentile(latency, samples, 0.95)),
        p99_ms=float(percentile(latency, samples, 0.99)),
    )


def violations(summary: Summary, limits: Limits, *, unhandled_exceptions: int = 0) -> list[str]:
    """Human-readable broken thresholds; empty when the run passes."""
    problems: list[str] = []
    if summary.requests < limits.min_requests:
        problems.append(f"only {summary.requests} request(s) counted (LOADTEST_MIN_REQUESTS={limits.min_requests})")
    if summary.error_rate > limits.max_error_rate:
        problems.append(
            f"error rate {summary.error_rate:.4f} ({summary.failures}/{summary.requests}) "
            f"> LOADTEST_MAX_ERROR_RATE={limits.max_error_rate}"
        )
    if summary.p95_ms > limits.max_p95_ms:
        problems.append(f"p95 {summary.p95_ms:.0f} ms > LOADTEST_MAX_P95_MS={limits.max_p95_ms:g}")
    if summary.p99_ms > limits.max_p99_ms:
        problems.append(f"p99 {summary.p99_ms:.0f} ms > LOADTEST_MAX_P99_MS={limits.max_p99_ms:g}")
    if summary.shed_rate > limits.max_shed_rate:
        problems.append(
            f"shed rate {summary.shed_rate:.4f} ({summary.shed} shed) > LOADTEST_MAX_SHED_RATE={limits.max_shed_rate}"
        )
    if unhandled_exceptions:
        problems.append(f"{unhandled_exceptions} unhandled exception(s) in the locustfile (see the log)")
    return problems
