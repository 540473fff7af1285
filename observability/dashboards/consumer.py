"""The consumer dashboard."""

from __future__ import annotations

from observability.dashboards.limits import CONSUMER_MAX_IN_FLIGHT
from observability.dashboards.panels import JSON, ORANGE, RED, Row, build, panel, query
from observability.dashboards.process import process_row
from observability.dashboards.queries import AWS_DURATION, PUT_OBJECT, quantile_targets, rate, sel


def dashboard() -> JSON:
    return build(
        uid="email-ingest-consumer",
        title="email-ingest / Consumer",
        description="The consumer: messages received, stored and deleted, S3 latency, end-to-end latency, "
        "in-flight work, poison messages, visibility heartbeats and, with STORAGE_LAYOUT=batched, its batches.",
        job_metric="email_ingest_consumer_messages_received_total",
        extra_tags=("consumer",),
        rows=(
            Row(
                "Throughput",
                (
                    panel(
                        "Received, stored, deleted",
                        "Messages received from SQS, emails stored in S3 (created or already "
                        "there) and messages "
                        "deleted from SQS, per second. In steady state the three lines coincide.",
                        "ops",
                        (
                            query(f"sum({rate('email_ingest_consumer_messages_received_total')})", "received"),
                            query(
                                f"sum by (result) ({rate('email_ingest_consumer_emails_stored_total')})",
                                "stored {{result}}",
                            ),
                            query(f"sum({rate('email_ingest_consumer_messages_deleted_total')})", "deleted"),
                        ),
                    ),
                    panel(
                        "Receives by result",
                        "ReceiveMessage long polls per second that returned messages or nothing.",
                        "reqps",
                        (
                            query(
                                f"sum by (result) ({rate('email_ingest_consumer_receives_total')})",
                                "{{result}}",
                            ),
                        ),
                        stack=True,
                    ),
                    panel(
                        "Processing failures by reason",
                        "Messages that could not be stored per second (left to SQS for another try).",
                        "ops",
                        (
                            query(
                                "sum by (reason) (" + rate("email_ingest_consumer_processing_failures_total") + ")",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.01, RED),),
                    ),
                    panel(
                        "Delete failures by reason",
                        "Stored messages whose deletion failed per second (they come back and are "
                        "stored again "
                        "idempotently).",
                        "ops",
                        (
                            query(
                                f"sum by (reason) ({rate('email_ingest_consumer_delete_failures_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.01, RED),),
                    ),
                    panel(
                        "Poison messages by reason",
                        "Messages that can never be stored (bad JSON, bad envelope, unknown version) per second.",
                        "ops",
                        (
                            query(
                                f"sum by (reason) ({rate('email_ingest_consumer_poison_messages_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.001, RED),),
                    ),
                ),
            ),
            Row(
                "Latency",
                (
                    panel(
                        "End-to-end latency",
                        "From the API accepting an email (received_at) to the consumer storing it. Points are "
                        "exemplars: one traced email each, with its trace id (the email's whole way, POST to S3); "
                        "with the data source's exemplar link (label trace_id) set, a slow one opens its trace.",
                        "s",
                        quantile_targets("email_ingest_consumer_end_to_end_latency_seconds", exemplars=True),
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    panel(
                        "S3 PutObject latency",
                        "Duration of PutObject calls (one attempt each).",
                        "s",
                        quantile_targets(AWS_DURATION, *PUT_OBJECT),
                        steps=((0.5, ORANGE), (2, RED)),
                    ),
                    panel(
                        "AWS calls by operation and outcome",
                        "SQS and S3 requests per second made by the consumer.",
                        "reqps",
                        (
                            query(
                                "sum by (service, operation, outcome) ("
                                + rate("email_ingest_aws_requests_total")
                                + ")",
                                "{{service}} {{operation}} {{outcome}}",
                            ),
                        ),
                    ),
                    panel(
                        "AWS requests per stored email",
                        "SQS plus S3 requests per stored email (1 PutObject plus a share of "
                        "receive and batch "
                        "delete calls: close to 1.2 when batches are full).",
                        "short",
                        (
                            query(
                                f"sum({rate('email_ingest_aws_requests_total')})\n/\n"
                                f"sum({rate('email_ingest_consumer_emails_stored_total')})",
                                "requests per email",
                            ),
                        ),
                    ),
                ),
            ),
            Row(
                "Saturation and heartbeats",
                (
                    panel(
                        "Messages in flight",
                        f"Messages being processed, per instance (bounded by CONSUMER_MAX_IN_FLIGHT, default "
                        f"{CONSUMER_MAX_IN_FLIGHT}).",
                        "short",
                        (
                            query(
                                f"sum by (instance) ({sel('email_ingest_consumer_messages_in_flight')})",
                                "{{instance}}",
                            ),
                        ),
                        steps=((CONSUMER_MAX_IN_FLIGHT * 0.9, ORANGE),),
                    ),
                    panel(
                        "Visibility extensions (heartbeats)",
                        "ChangeMessageVisibility extensions per second: messages whose processing passed "
                        "HEARTBEAT_FRACTION of the visibility timeout.",
                        "ops",
                        (
                            query(
                                "sum by (instance) (" + rate("email_ingest_consumer_visibility_extensions_total") + ")",
                                "{{instance}}",
                            ),
                        ),
                    ),
                ),
            ),
            Row(
                "Batched layout (STORAGE_LAYOUT=batched)",
                (
                    panel(
                        "Batches written and failed",
                        "Batch objects written per second, and batches given up after S3_MAX_ATTEMPTS (their "
                        "messages stay in SQS and come back). Flat at zero in the per-email layout.",
                        "ops",
                        (
                            query(
                                f"sum by (result) ({rate('email_ingest_consumer_batches_total')})",
                                "{{result}}",
                            ),
                        ),
                        width=8,
                        steps=((0.001, RED),),
                    ),
                    panel(
                        "Emails held for their batch",
                        "Emails (in-flight messages) waiting for their batch to be written, per instance. "
                        "Their messages are deleted once it is.",
                        "short",
                        (
                            query(
                                f"sum by (instance) ({sel('email_ingest_consumer_batch_emails_held')})",
                                "{{instance}}",
                            ),
                        ),
                        width=8,
                    ),
                    panel(
                        "Emails per batch",
                        "Average emails per written batch (BATCH_MAX_EMAILS is the most; fewer when batches are "
                        "written by BATCH_MAX_SECONDS or BATCH_MAX_BYTES).",
                        "short",
                        (
                            query(
                                f"sum({rate('email_ingest_consumer_batch_emails_sum')})\n/\n"
                                f"sum({rate('email_ingest_consumer_batch_emails_count')})",
                                "emails per batch",
                            ),
                        ),
                        width=8,
                    ),
                    panel(
                        "Batch age when written",
                        "From a batch's first email to its write (at most BATCH_MAX_SECONDS plus the PUT).",
                        "s",
                        quantile_targets("email_ingest_consumer_batch_age_seconds"),
                    ),
                    panel(
                        "Compression",
                        "Uncompressed NDJSON bytes per object byte (gzip), over written batches.",
                        "short",
                        (
                            query(
                                f"sum({rate('email_ingest_consumer_batch_bytes_sum')})\n/\n"
                                f"sum({rate('email_ingest_consumer_batch_compressed_bytes_sum')})",
                                "ratio",
                            ),
                        ),
                    ),
                ),
            ),
            process_row("consumer"),
        ),
    )
