"""The API's HTTP metrics (the publisher and token cache register their own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        key = (route, method, code)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(code)),
                self.duration.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds)
