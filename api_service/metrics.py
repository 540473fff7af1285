"""The API's metrics, every one of them (names and labels in docs/metrics.md): HTTP, publisher, token cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from api_service.token_cache import TokenCache

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "email_ingest_api_requests_total",
            "HTTP requests answered.",
            ["route", "method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "email_ingest_api_request_duration_seconds",
            "Time from receiving a request to answering it.",
            ["route", "method"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        # A plain counter read at scrape time: a Gauge's inc()/dec() take a lock twice per request.
        self.requests_in_flight = 0
        Gauge("email_ingest_api_requests_in_flight", "Requests being handled.", registry=registry).set_function(
            lambda: self.requests_in_flight
        )
        shed = Counter(
            "email_ingest_api_requests_shed_total",
            "Requests answered 503 because the service could not take them.",
            ["reason"],
            registry=registry,
        )
        self.shed = {
            reason: shed.labels(reason)
            for reason in ("queue_full", "memory_budget", "draining", "publish_failed", "token_unavailable")
        }
        self.accepted = Counter(
            "email_ingest_api_emails_accepted_total",
            "Emails acknowledged with 200 after SQS took them.",
            registry=registry,
        )
        rejections = Counter(
            "email_ingest_api_rejections_total",
            "Requests refused for the client's mistake.",
            ["reason"],
            registry=registry,
        )
        self.rejections = {
            reason: rejections.labels(reason)
            for reason in (
                "malformed_json",
                "invalid_payload",
                "invalid_header",
                "unauthorized",
                "too_large",
                "unsupported_media_type",
                "method_not_allowed",
                "not_found",
            )
        }
        # Label lookups take a lock; the few combinations we use are cached here.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(
        self, route: str, method: str, code: int, seconds: float, exemplar: dict[str, str] | None = None
    ) -> None:
        """`exemplar`: the request's trace (tracing on and sampled), served with the OpenMetrics exposition."""
        key = (route, method, code)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(code)),
                self.duration.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds, exemplar)


class PublisherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_entries = Histogram(
            "email_ingest_publisher_batch_entries",
            "Entries per SendMessageBatch call.",
            registry=registry,
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        )
        self.batch_bytes = Histogram(
            "email_ingest_publisher_batch_bytes",
            "Message body bytes per SendMessageBatch call.",
            registry=registry,
            buckets=(1024, 4096, 16384, 65536, 262144, 524288, 1048576),
        )
        flushes = Counter(
            "email_ingest_publisher_flushes_total",
            "Batches sent, by what triggered them.",
            ["reason"],
            registry=registry,
        )
        self.flushes = {reason: flushes.labels(reason) for reason in ("full", "size", "linger", "drain")}
        failed = Counter(
            "email_ingest_publisher_entries_failed_total",
            "Entries SQS did not take in one attempt; 'deadline' and 'permanent' reach the client.",
            ["reason"],
            registry=registry,
        )
        self.failed = {reason: failed.labels(reason) for reason in ("retryable", "permanent", "deadline")}
        self.retries = Counter(
            "email_ingest_publisher_retries_total",
            "Entries scheduled for another attempt.",
            registry=registry,
        )
        self.pending = Gauge(
            "email_ingest_publisher_pending_entries",
            "Entries accepted by the publisher and not yet answered.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "email_ingest_publisher_batches_in_flight", "SendMessageBatch calls under way.", registry=registry
        )


class TokenMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refreshes = Counter(
            "email_ingest_token_refreshes_total",
            "Token loads from SSM by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.refresh_success = self.refreshes.labels("success")
        self.refresh_failure = self.refreshes.labels("failure")
        self.early_refreshes = Counter(
            "email_ingest_token_early_refreshes_total",
            "Token loads triggered by an unknown token, by outcome (rate_limited: none was allowed yet).",
            ["outcome"],
            registry=registry,
        )
        self.early_success = self.early_refreshes.labels("success")
        self.early_failure = self.early_refreshes.labels("failure")
        self.early_rate_limited = self.early_refreshes.labels("rate_limited")
        self._age = Gauge(
            "email_ingest_token_age_seconds",
            "Seconds since the token was last loaded from SSM.",
            registry=registry,
        )
        self._loaded = Gauge(
            "email_ingest_token_loaded",
            "1 while a usable (loaded, not stale) token is held.",
            registry=registry,
        )

    def watch(self, cache: TokenCache) -> None:
        self._age.set_function(cache.age_seconds)
        self._loaded.set_function(lambda: 1.0 if cache.usable() else 0.0)
