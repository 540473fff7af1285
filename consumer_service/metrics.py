"""The consumer's metrics (names and labels in docs/contract.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "email_ingest_consumer_messages_received_total", "Messages received from SQS.", registry=registry
        )
        self.message_emails = Histogram(
            "email_ingest_consumer_message_emails",
            "Emails per received message (more than one: a version-2 pack), invalid ones included.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
        )
        receives = Counter(
            "email_ingest_consumer_receives_total",
            "ReceiveMessage calls by result.",
            ["result"],
            registry=registry,
        )
        self.receives_with_messages = receives.labels("messages")
        self.receives_empty = receives.labels("empty")
        stored = Counter(
            "email_ingest_consumer_emails_stored_total",
            "Emails stored in S3: 'created', or 'already_stored' when a conditional put found the object.",
            ["result"],
            registry=registry,
        )
        self.stored = {result: stored.labels(result) for result in ("created", "already_stored")}
        self.idempotency_conflicts = Counter(
            "email_ingest_consumer_idempotency_conflicts_total",
            "Emails stored beside another email with the same email_id: one client sent two different emails "
            "under one Idempotency-Key (both are kept).",
            registry=registry,
        )
        failures = Counter(
            "email_ingest_consumer_processing_failures_total",
            "Failed attempts to store an email, by reason.",
            ["reason"],
            registry=registry,
        )
        self.failures = {reason: failures.labels(reason) for reason in ("s3_error", "s3_throttled", "timeout")}
        self.deleted = Counter(
            "email_ingest_consumer_messages_deleted_total",
            "Messages deleted after being stored.",
            registry=registry,
        )
        delete_failures = Counter(
            "email_ingest_consumer_delete_failures_total",
            "Deletes SQS refused or that failed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.delete_failures = {reason: delete_failures.labels(reason) for reason in ("receipt_invalid", "error")}
        poison = Counter(
            "email_ingest_consumer_poison_messages_total",
            "Receives of messages that are not valid envelopes (each is counted per receive until the DLQ).",
            ["reason"],
            registry=registry,
        )
        self.poison = {
            reason: poison.labels(reason) for reason in ("invalid_json", "invalid_envelope", "unsupported_version")
        }
        self.visibility_extensions = Counter(
            "email_ingest_consumer_visibility_extensions_total",
            "Visibility timeouts extended for messages still being processed.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "email_ingest_consumer_messages_in_flight",
            "Messages received and not yet finished.",
            registry=registry,
        )
        self.end_to_end = Histogram(
            "email_ingest_consumer_end_to_end_latency_seconds",
            "From the API accepting an email (envelope received_at) to it being stored.",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        queue_messages = Gauge(
            "email_ingest_queue_messages",
            "Approximate messages in a queue by state (GetQueueAttributes).",
            ["queue", "state"],
            registry=registry,
        )
        self.queue_messages = {
            (queue, state): queue_messages.labels(queue, state)
            for queue in ("main", "dlq")
            for state in ("visible", "not_visible", "delayed")
        }
        oldest = Gauge(
            "email_ingest_queue_oldest_message_age_seconds",
            "Age of the oldest message in the latest receive (0 when it was empty).",
            ["queue"],
            registry=registry,
        )
        self.oldest_age = oldest.labels("main")
        self.batches = BatchMetrics(registry)


class BatchMetrics:
    """The batched layout's metrics (STORAGE_LAYOUT=batched)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        batches = Counter(
            "email_ingest_consumer_batches_total",
            "Batch objects by outcome: 'written', or 'failed' when every attempt failed (its messages stay in SQS).",
            ["result"],
            registry=registry,
        )
        self.batches = {result: batches.labels(result) for result in ("written", "failed")}
        self.write_failures = Counter(
            "email_ingest_consumer_batch_write_failures_total",
            "Failed attempts to write a batch object (each attempt counts).",
            registry=registry,
        )
        self.duplicates_in_batch = Counter(
            "email_ingest_consumer_batch_duplicates_total",
            "Emails whose email_id was already in the open batch (written once, both messages deleted).",
            registry=registry,
        )
        self.emails_held = Gauge(
            "email_ingest_consumer_batch_emails_held",
            "Emails in open batches, waiting for their batch to be written.",
            registry=registry,
        )
        self.batch_emails = Histogram(
            "email_ingest_consumer_batch_emails",
            "Emails per written batch.",
            registry=registry,
            buckets=(1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000),
        )
        self.batch_bytes = Histogram(
            "email_ingest_consumer_batch_bytes",
            "Uncompressed NDJSON bytes per written batch.",
            registry=registry,
            buckets=(2**10, 2**14, 2**17, 2**20, 2**22, 2**24, 2**26, 2**28),
        )
        self.batch_compressed_bytes = Histogram(
            "email_ingest_consumer_batch_compressed_bytes",
            "Object bytes (gzip) per written batch.",
            registry=registry,
            buckets=(2**10, 2**14, 2**17, 2**20, 2**22, 2**24, 2**26, 2**28),
        )
        self.batch_age = Histogram(
            "email_ingest_consumer_batch_age_seconds",
            "From a batch's first email to its write.",
            registry=registry,
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900),
        )
