"""The publisher and token dashboard: the API's SQS batches and its SSM token cache."""

from __future__ import annotations

from observability.dashboards.limits import PUBLISH_MAX_PENDING, TOKEN_MAX_STALENESS_SECONDS, TOKEN_REFRESH_SECONDS
from observability.dashboards.panels import JSON, ORANGE, RED, Row, build, panel, query
from observability.dashboards.queries import (
    AWS_DURATION,
    SEND_BATCH,
    SQS,
    SSM,
    increase,
    mean,
    quantile,
    quantile_targets,
    rate,
    sel,
)


def dashboard() -> JSON:
    return build(
        uid="email-ingest-publisher",
        title="email-ingest / Publisher and token",
        description="The API's SQS publisher (batches, flushes, SendMessageBatch latency and "
        "failures) and the "
        "SSM token cache.",
        job_metric="email_ingest_publisher_flushes_total",
        extra_tags=("api",),
        rows=(
            Row(
                "Batching",
                (
                    panel(
                        "Entries per batch",
                        "Messages per SendMessageBatch call (at most 10): percentiles and mean. "
                        "Higher means fewer "
                        "SQS requests per email.",
                        "short",
                        (
                            *(
                                query(quantile(q, "email_ingest_publisher_batch_entries"), f"p{round(q * 100)}")
                                for q in (0.5, 0.95)
                            ),
                            query(mean("email_ingest_publisher_batch_entries"), "mean"),
                        ),
                        max=10,
                    ),
                    panel(
                        "Bytes per batch",
                        "Body bytes per SendMessageBatch call (SQS allows 1 MiB per batch).",
                        "bytes",
                        (
                            *(
                                query(quantile(q, "email_ingest_publisher_batch_bytes"), f"p{round(q * 100)}")
                                for q in (0.5, 0.95)
                            ),
                            query(mean("email_ingest_publisher_batch_bytes"), "mean"),
                        ),
                    ),
                    panel(
                        "Flushes by reason",
                        "Batches sent per second by why they were sent: full (10 entries), size "
                        "(byte limit), "
                        "linger (PUBLISH_LINGER_MS expired), drain (shutdown).",
                        "ops",
                        (
                            query(
                                f"sum by (reason) ({rate('email_ingest_publisher_flushes_total')})",
                                "{{reason}}",
                            ),
                        ),
                        stack=True,
                    ),
                    panel(
                        "Pending entries and batches in flight",
                        "Entries waiting for a batch (past PUBLISH_MAX_PENDING, default "
                        f"{PUBLISH_MAX_PENDING}, the "
                        "API sheds load) and SendMessageBatch calls in progress, per instance.",
                        "short",
                        (
                            query(
                                f"max by (instance) ({sel('email_ingest_publisher_pending_entries')})",
                                "pending {{instance}}",
                            ),
                            query(
                                f"max by (instance) ({sel('email_ingest_publisher_batches_in_flight')})",
                                "batches in flight {{instance}}",
                            ),
                        ),
                        steps=((PUBLISH_MAX_PENDING * 0.75, ORANGE), (PUBLISH_MAX_PENDING, RED)),
                    ),
                ),
            ),
            Row(
                "SendMessageBatch",
                (
                    panel(
                        "Publish latency",
                        "Duration of SendMessageBatch calls (one attempt each).",
                        "s",
                        quantile_targets(AWS_DURATION, *SEND_BATCH),
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    panel(
                        "SendMessageBatch calls by outcome",
                        "SendMessageBatch requests per second; error means the whole call failed.",
                        "reqps",
                        (
                            query(
                                f"sum by (outcome) ({rate('email_ingest_aws_requests_total', *SEND_BATCH)})",
                                "{{outcome}}",
                            ),
                        ),
                        stack=True,
                    ),
                    panel(
                        "Failed entries by reason",
                        "Entries given up per second (each one is a 503 to a client): retryable (retries "
                        "exhausted), permanent (SQS refused the entry), deadline "
                        "(PUBLISH_DEADLINE_SECONDS passed).",
                        "ops",
                        (
                            query(
                                f"sum by (reason) ({rate('email_ingest_publisher_entries_failed_total')})",
                                "{{reason}}",
                            ),
                        ),
                        stack=True,
                        steps=((0.001, RED),),
                    ),
                    panel(
                        "Retries and SQS requests per accepted email",
                        "Entry retries per second, and SQS requests per accepted email (batching efficiency: "
                        "0.1 is the best possible with 10-entry batches).",
                        "short",
                        (
                            query(f"sum({rate('email_ingest_publisher_retries_total')})", "retries/s"),
                            query(
                                f"sum({rate('email_ingest_aws_requests_total', SQS)})\n/\n"
                                f"sum({rate('email_ingest_api_emails_accepted_total')})",
                                "SQS requests per email",
                            ),
                        ),
                    ),
                ),
            ),
            Row(
                "Token (SSM Parameter Store)",
                (
                    panel(
                        "Token age",
                        f"Seconds since each instance last loaded the token (refreshed every "
                        f"{TOKEN_REFRESH_SECONDS} s by default; -1 before the first load; past "
                        f"TOKEN_MAX_STALENESS_SECONDS, default {TOKEN_MAX_STALENESS_SECONDS} s, "
                        "the API answers 503).",
                        "s",
                        (query(f"max by (instance) ({sel('email_ingest_token_age_seconds')})", "{{instance}}"),),
                        steps=((3 * TOKEN_REFRESH_SECONDS, ORANGE), (TOKEN_MAX_STALENESS_SECONDS, RED)),
                        min=None,
                    ),
                    panel(
                        "Instances without a usable token",
                        "API instances holding no usable token (they answer 503 token_unavailable).",
                        "short",
                        (
                            query(
                                f"count({sel('email_ingest_token_loaded')} == 0) or vector(0)",
                                "instances without token",
                            ),
                        ),
                        kind="stat",
                        width=6,
                        steps=((1, RED),),
                    ),
                    panel(
                        "Token loads per hour",
                        "Token loads from SSM in the last hour, by outcome. Failures are retried with backoff.",
                        "short",
                        (
                            query(
                                "sum by (outcome) ("
                                + increase("email_ingest_token_refreshes_total", window="1h")
                                + ")",
                                "{{outcome}}",
                            ),
                        ),
                        width=6,
                    ),
                    panel(
                        "SSM latency",
                        "Duration of SSM calls (GetParameterHistory).",
                        "s",
                        quantile_targets(AWS_DURATION, SSM),
                    ),
                    panel(
                        "SSM calls by outcome",
                        "SSM requests per second by outcome.",
                        "reqps",
                        (
                            query(
                                "sum by (operation, outcome) (" + rate("email_ingest_aws_requests_total", SSM) + ")",
                                "{{operation}} {{outcome}}",
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )
