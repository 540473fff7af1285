"""Generates the Grafana dashboards of email-ingest as JSON files beside this module.

    python -m observability.dashboards.generate           # rewrite the committed JSON
    python -m observability.dashboards.generate --check   # exit 1 when a committed file is out of date

Every query selects `namespace=~"$namespace", job=~"$job", instance=~"$instance"`. The variables' "All"
values are `.*` for namespace (matches series without a namespace label, as on a plain Prometheus) and `.+`
for job and instance (every scraped series has them), so the dashboards work unchanged on a bare Prometheus
and in Kubernetes.
Metric names come from docs/contract.md; docs/metrics.md explains them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parent
TAG = "email-ingest"
DATASOURCE: JSON = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24

API_JOB = "email-ingest-api"
CONSUMER_JOB = "email-ingest-consumer"

# The availability SLO of the API (kept in step with observability/alerts/api.rules.yaml).
SLO_TARGET = 0.999
ERROR_BUDGET = round(1 - SLO_TARGET, 6)
# Probes and scrapes are not user traffic: they stay out of the SLO and of the error ratio.
PROBE_ROUTES = "/healthz|/health|/readyz|/metrics"

# Limits from docs/contract.md (defaults), used as thresholds.
PUBLISH_MAX_PENDING = 2000
CONSUMER_MAX_IN_FLIGHT = 64
TOKEN_REFRESH_SECONDS = 300
TOKEN_MAX_STALENESS_SECONDS = 3600

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"


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


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    height: int = 8
    # Threshold steps above the base colour: (value, colour), ascending.
    steps: tuple[tuple[float, str], ...] = ()
    base_color: str = GREEN
    min: float | None = 0
    max: float | None = None
    stack: bool = False
    decimals: int | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    # Metric whose series define the job and instance choices of this dashboard.
    job_metric: str
    rows: tuple[Row, ...]
    default_range: str = "now-3h"
    extra_tags: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------
# JSON rendering


def _thresholds(panel: Panel) -> JSON:
    steps: list[JSON] = [{"color": panel.base_color, "value": None}]
    steps += [{"color": color, "value": value} for value, color in panel.steps]
    return {"mode": "absolute", "steps": steps}


def _field_defaults(panel: Panel) -> JSON:
    defaults: JSON = {
        "color": {"mode": "thresholds" if panel.kind == "stat" else "palette-classic"},
        "mappings": [],
        "thresholds": _thresholds(panel),
        "unit": panel.unit,
    }
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "axisPlacement": "auto",
            "drawStyle": "line",
            "fillOpacity": 10,
            "gradientMode": "none",
            "lineInterpolation": "linear",
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stack else "none"},
            "thresholdsStyle": {"mode": "dashed" if panel.steps else "off"},
        }
    return defaults


def _options(panel: Panel) -> JSON:
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        }
    return {
        "legend": {
            "calcs": ["mean", "max", "lastNotNull"],
            "displayMode": "table",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _targets(panel: Panel) -> list[JSON]:
    return [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": target.expr,
            "legendFormat": target.legend,
            "range": True,
            "refId": chr(ord("A") + index),
        }
        for index, target in enumerate(panel.targets)
    ]


class _Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping lines; rows span the full width."""

    def __init__(self) -> None:
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.line_height = 0

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def row(self, title: str) -> JSON:
        if self.x:
            self._new_line()
        row: JSON = {
            "collapsed": False,
            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self.y},
            "id": self._take_id(),
            "panels": [],
            "title": title,
            "type": "row",
        }
        self.y += 1
        return row

    def panel(self, panel: Panel) -> JSON:
        if self.x + panel.width > GRID_WIDTH:
            self._new_line()
        grid = {"h": panel.height, "w": panel.width, "x": self.x, "y": self.y}
        self.x += panel.width
        self.line_height = max(self.line_height, panel.height)
        return {
            "datasource": DATASOURCE,
            "description": panel.description,
            "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
            "gridPos": grid,
            "id": self._take_id(),
            "options": _options(panel),
            "targets": _targets(panel),
            "title": panel.title,
            "type": panel.kind,
        }


