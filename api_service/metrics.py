"""The API's metrics, every one of them (names and labels in docs/metrics.md): HTTP, publisher, token cache."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api_service.clients import UNAUTHENTICATED

if TYPE_CHECKING:
    from api_service.token_cache import TokenCache

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


REJECTION_REASONS = (
    "malformed_json",
    "invalid_payload",
    "invalid_header",
    "unauthorized",
    "rate_limited",
    "too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "not_found",
    "malformed_request",  # refused by the HTTP parser (ingest_common.http_protocol)
    "invalid_encoding",  # the body does not decode by its Content-Encoding
    "unsupported_encoding",  # a Content-Encoding the API does not take
)


class ApiMetrics:
    """The HTTP metrics. `client` labels are bounded: the loaded clients (at most MAX_CLIENTS) and
    `unauthenticated`; a removed client's series are removed with it (`retain_clients`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "email_ingest_api_requests_total",
            "HTTP requests answered.",
            ["route", "method", "code", "client"],
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
        self._accepted = Counter(
            "email_ingest_api_emails_accepted_total",
            "Emails acknowledged with 200 after SQS took them.",
            ["client"],
            registry=registry,
        )
        self._rejections = Counter(
            "email_ingest_api_rejections_total",
            "Requests refused for the client's mistake, or over its rate limit.",
            ["reason", "client"],
            registry=registry,
        )
        # Label lookups take a lock; the combinations in use are cached here.
        self._request_children: dict[tuple[str, str, int, str], tuple[Counter, Histogram]] = {}
        self._accepted_children: dict[str, Counter] = {}
        self._rejection_children: dict[tuple[str, str], Counter] = {}
        for reason in REJECTION_REASONS:  # series from the start, so that a query sees 0 rather than nothing
            self._rejection_children[(reason, UNAUTHENTICATED)] = self._rejections.labels(reason, UNAUTHENTICATED)

    def observe(
        self,
        route: str,
        method: str,
        code: int,
        seconds: float,
        *,
        client: str = UNAUTHENTICATED,
        exemplar: dict[str, str] | None = None,
    ) -> None:
        """`exemplar`: the request's trace (tracing on and sampled), served with the OpenMetrics exposition."""
        key = (route, method, code, client)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(code), client),
                self.duration.labels(route, method),
            )
        children[0].inc()
        children[1].observe(seconds, exemplar)

    def accept(self, client: str) -> None:
        child = self._accepted_children.get(client)
        if child is None:
            child = self._accepted_children[client] = self._accepted.labels(client)
        child.inc()

    def reject(self, reason: str, client: str = UNAUTHENTICATED) -> None:
        key = (reason, client)
        child = self._rejection_children.get(key)
        if child is None:
            child = self._rejection_children[key] = self._rejections.labels(reason, client)
        child.inc()

    def retain_clients(self, names: Iterable[str]) -> None:
        """Removes the series of clients no longer loaded, so that the label's values stay bounded."""
        kept = {*names, UNAUTHENTICATED}
        for route, method, code, client in [key for key in self._request_children if key[3] not in kept]:
            del self._request_children[(route, method, code, client)]
            self.requests.remove(route, method, str(code), client)
        for client in [client for client in self._accepted_children if client not in kept]:
            del self._accepted_children[client]
            self._accepted.remove(client)
        for reason, client in [key for key in self._rejection_children if key[1] not in kept]:
            del self._rejection_children[(reason, client)]
            self._rejections.remove(reason, client)


class PublisherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_entries = Histogram(
            "email_ingest_publisher_batch_entries",
            "Messages (SendMessageBatch entries) per SendMessageBatch call.",
            registry=registry,
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        )
        self.batch_emails = Histogram(
            "email_ingest_publisher_batch_emails",
            "Emails per SendMessageBatch call.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
        self.message_emails = Histogram(
            "email_ingest_publisher_message_emails",
            "Emails packed into one SQS message (envelope version 2).",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
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
        self.flushes = {
            reason: flushes.labels(reason) for reason in ("full", "size", "linger", "message", "bound", "drain")
        }
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
        self._clients = Gauge(
            "email_ingest_token_clients",
            "Clients whose tokens are held (the single token's client `default` included).",
            registry=registry,
        )
        self._refused = Gauge(
            "email_ingest_token_clients_refused",
            "Client parameters refused at the last load (a bad name or value, a shared token, past MAX_CLIENTS).",
            registry=registry,
        )

    def watch(self, cache: TokenCache) -> None:
        self._age.set_function(cache.age_seconds)
        self._loaded.set_function(lambda: 1.0 if cache.usable() else 0.0)
        self._clients.set_function(lambda: len(cache.client_names))
        self._refused.set_function(lambda: cache.refused_count)
