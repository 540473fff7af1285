"""The queue dashboard: depth, age and throughput of the main queue and its DLQ."""

from __future__ import annotations

from observability.dashboards.panels import BLUE, JSON, ORANGE, RED, Row, build, panel, query
from observability.dashboards.queries import DLQ, MAIN, NOT_VISIBLE, OLDEST_AGE, QUEUE_MESSAGES, VISIBLE, rate, sel


def dashboard() -> JSON:
    return build(
        uid="email-ingest-queue",
        title="email-ingest / Queue",
        description="The SQS queue and its dead-letter queue as the consumer sees them "
        "(GetQueueAttributes every "
        "QUEUE_METRICS_INTERVAL_SECONDS): depth, in-flight messages, oldest message age, DLQ depth.",
        job_metric=QUEUE_MESSAGES,
        extra_tags=("consumer",),
        rows=(
            Row(
                "Now",
                (
                    panel(
                        "Visible messages",
                        "Messages waiting in the main queue.",
                        "short",
                        (query(f"max({sel(QUEUE_MESSAGES, MAIN, VISIBLE)})", "visible"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((1000, ORANGE), (10000, RED)),
                    ),
                    panel(
                        "In flight",
                        "Messages received by a consumer and not yet deleted (not visible).",
                        "short",
                        (
                            query(
                                f"max({sel(QUEUE_MESSAGES, MAIN, NOT_VISIBLE)})",
                                "not visible",
                            ),
                        ),
                        kind="stat",
                        width=6,
                        height=4,
                        base_color=BLUE,
                    ),
                    panel(
                        "Oldest message age",
                        "Age of the oldest message in the consumer's last receive.",
                        "s",
                        (query(f"max({sel(OLDEST_AGE, MAIN)})", "oldest"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    panel(
                        "DLQ depth",
                        "Messages in the dead-letter queue (any state). Anything above zero is an email that "
                        "was not stored: see the runbook.",
                        "short",
                        (query(f"sum(max by (state) ({sel(QUEUE_MESSAGES, DLQ)}))", "dlq"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((1, RED),),
                    ),
                ),
            ),
            Row(
                "Over time",
                (
                    panel(
                        "Main queue by state",
                        "Visible (waiting), not visible (in flight) and delayed messages in the main queue.",
                        "short",
                        (query(f"max by (state) ({sel(QUEUE_MESSAGES, MAIN)})", "{{state}}"),),
                        stack=True,
                    ),
                    panel(
                        "Oldest message age",
                        "Age of the oldest message in the consumer's last receive: how far behind the consumer is.",
                        "s",
                        (query(f"max({sel(OLDEST_AGE, MAIN)})", "oldest message"),),
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    panel(
                        "Dead-letter queue by state",
                        "Messages in the DLQ by state. Redrive them with `python -m "
                        "consumer_service.redrive` "
                        "once the cause is fixed.",
                        "short",
                        (query(f"max by (state) ({sel(QUEUE_MESSAGES, DLQ)})", "{{state}}"),),
                        stack=True,
                        steps=((1, RED),),
                    ),
                    panel(
                        "Time to drain",
                        "Visible messages divided by the delete rate: how long the backlog lasts "
                        "at the current "
                        "pace if nothing new arrives.",
                        "s",
                        (
                            query(
                                f"max({sel(QUEUE_MESSAGES, MAIN, VISIBLE)})\n/\n"
                                f"sum({rate('email_ingest_consumer_messages_deleted_total')})",
                                "time to drain",
                            ),
                        ),
                        steps=((300, ORANGE), (3600, RED)),
                    ),
                ),
            ),
        ),
    )
