"""Every dashboard and rule expression runs on a real Prometheus scraping synthetic email-ingest metrics.

Two loopback HTTP servers expose every metric of docs/contract.md (prometheus-client, like the services), a
Prometheus started from observability.prometheus_config scrapes them every second, and each expression of
observability.promql.all_queries() is sent to /api/v1/query: none may fail (bad syntax, many-to-many matching...),
and every dashboard query must return data, which proves the variable values select series that carry only
`job` and `instance` (no namespace).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from observability.observe import PrometheusServer
from observability.promql import Query, all_queries
from tests.observability.prometheus_server import running_prometheus, wait_for_scrapes

Tick = Callable[[], None]


def _api_registry() -> tuple[CollectorRegistry, Tick]:
    r = CollectorRegistry()
    ProcessCollector(registry=r)
    requests = Counter("email_ingest_api_requests_total", "", ["route", "method", "code", "client"], registry=r)
    duration = Histogram("email_ingest_api_request_duration_seconds", "", ["route", "method"], registry=r)
    Gauge("email_ingest_api_requests_in_flight", "", registry=r).set(2)
    shed = Counter("email_ingest_api_requests_shed_total", "", ["reason"], registry=r)
    accepted = Counter("email_ingest_api_emails_accepted_total", "", ["client"], registry=r)
    rejections = Counter("email_ingest_api_rejections_total", "", ["reason", "client"], registry=r)
    entries = Histogram("email_ingest_publisher_batch_entries", "", buckets=(1, 2, 5, 10), registry=r)
    size = Histogram("email_ingest_publisher_batch_bytes", "", buckets=(1024, 65536, 1048576), registry=r)
    flushes = Counter("email_ingest_publisher_flushes_total", "", ["reason"], registry=r)
    failed = Counter("email_ingest_publisher_entries_failed_total", "", ["reason"], registry=r)
    retries = Counter("email_ingest_publisher_retries_total", "", registry=r)
    Gauge("email_ingest_publisher_pending_entries", "", registry=r).set(12)
    Gauge("email_ingest_publisher_batches_in_flight", "", registry=r).set(3)
    refreshes = Counter("email_ingest_token_refreshes_total", "", ["outcome"], registry=r)
    Gauge("email_ingest_token_age_seconds", "", registry=r).set(42)
    Gauge("email_ingest_token_loaded", "", registry=r).set(1)
    Gauge("email_ingest_token_clients", "", registry=r).set(3)
    Gauge("email_ingest_token_clients_refused", "", registry=r).set(1)
    aws, aws_duration = _aws(r, "api")

    def tick() -> None:
        for code, n in (("200", 97), ("503", 2), ("400", 1), ("429", 3)):
            requests.labels("/api/email", "POST", code, "acme").inc(n)
            duration.labels("/api/email", "POST").observe(0.02 * n / 50)
        requests.labels("/healthz", "GET", "200", "unauthenticated").inc()
        duration.labels("/healthz", "GET").observe(0.001)
        shed.labels("queue_full").inc()
        shed.labels("draining").inc()
        accepted.labels("acme").inc(97)
        rejections.labels("invalid_payload", "acme").inc()
        rejections.labels("rate_limited", "acme").inc(3)
        for n in (10, 7):
            entries.observe(n)
            size.observe(n * 900)
        flushes.labels("full").inc()
        flushes.labels("linger").inc()
        failed.labels("deadline").inc()
        retries.inc()
        refreshes.labels("success").inc()
        refreshes.labels("failure").inc()
        for service, operation in (("sqs", "SendMessageBatch"), ("ssm", "GetParameterHistory")):
            aws.labels(service, operation, "success").inc(10)
            aws.labels(service, operation, "error").inc()
            aws_duration.labels(service, operation).observe(0.03)

    return r, tick


def _consumer_registry() -> tuple[CollectorRegistry, Tick]:
    r = CollectorRegistry()
    ProcessCollector(registry=r)
    received = Counter("email_ingest_consumer_messages_received_total", "", registry=r)
    receives = Counter("email_ingest_consumer_receives_total", "", ["result"], registry=r)
    stored = Counter("email_ingest_consumer_emails_stored_total", "", ["result"], registry=r)
    failures = Counter("email_ingest_consumer_processing_failures_total", "", ["reason"], registry=r)
    deleted = Counter("email_ingest_consumer_messages_deleted_total", "", registry=r)
    delete_failures = Counter("email_ingest_consumer_delete_failures_total", "", ["reason"], registry=r)
    poison = Counter("email_ingest_consumer_poison_messages_total", "", ["reason"], registry=r)
    extensions = Counter("email_ingest_consumer_visibility_extensions_total", "", registry=r)
    Gauge("email_ingest_consumer_messages_in_flight", "", registry=r).set(5)
    e2e = Histogram("email_ingest_consumer_end_to_end_latency_seconds", "", registry=r)
    queue = Gauge("email_ingest_queue_messages", "", ["queue", "state"], registry=r)
    for name in ("main", "dlq"):
        for state, value in (("visible", 40), ("not_visible", 7), ("delayed", 0)):
            queue.labels(name, state).set(value)
    Gauge("email_ingest_queue_oldest_message_age_seconds", "", ["queue"], registry=r).labels("main").set(3)
    batches = Counter("email_ingest_consumer_batches_total", "", ["result"], registry=r)
    batch_write_failures = Counter("email_ingest_consumer_batch_write_failures_total", "", registry=r)
    batch_duplicates = Counter("email_ingest_consumer_batch_duplicates_total", "", registry=r)
    Gauge("email_ingest_consumer_batch_emails_held", "", registry=r).set(900)
    batch_emails = Histogram("email_ingest_consumer_batch_emails", "", buckets=(100, 1000, 10_000), registry=r)
    batch_bytes = Histogram("email_ingest_consumer_batch_bytes", "", buckets=(2**20, 2**24), registry=r)
    compressed = Histogram("email_ingest_consumer_batch_compressed_bytes", "", buckets=(2**20, 2**24), registry=r)
    batch_age = Histogram("email_ingest_consumer_batch_age_seconds", "", buckets=(1, 10, 60, 120), registry=r)
    aws, aws_duration = _aws(r, "consumer")

    def tick() -> None:
        received.inc(100)
        receives.labels("messages").inc(10)
        receives.labels("empty").inc()
        stored.labels("created").inc(98)
        stored.labels("already_stored").inc()
        failures.labels("s3_error").inc()
        deleted.inc(99)
        delete_failures.labels("receipt_invalid").inc()
        poison.labels("invalid_json").inc()
        extensions.inc()
        e2e.observe(0.4)
        batches.labels("written").inc()
        batches.labels("failed").inc()
        batch_write_failures.inc()
        batch_duplicates.inc()
        batch_emails.observe(1000)
        batch_bytes.observe(2_000_000)
        compressed.observe(400_000)
        batch_age.observe(30)
        for service, operation in (("sqs", "ReceiveMessage"), ("s3", "PutObject")):
            aws.labels(service, operation, "success").inc(10)
            aws_duration.labels(service, operation).observe(0.05)

    return r, tick


def _aws(registry: CollectorRegistry, service: str) -> tuple[Counter, Histogram]:
    Gauge("email_ingest_build_info", "", ["service", "version"], registry=registry).labels(service, "0.1.0").set(1)
    return (
        Counter("email_ingest_aws_requests_total", "", ["service", "operation", "outcome"], registry=registry),
        Histogram("email_ingest_aws_request_duration_seconds", "", ["service", "operation"], registry=registry),
    )


def _serve(registry: CollectorRegistry, tick: Tick) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            tick()
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    api, consumer = _serve(*_api_registry()), _serve(*_consumer_registry())
    try:
        workdir: Path = tmp_path_factory.mktemp("prometheus")
        with running_prometheus(api.server_address[1], consumer.server_address[1], workdir) as server:
            # Four scrapes of each target: enough samples for rate() over [1m].
            wait_for_scrapes(server, 4)
            yield server
    finally:
        api.shutdown()
        consumer.shutdown()


QUERIES = all_queries()


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.source}:{q.name}" for q in QUERIES])
def test_query_runs_on_prometheus(prometheus: PrometheusServer, query: Query) -> None:
    result = prometheus.query(query.promql)
    assert result.get("status") == "success", f"{query.promql}\n{result}"
    if query.source.startswith("observability/dashboards/"):
        assert result["data"]["result"], f"no data for {query.name}: {query.promql}"
