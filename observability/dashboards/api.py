"""The API dashboard: rate, errors and duration (RED), in-flight requests, rejections and shedding, clients and
their rate limits."""

from __future__ import annotations

from observability.dashboards.panels import BLUE, JSON, ORANGE, RED, Row, build, panel, query
from observability.dashboards.process import process_row
from observability.dashboards.queries import (
    API_DURATION,
    API_REQUESTS,
    ERROR_BUDGET,
    USER_ROUTES,
    eq,
    error_ratio,
    quantile,
    quantile_targets,
    rate,
    sel,
)

RATE_LIMITED = eq("reason", "rate_limited")


def dashboard() -> JSON:
    return build(
        uid="email-ingest-api",
        title="email-ingest / API",
        description="The HTTP API: rate, errors and duration (RED), in-flight requests, rejections and load shedding.",
        job_metric=API_REQUESTS,
        extra_tags=("api",),
        rows=(
            Row(
                "Overview",
                (
                    panel(
                        "Request rate",
                        "HTTP requests per second, all routes except probes and scrapes.",
                        "reqps",
                        (query(f"sum({rate(API_REQUESTS, USER_ROUTES)})", "requests"),),
                        kind="stat",
                        width=6,
                        height=4,
                        base_color=BLUE,
                    ),
                    panel(
                        "Error ratio (5xx)",
                        "Share of requests answered 5xx, load shedding (503) included. 4xx are the "
                        "client's fault "
                        f"and do not count. The SLO allows {ERROR_BUDGET:.1%}.",
                        "percentunit",
                        (query(error_ratio("$__rate_interval"), "5xx"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((ERROR_BUDGET, ORANGE), (10 * ERROR_BUDGET, RED)),
                        decimals=2,
                    ),
                    panel(
                        "p99 latency",
                        "99th percentile of request duration, all routes except probes and scrapes.",
                        "s",
                        (query(quantile(0.99, API_DURATION, USER_ROUTES), "p99"),),
                        kind="stat",
                        width=6,
                        height=4,
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    panel(
                        "Requests in flight",
                        "Requests being handled right now, summed over instances.",
                        "short",
                        (query(f"sum({sel('email_ingest_api_requests_in_flight')})", "in flight"),),
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
                    panel(
                        "Requests by status class",
                        "Requests per second by HTTP status class (all routes except probes and scrapes).",
                        "reqps",
                        tuple(
                            query("sum(" + rate(API_REQUESTS, USER_ROUTES, f'code=~"{c}.."') + ")", f"{c}xx")
                            for c in "245"
                        ),
                        stack=True,
                    ),
                    panel(
                        "Requests by route and code",
                        "Requests per second by route, method and status code, probes included.",
                        "reqps",
                        (
                            query(
                                f"sum by (route, method, code) ({rate(API_REQUESTS)})",
                                "{{method}} {{route}} {{code}}",
                            ),
                        ),
                    ),
                    panel(
                        "Error ratio (5xx)",
                        "Share of requests answered 5xx (shedding included). Dashed line: the "
                        f"SLO's {ERROR_BUDGET:.1%}.",
                        "percentunit",
                        (query(error_ratio("$__rate_interval"), "5xx ratio"),),
                        steps=((ERROR_BUDGET, RED),),
                    ),
                    panel(
                        "Latency",
                        "Request duration percentiles, all routes except probes and scrapes. Points are exemplars: "
                        "one traced request each, with its trace id; with the data source's exemplar link (label "
                        "trace_id) pointing at the trace backend (Jaeger, X-Ray, Tempo), a slow one opens its trace.",
                        "s",
                        quantile_targets(API_DURATION, USER_ROUTES, exemplars=True),
                        steps=((0.25, ORANGE), (1, RED)),
                    ),
                    panel(
                        "p99 latency by route",
                        "99th percentile of request duration per route and method.",
                        "s",
                        (query(quantile(0.99, API_DURATION, by="route, method"), "{{method}} {{route}}"),),
                    ),
                    panel(
                        "Requests in flight",
                        "Requests being handled right now, per instance.",
                        "short",
                        (
                            query(
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
                    panel(
                        "Emails accepted",
                        "Emails accepted (published to SQS and answered 200) per second.",
                        "ops",
                        (query(f"sum({rate('email_ingest_api_emails_accepted_total')})", "accepted"),),
                        width=8,
                    ),
                    panel(
                        "Rejections by reason",
                        "Requests refused as the client's fault (4xx) per second, by reason.",
                        "reqps",
                        (
                            query(
                                f"sum by (reason) ({rate('email_ingest_api_rejections_total')})",
                                "{{reason}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                    ),
                    panel(
                        "Load shed by reason",
                        "Requests answered 503 with Retry-After per second, by reason: queue_full (publisher "
                        "backlog at PUBLISH_MAX_PENDING), draining (shutdown), publish_failed (SQS), "
                        "token_unavailable (no usable token from SSM).",
                        "reqps",
                        (
                            query(
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
            Row(
                "Clients",
                (
                    panel(
                        "Requests by client",
                        "POST /api/email per second by client (the name of the token's SSM parameter; `default` "
                        "is TOKEN_PARAMETER_NAME's, `unauthenticated` a request with no valid token).",
                        "reqps",
                        (
                            query(
                                f"sum by (client) ({rate(API_REQUESTS, eq('route', '/api/email'))})",
                                "{{client}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                    ),
                    panel(
                        "Rate limited (429) by client",
                        "Requests answered 429 with Retry-After per second, by client: the client is over its "
                        "rate limit (RATE_LIMIT_RPS / RATE_LIMIT_BURST or its own), which is per pod.",
                        "reqps",
                        (
                            query(
                                f"sum by (client) ({rate('email_ingest_api_rejections_total', RATE_LIMITED)})",
                                "{{client}}",
                            ),
                        ),
                        width=8,
                        stack=True,
                        steps=((0.001, ORANGE),),
                    ),
                    panel(
                        "Clients loaded and refused",
                        "Clients whose tokens each pod holds, and client parameters it refused at its last load "
                        "(a bad name or value, a shared token, past MAX_CLIENTS: see the client_refused log "
                        "line). Every pod should show the same.",
                        "short",
                        (
                            query(f"max({sel('email_ingest_token_clients')})", "loaded"),
                            query(f"max({sel('email_ingest_token_clients_refused')})", "refused"),
                        ),
                        width=8,
                    ),
                ),
            ),
            process_row("API"),
        ),
    )