def _query_variable(name: str, label: str, query: str, all_value: str, description: str) -> JSON:
    return {
        "allValue": all_value,
        "current": {"selected": True, "text": "All", "value": "$__all"},
        "datasource": DATASOURCE,
        "definition": query,
        "description": description,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def _templating(dashboard: Dashboard) -> JSON:
    return {
        "list": [
            {
                "current": {},
                "description": "The Prometheus that scrapes email-ingest.",
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "skipUrlSync": False,
                "type": "datasource",
            },
            _query_variable(
                "namespace",
                "Namespace",
                "label_values(email_ingest_build_info, namespace)",
                ".*",
                "Kubernetes namespace. 'All' is '.*', which also matches series without a namespace label "
                "(a plain Prometheus).",
            ),
            _query_variable(
                "job",
                "Job",
                f'label_values({dashboard.job_metric}{{namespace=~"$namespace"}}, job)',
                ".+",
                f"Prometheus job: {API_JOB} (API) or {CONSUMER_JOB} (consumer).",
            ),
            _query_variable(
                "instance",
                "Instance",
                f'label_values({dashboard.job_metric}{{namespace=~"$namespace", job=~"$job"}}, instance)',
                ".+",
                "Scraped instance (pod address).",
            ),
        ]
    }


def render(dashboard: Dashboard) -> JSON:
    """The Grafana JSON model of one dashboard."""
    layout = _Layout()
    panels: list[JSON] = []
    for row in dashboard.rows:
        panels.append(layout.row(row.title))
        panels.extend(layout.panel(panel) for panel in row.panels)
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": dashboard.description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": [TAG],
                "targetBlank": False,
                "title": "email-ingest dashboards",
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": [TAG, *dashboard.extra_tags],
        "templating": _templating(dashboard),
        "time": {"from": dashboard.default_range, "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": dashboard.title,
        "uid": dashboard.uid,
        "version": 1,
        "weekStart": "",
    }


# ----------------------------------------------------------------------------------------------------
# Shared panel definitions

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


def _quantile_targets(histogram: str, *matchers: str) -> tuple[Target, ...]:
    return tuple(Target(quantile(q, histogram, *matchers), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99))


def _error_ratio(window: str) -> str:
    if window == "$__rate_interval":
        errors, total = rate(API_REQUESTS, USER_ROUTES, ERRORS), rate(API_REQUESTS, USER_ROUTES)
    else:
        errors = increase(API_REQUESTS, USER_ROUTES, ERRORS, window=window)
        total = increase(API_REQUESTS, USER_ROUTES, window=window)
    # `or vector(0)`: a service that never answered 5xx has no 5xx series, and its error ratio is 0, not "no data".
    return f"(sum({errors}) or vector(0))\n/\nsum({total})"


def _burn_rate(window: str) -> str:
    return f"(\n{_error_ratio(window)}\n) / {ERROR_BUDGET}"


def _process_row(what: str) -> Row:
    return Row(
        "Process",
        (
            Panel(
                "CPU",
                f"CPU time used by each {what} process, in cores (1 = one core fully busy).",
                "percentunit",
                (Target(f"sum by (instance) ({rate('process_cpu_seconds_total')})", "{{instance}}"),),
                steps=((0.8, ORANGE),),
            ),
            Panel(
                "Resident memory",
                f"Resident set size of each {what} process.",
                "bytes",
                (Target(f"sum by (instance) ({sel('process_resident_memory_bytes')})", "{{instance}}"),),
            ),
        ),
    )


# ----------------------------------------------------------------------------------------------------
# Dashboards


def api_dashboard() -> Dashboard:
    return Dashboard(
        uid="email-ingest-api",
        title="email-ingest / API",
        description="The HTTP API: rate, errors and duration (RED), in-flight requests, rejections and load shedding.",
        job_metric=API_REQUESTS,
        extra_tags=("api",),
        rows=(
            Row(
                "Overview",
                (
                    Panel(
                        "Request rate",
                        "HTTP requests per second, all routes except probes and scrapes.",
                        "reqps",
                        (Target(f"sum({rate(API_REQUESTS, USER_ROUTES)})", "requests"),),
                        kind="stat",
                        width=6,
                        height=4,
                        base_color=BLUE,
                    ),
                    Panel(
                        "Error ratio (5xx)",
                        "Share of requests answered 5xx, load shedding (503) included. 4xx are the "
                        "client's fault "
                        f"and do not count. The SLO allows {ERROR_BUDGET:.1%}.",
                        "percentunit",
                        (Target(_error_ratio("$__rate_interval"), "5xx"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((ERROR_BUDGET, ORANGE), (10 * ERROR_BUDGET, RED)),
                        decimals=2,
                    ),
                    Panel(
                        "p99 latency",
                        "99th percentile of request duration, all routes except probes and scrapes.",
                        "s",
                        (Target(quantile(0.99, API_DURATION, USER_ROUTES), "p99"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    Panel(
                        "Requests in flight",
                        "Requests being handled right now, summed over instances.",
                        "short",
                        (Target(f"sum({sel('email_ingest_api_requests_in_flight')})", "in flight"),),
                        kind="stat",
                        width=6,
                        height=4,
                        base_color=BLUE,
                    ),
                ),
            ),
            Row(
                "Rate, errors, duration",
                (
                    Panel(
                        "Requests by status class",
                        "Requests per second by HTTP status class (all routes except probes and scrapes).",
                        "reqps",
                        tuple(
                            Target("sum(" + rate(API_REQUESTS, USER_ROUTES, f'code=~"{c}.."') + ")", f"{c}xx")
                            for c in "245"
                        ),
                        stack=True,
                    ),
                    Panel(
                        "Requests by route and code",
                        "Requests per second by route, method and status code, probes included.",
                        "reqps",
                        (
                            Target(
                                f"sum by (route, method, code) ({rate(API_REQUESTS)})",
                                "{{method}} {{route}} {{code}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Error ratio (5xx)",
                        "Share of requests answered 5xx (shedding included). Dashed line: the "
                        f"SLO's {ERROR_BUDGET:.1%}.",
                        "percentunit",
                        (Target(_error_ratio("$__rate_interval"), "5xx ratio"),),
                        steps=((ERROR_BUDGET, RED),),
                    ),
                    Panel(
                        "Latency",
                        "Request duration percentiles, all routes except probes and scrapes.",
                        "s",
                        _quantile_targets(API_DURATION, USER_ROUTES),
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    Panel(
                        "p99 latency by route",
                        "99th percentile of request duration per route and method.",
                        "s",
                        (Target(quantile(0.99, API_DURATION, by="route, method"), "{{method}} {{route}}"),),
                    ),
                    Panel(
                        "Requests in flight",
                        "Requests being handled right now, per instance.",
                        "short",
                        (
                            Target(
                                f"sum by (instance) ({sel('email_ingest_api_requests_in_flight')})",
                                "{{instance}}",
                            ),
                        ),
                    ),
                ),
            ),
            Row(
                "Accepted, rejected and shed",
                (
                    Panel(
                        "Emails accepted",
                        "Emails accepted (published to SQS and answered 200) per second.",
                        "ops",
                        (Target(f"sum({rate('email_ingest_api_emails_accepted_total')})", "accepted"),),
                        width=8,
                    ),
                    Panel(
                        "Rejections by reason",
                        "Requests refused as the client's fault (4xx) per second, by reason.",
                        "reqps",
                        (
                            Target(
                                f"sum by (reason) ({rate('email_ingest_api_rejections_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                    ),
                    Panel(
                        "Load shed by reason",
                        "Requests answered 503 with Retry-After per second, by reason: queue_full (publisher "
                        "backlog at PUBLISH_MAX_PENDING), draining (shutdown), publish_failed (SQS), "
                        "token_unavailable (no usable token from SSM).",
                        "reqps",
                        (
                            Target(
                                f"sum by (reason) ({rate('email_ingest_api_requests_shed_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.001, RED),),
                    ),
                ),
            ),
            _process_row("API"),
        ),
    )


def publisher_dashboard() -> Dashboard:
    return Dashboard(
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
                    Panel(
                        "Entries per batch",
                        "Messages per SendMessageBatch call (at most 10): percentiles and mean. "
                        "Higher means fewer "
                        "SQS requests per email.",
                        "short",
                        (
                            *(
                                Target(quantile(q, "email_ingest_publisher_batch_entries"), f"p{round(q * 100)}")
                                for q in (0.5, 0.95)
                            ),
                            Target(mean("email_ingest_publisher_batch_entries"), "mean"),
                        ),
                        max=10,
                    ),
                    Panel(
                        "Bytes per batch",
                        "Body bytes per SendMessageBatch call (SQS allows 1 MiB per batch).",
                        "bytes",
                        (
                            *(
                                Target(quantile(q, "email_ingest_publisher_batch_bytes"), f"p{round(q * 100)}")
                                for q in (0.5, 0.95)
                            ),
                            Target(mean("email_ingest_publisher_batch_bytes"), "mean"),
                        ),
                    ),
                    Panel(
                        "Flushes by reason",
                        "Batches sent per second by why they were sent: full (10 entries), size "
                        "(byte limit), "
                        "linger (PUBLISH_LINGER_MS expired), drain (shutdown).",
                        "ops",
                        (
                            Target(
                                f"sum by (reason) ({rate('email_ingest_publisher_flushes_total')})",
                                "{{reason}}",
                            ),
                        ),
                        stack=True,
                    ),
                    Panel(
                        "Pending entries and batches in flight",
                        "Entries waiting for a batch (past PUBLISH_MAX_PENDING, default "
                        f"{PUBLISH_MAX_PENDING}, the "
                        "API sheds load) and SendMessageBatch calls in progress, per instance.",
                        "short",
                        (
                            Target(
                                f"max by (instance) ({sel('email_ingest_publisher_pending_entries')})",
                                "pending {{instance}}",
                            ),
                            Target(
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
                    Panel(
                        "Publish latency",
                        "Duration of SendMessageBatch calls (one attempt each).",
                        "s",
                        _quantile_targets(AWS_DURATION, *SEND_BATCH),
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    Panel(
                        "SendMessageBatch calls by outcome",
                        "SendMessageBatch requests per second; error means the whole call failed.",
                        "reqps",
                        (
                            Target(
                                f"sum by (outcome) ({rate('email_ingest_aws_requests_total', *SEND_BATCH)})",
                                "{{outcome}}",
                            ),
                        ),
                        stack=True,
                    ),
                    Panel(
                        "Failed entries by reason",
                        "Entries given up per second (each one is a 503 to a client): retryable (retries "
                        "exhausted), permanent (SQS refused the entry), deadline "
                        "(PUBLISH_DEADLINE_SECONDS passed).",
                        "ops",
                        (
                            Target(
                                f"sum by (reason) ({rate('email_ingest_publisher_entries_failed_total')})",
                                "{{reason}}",
                            ),
                        ),
                        stack=True,
                        steps=((0.001, RED),),
                    ),
                    Panel(
                        "Retries and SQS requests per accepted email",
                        "Entry retries per second, and SQS requests per accepted email (batching efficiency: "
                        "0.1 is the best possible with 10-entry batches).",
                        "short",
                        (
                            Target(f"sum({rate('email_ingest_publisher_retries_total')})", "retries/s"),
                            Target(
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
                    Panel(
                        "Token age",
                        f"Seconds since each instance last loaded the token (refreshed every "
                        f"{TOKEN_REFRESH_SECONDS} s by default; -1 before the first load; past "
                        f"TOKEN_MAX_STALENESS_SECONDS, default {TOKEN_MAX_STALENESS_SECONDS} s, "
                        "the API answers 503).",
                        "s",
                        (Target(f"max by (instance) ({sel('email_ingest_token_age_seconds')})", "{{instance}}"),),
                        steps=((3 * TOKEN_REFRESH_SECONDS, ORANGE), (TOKEN_MAX_STALENESS_SECONDS, RED)),
                        min=None,
                    ),
                    Panel(
                        "Instances without a usable token",
                        "API instances holding no usable token (they answer 503 token_unavailable).",
                        "short",
                        (
                            Target(
                                f"count({sel('email_ingest_token_loaded')} == 0) or vector(0)",
                                "instances without token",
                            ),
                        ),
                        kind="stat",
                        width=6,
                        steps=((1, RED),),
                    ),
                    Panel(
                        "Token loads per hour",
                        "Token loads from SSM in the last hour, by outcome. Failures are retried with backoff.",
                        "short",
                        (
                            Target(
                                "sum by (outcome) ("
                                + increase("email_ingest_token_refreshes_total", window="1h")
                                + ")",
                                "{{outcome}}",
                            ),
                        ),
                        width=6,
                    ),
                    Panel(
                        "SSM latency",
                        "Duration of SSM calls (GetParameterHistory).",
                        "s",
                        _quantile_targets(AWS_DURATION, SSM),
                    ),
                    Panel(
                        "SSM calls by outcome",
                        "SSM requests per second by outcome.",
                        "reqps",
                        (
                            Target(
                                "sum by (operation, outcome) (" + rate("email_ingest_aws_requests_total", SSM) + ")",
                                "{{operation}} {{outcome}}",
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )


def consumer_dashboard() -> Dashboard:
    return Dashboard(
        uid="email-ingest-consumer",
        title="email-ingest / Consumer",
        description="The consumer: messages received, stored and deleted, S3 latency, end-to-end latency, "
        "in-flight work, poison messages and visibility heartbeats.",
        job_metric="email_ingest_consumer_messages_received_total",
        extra_tags=("consumer",),
        rows=(
            Row(
                "Throughput",
                (
                    Panel(
                        "Received, stored, deleted",
                        "Messages received from SQS, emails stored in S3 (created or already "
                        "there) and messages "
                        "deleted from SQS, per second. In steady state the three lines coincide.",
                        "ops",
                        (
                            Target(f"sum({rate('email_ingest_consumer_messages_received_total')})", "received"),
                            Target(
                                f"sum by (result) ({rate('email_ingest_consumer_emails_stored_total')})",
                                "stored {{result}}",
                            ),
                            Target(f"sum({rate('email_ingest_consumer_messages_deleted_total')})", "deleted"),
                        ),
                    ),
                    Panel(
                        "Receives by result",
                        "ReceiveMessage long polls per second that returned messages or nothing.",
                        "reqps",
                        (
                            Target(
                                f"sum by (result) ({rate('email_ingest_consumer_receives_total')})",
                                "{{result}}",
                            ),
                        ),
                        stack=True,
                    ),
                    Panel(
                        "Processing failures by reason",
                        "Messages that could not be stored per second (left to SQS for another try).",
                        "ops",
                        (
                            Target(
                                "sum by (reason) (" + rate("email_ingest_consumer_processing_failures_total") + ")",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.01, RED),),
                    ),
                    Panel(
                        "Delete failures by reason",
                        "Stored messages whose deletion failed per second (they come back and are "
                        "stored again "
                        "idempotently).",
                        "ops",
                        (
                            Target(
                                f"sum by (reason) ({rate('email_ingest_consumer_delete_failures_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.01, RED),),
                    ),
                    Panel(
                        "Poison messages by reason",
                        "Messages that can never be stored (bad JSON, bad envelope, unknown version) per second.",
                        "ops",
                        (
                            Target(
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
                    Panel(
                        "End-to-end latency",
                        "From the API accepting an email (received_at) to the consumer storing it.",
                        "s",
                        _quantile_targets("email_ingest_consumer_end_to_end_latency_seconds"),
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    Panel(
                        "S3 PutObject latency",
                        "Duration of PutObject calls (one attempt each).",
                        "s",
                        _quantile_targets(AWS_DURATION, *PUT_OBJECT),
                        steps=((0.5, ORANGE), (2, RED)),
                    ),
                    Panel(
                        "AWS calls by operation and outcome",
                        "SQS and S3 requests per second made by the consumer.",
                        "reqps",
                        (
                            Target(
                                "sum by (service, operation, outcome) ("
                                + rate("email_ingest_aws_requests_total")
                                + ")",
                                "{{service}} {{operation}} {{outcome}}",
                            ),
                        ),
                    ),
                    Panel(
                        "AWS requests per stored email",
                        "SQS plus S3 requests per stored email (1 PutObject plus a share of "
                        "receive and batch "
                        "delete calls: close to 1.2 when batches are full).",
                        "short",
                        (
                            Target(
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
                    Panel(
                        "Messages in flight",
                        f"Messages being processed, per instance (bounded by CONSUMER_MAX_IN_FLIGHT, default "
                        f"{CONSUMER_MAX_IN_FLIGHT}).",
                        "short",
                        (
                            Target(
                                f"sum by (instance) ({sel('email_ingest_consumer_messages_in_flight')})",
                                "{{instance}}",
                            ),
                        ),
                        steps=((CONSUMER_MAX_IN_FLIGHT * 0.9, ORANGE),),
                    ),
                    Panel(
                        "Visibility extensions (heartbeats)",
                        "ChangeMessageVisibility extensions per second: messages whose processing passed "
                        "HEARTBEAT_FRACTION of the visibility timeout.",
                        "ops",
                        (
                            Target(
                                "sum by (instance) (" + rate("email_ingest_consumer_visibility_extensions_total") + ")",
                                "{{instance}}",
                            ),
                        ),
                    ),
                ),
            ),
            _process_row("consumer"),
        ),
    )


QUEUE_MESSAGES = "email_ingest_queue_messages"
OLDEST_AGE = "email_ingest_queue_oldest_message_age_seconds"


def queue_dashboard() -> Dashboard:
    return Dashboard(
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
                    Panel(
                        "Visible messages",
                        "Messages waiting in the main queue.",
                        "short",
                        (Target(f"max({sel(QUEUE_MESSAGES, MAIN, VISIBLE)})", "visible"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((1000, ORANGE), (10000, RED)),
                    ),
                    Panel(
                        "In flight",
                        "Messages received by a consumer and not yet deleted (not visible).",
                        "short",
                        (
                            Target(
                                f"max({sel(QUEUE_MESSAGES, MAIN, NOT_VISIBLE)})",
                                "not visible",
                            ),
                        ),
                        kind="stat",
                        width=6,
                        height=4,
                        base_color=BLUE,
                    ),
                    Panel(
                        "Oldest message age",
                        "Age of the oldest message in the consumer's last receive.",
                        "s",
                        (Target(f"max({sel(OLDEST_AGE, MAIN)})", "oldest"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    Panel(
                        "DLQ depth",
                        "Messages in the dead-letter queue (any state). Anything above zero is an email that "
                        "was not stored: see the runbook.",
                        "short",
                        (Target(f"sum(max by (state) ({sel(QUEUE_MESSAGES, DLQ)}))", "dlq"),),
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
                    Panel(
                        "Main queue by state",
                        "Visible (waiting), not visible (in flight) and delayed messages in the main queue.",
                        "short",
                        (Target(f"max by (state) ({sel(QUEUE_MESSAGES, MAIN)})", "{{state}}"),),
                        stack=True,
                    ),
                    Panel(
                        "Oldest message age",
                        "Age of the oldest message in the consumer's last receive: how far behind the consumer is.",
                        "s",
                        (Target(f"max({sel(OLDEST_AGE, MAIN)})", "oldest message"),),
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    Panel(
                        "Dead-letter queue by state",
                        "Messages in the DLQ by state. Redrive them with `python -m "
                        "consumer_service.redrive` "
                        "once the cause is fixed.",
                        "short",
                        (Target(f"max by (state) ({sel(QUEUE_MESSAGES, DLQ)})", "{{state}}"),),
                        stack=True,
                        steps=((1, RED),),
                    ),
                    Panel(
                        "Time to drain",
                        "Visible messages divided by the delete rate: how long the backlog lasts "
                        "at the current "
                        "pace if nothing new arrives.",
                        "s",
                        (
                            Target(
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


def overview_dashboard() -> Dashboard:
    accepted = f"sum({rate('email_ingest_api_emails_accepted_total')})"
    stored_new = f"sum({rate('email_ingest_consumer_emails_stored_total', CREATED)})"
    return Dashboard(
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
                    Panel(
                        "Accepted",
                        "Emails accepted by the API per second.",
                        "ops",
                        (Target(accepted, "accepted"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=BLUE,
                    ),
                    Panel(
                        "Stored",
                        "New emails stored in S3 per second.",
                        "ops",
                        (Target(stored_new, "stored"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=BLUE,
                    ),
                    Panel(
                        "Backlog",
                        "Messages waiting in the main queue.",
                        "short",
                        (Target(f"max({sel(QUEUE_MESSAGES, MAIN, VISIBLE)})", "visible"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((1000, ORANGE), (10000, RED)),
                    ),
                    Panel(
                        "End-to-end p99",
                        "99th percentile from acceptance to storage.",
                        "s",
                        (Target(quantile(0.99, "email_ingest_consumer_end_to_end_latency_seconds"), "p99"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((60, ORANGE), (300, RED)),
                    ),
                    Panel(
                        "DLQ depth",
                        "Messages in the dead-letter queue: emails that were not stored.",
                        "short",
                        (Target(f"sum(max by (state) ({sel(QUEUE_MESSAGES, DLQ)}))", "dlq"),),
                        kind="stat",
                        width=4,
                        height=4,
                        steps=((1, RED),),
                    ),
                    Panel(
                        "Targets up",
                        "Scraped API and consumer instances that answer.",
                        "short",
                        (Target(f"sum({sel('up')})", "up"),),
                        kind="stat",
                        width=4,
                        height=4,
                        base_color=RED,
                        steps=((1, GREEN),),
                    ),
                    Panel(
                        "Accepted vs stored",
                        "Emails accepted by the API and emails stored by the consumer per second (new, and "
                        "duplicates already stored by an earlier delivery). A lasting gap means a "
                        "growing backlog.",
                        "ops",
                        (
                            Target(accepted, "accepted (API)"),
                            Target(stored_new, "stored (consumer)"),
                            Target(
                                f"sum({rate('email_ingest_consumer_emails_stored_total', ALREADY_STORED)})",
                                "duplicates (consumer)",
                            ),
                        ),
                    ),
                    Panel(
                        "Lag",
                        "Age of the oldest queued message, and the end-to-end p99 from acceptance to storage.",
                        "s",
                        (
                            Target(f"max({sel(OLDEST_AGE, MAIN)})", "oldest queued message"),
                            Target(
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
                    Panel(
                        "Error budget burn rate",
                        "How fast the API spends its error budget (1 = exactly the budget over 30 "
                        "days), over "
                        "several windows. The alerts page at 14.4 (1 h) and 6 (6 h), and open a "
                        "ticket at 3 (1 d) "
                        "and 1 (3 d). Errors are 5xx answers, load shedding included; 4xx are not.",
                        "short",
                        (
                            Target(_burn_rate("$__rate_interval"), "short window"),
                            Target(_burn_rate("1h"), "1h"),
                            Target(_burn_rate("6h"), "6h"),
                            Target(_burn_rate("1d"), "1d"),
                        ),
                        steps=((1, YELLOW), (6, ORANGE), (14.4, RED)),
                    ),
                    Panel(
                        "Error budget remaining (30 d)",
                        "Share of the 30-day error budget not yet spent (negative: the SLO is broken).",
                        "percentunit",
                        (Target(f"1 - (\n{_error_ratio('30d')}\n) / {ERROR_BUDGET}", "remaining"),),
                        kind="stat",
                        width=6,
                        base_color=RED,
                        steps=((0, ORANGE), (0.25, GREEN)),
                        min=None,
                        max=1,
                    ),
                    Panel(
                        "Availability (30 d)",
                        "Share of requests not answered 5xx over 30 days.",
                        "percentunit",
                        (Target(f"1 - (\n{_error_ratio('30d')}\n)", "availability"),),
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


def dashboards() -> dict[str, JSON]:
    """File name -> Grafana JSON of every dashboard."""
    specs = (
        overview_dashboard(),
        api_dashboard(),
        publisher_dashboard(),
        consumer_dashboard(),
        queue_dashboard(),
    )
    return {f"{spec.uid}.json": render(spec) for spec in specs}


def serialize(dashboard: JSON) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the JSON files go (default: beside me)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    stale: list[str] = []
    for name, dashboard in dashboards().items():
        path = out_dir / name
        text = serialize(dashboard)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run `python -m observability.dashboards.generate`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
