"""The pipeline overview: accepted against stored, the backlog and the API SLO's error budget."""

from __future__ import annotations

from observability.dashboards.panels import BLUE, GREEN, JSON, ORANGE, RED, YELLOW, Row, build, panel, query
from observability.dashboards.queries import (
    ALREADY_STORED,
    CREATED,
    DLQ,
    ERROR_BUDGET,
    MAIN,
    OLDEST_AGE,
    QUEUE_MESSAGES,
    SLO_TARGET,
    VISIBLE,
    burn_rate,
    error_ratio,
    quantile,
    rate,
    sel,
)


def dashboard() -> JSON:
    accepted = f"sum({rate('email_ingest_api_emails_accepted_total')})"
    stored_new = f"sum({rate('email_ingest_consumer_emails_stored_total', CREATED)})"
    return build(
        uid="email-ingest-overview",
        title="email-ingest / Pipeline overview",
        description="The whole pipeline: emails accepted by the API against emails stored by the "
        "consumer, the "
        "backlog between them, and the API availability SLO's error budget burn.",
        job_metric="email_ingest_build_info",
        default_range="now-6h",
        rows=(
            Row(
                "Pipeline",
                (
                    panel(
                        "Accepted",
                        "Emails accepted by the API per second.",
                        "ops",
                        (query(accepted, "accepted"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=BLUE,
                    ),
                    panel(
                        "Stored",
                        "New emails stored in S3 per second.",
                        "ops",
                        (query(stored_new, "stored"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=BLUE,
                    ),
                    panel(
                        "Backlog",
                        "Messages waiting in the main queue.",
                        "short",
                        (query(f"max({sel(QUEUE_MESSAGES, MAIN, VISIBLE)})", "visible"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((1000, ORANGE), (10000, RED)),
                    ),
                    panel(
                        "End-to-end p99",
                        "99th percentile from acceptance to storage.",
                        "s",
                        (query(quantile(0.99, "email_ingest_consumer_end_to_end_latency_seconds"), "p99"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    panel(
                        "DLQ depth",
                        "Messages in the dead-letter queue: emails that were not stored.",
                        "short",
                        (query(f"sum(max by (state) ({sel(QUEUE_MESSAGES, DLQ)}))", "dlq"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((1, RED),),
                    ),
                    panel(
                        "Targets up",
                        "Scraped API and consumer instances that answer.",
                        "short",
                        (query(f"sum({sel('up')})", "up"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=RED,
                        steps=((1, GREEN),),
                    ),
                    panel(
                        "Accepted vs stored",
                        "Emails accepted by the API and emails stored by the consumer per second (new, and "
                        "duplicates already stored by an earlier delivery). A lasting gap means a "
                        "growing backlog.",
                        "ops",
                        (
                            query(accepted, "accepted (API)"),
                            query(stored_new, "stored (consumer)"),
                            query(
                                f"sum({rate('email_ingest_consumer_emails_stored_total', ALREADY_STORED)})",
                                "duplicates (consumer)",
                            ),
                        ),
                    ),
                    panel(
                        "Lag",
                        "Age of the oldest queued message, and the end-to-end p99 from acceptance to storage.",
                        "s",
                        (
                            query(f"max({sel(OLDEST_AGE, MAIN)})", "oldest queued message"),
                            query(
                                quantile(0.99, "email_ingest_consumer_end_to_end_latency_seconds"),
                                "end-to-end p99",
                            ),
                        ),
                        steps=((60, ORANGE), (300, RED)),
                    ),
                ),
            ),
            Row(
                f"API availability SLO ({SLO_TARGET:.1%} over 30 days)",
                (
                    panel(
                        "Error budget burn rate",
                        "How fast the API spends its error budget (1 = exactly the budget over 30 "
                        "days), over "
                        "several windows. The alerts page at 14.4 (1 h) and 6 (6 h), and open a "
                        "ticket at 3 (1 d) "
                        "and 1 (3 d). Errors are 5xx answers, load shedding included; 4xx are not.",
                        "short",
                        (
                            query(burn_rate("$__rate_interval"), "short window"),
                            query(burn_rate("1h"), "1h"),
                            query(burn_rate("6h"), "6h"),
                            query(burn_rate("1d"), "1d"),
                        ),
                        steps=((1, YELLOW), (6, ORANGE), (14.4, RED)),
                    ),
                    panel(
                        "Error budget remaining (30 d)",
                        "Share of the 30-day error budget not yet spent (negative: the SLO is broken).",
                        "percentunit",
                        (query(f"1 - (\n{error_ratio('30d')}\n) / {ERROR_BUDGET}", "remaining"),),
                        kind="stat",
                        width=6,
                        base_color=RED,
                        steps=((0, ORANGE), (0.25, GREEN)),
                        min=None,
                        max=1,
                    ),
                    panel(
                        "Availability (30 d)",
                        "Share of requests not answered 5xx over 30 days.",
                        "percentunit",
                        (query(f"1 - (\n{error_ratio('30d')}\n)", "availability"),),
                        kind="stat",
                        width=6,
                        base_color=RED,
                        steps=((SLO_TARGET, GREEN),),
                        min=None,
                        max=1,
                        decimals=3,
                    ),
                ),
            ),
        ),
    )
