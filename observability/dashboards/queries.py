"""PromQL of the dashboards: metric names, label matchers and the expressions built from them.

Every selector carries the dashboard's variables, `namespace=~"$namespace", job=~"$job", instance=~"$instance"`,
and every `rate()` uses `$__rate_interval` unless a window is given (Grafana's dashboard-linter rules).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus

from observability.dashboards.panels import query

# The availability SLO of the API (kept in step with observability/alerts/api.rules.yaml).
SLO_TARGET = 0.999
ERROR_BUDGET = round(1 - SLO_TARGET, 6)
# Probes and scrapes are not user traffic: they stay out of the SLO and of the error ratio.
PROBE_ROUTES = "/healthz|/health|/readyz|/metrics"

SCOPE = ('namespace=~"$namespace"', 'job=~"$job"', 'instance=~"$instance"')


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def sel(metric: str, *matchers: str) -> str:
    """A selector carrying the dashboard's namespace, job and instance variables (and any extra matchers)."""
    return metric + "{" + ", ".join((*SCOPE, *matchers)) + "}"


def rate(metric: str, *matchers: str, window: str = "$__rate_interval") -> str:
    return f"rate({sel(metric, *matchers)}[{window}])"


def increase(metric: str, *matchers: str, window: str) -> str:
    return f"increase({sel(metric, *matchers)}[{window}])"


def quantile(q: float, histogram: str, *matchers: str, by: str = "") -> str:
    """histogram_quantile over the `_bucket` series of a histogram, aggregated across instances."""
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(histogram + '_bucket', *matchers)}))"


def mean(histogram: str, *matchers: str) -> str:
    return f"sum({rate(histogram + '_sum', *matchers)})\n/\nsum({rate(histogram + '_count', *matchers)})"


USER_ROUTES = f'route!~"{PROBE_ROUTES}"'
ERRORS = 'code=~"5.."'
API_REQUESTS = "email_ingest_api_requests_total"
API_DURATION = "email_ingest_api_request_duration_seconds"
AWS_DURATION = "email_ingest_aws_request_duration_seconds"
SQS, SSM = eq("service", "sqs"), eq("service", "ssm")
SEND_BATCH = (SQS, eq("operation", "SendMessageBatch"))
PUT_OBJECT = (eq("service", "s3"), eq("operation", "PutObject"))
MAIN, DLQ = eq("queue", "main"), eq("queue", "dlq")
VISIBLE, NOT_VISIBLE = eq("state", "visible"), eq("state", "not_visible")
CREATED, ALREADY_STORED = eq("result", "created"), eq("result", "already_stored")
QUEUE_MESSAGES = "email_ingest_queue_messages"
OLDEST_AGE = "email_ingest_queue_oldest_message_age_seconds"


def quantile_targets(histogram: str, *matchers: str, exemplars: bool = False) -> tuple[prometheus.Dataquery, ...]:
    return tuple(
        query(quantile(q, histogram, *matchers), f"p{round(q * 100)}", exemplars=exemplars) for q in (0.5, 0.95, 0.99)
    )


def error_ratio(window: str) -> str:
    if window == "$__rate_interval":
        errors, total = rate(API_REQUESTS, USER_ROUTES, ERRORS), rate(API_REQUESTS, USER_ROUTES)
    else:
        errors = increase(API_REQUESTS, USER_ROUTES, ERRORS, window=window)
        total = increase(API_REQUESTS, USER_ROUTES, window=window)
    # `or vector(0)`: a service that never answered 5xx has no 5xx series, and its error ratio is 0, not "no data".
    return f"(sum({errors}) or vector(0))\n/\nsum({total})"


def burn_rate(window: str) -> str:
    return f"(\n{error_ratio(window)}\n) / {ERROR_BUDGET}"
