"""The API's application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import partial
from importlib import resources

import aioboto3
from aiohttp import web

from api_service.config import ApiSettings
from api_service.handlers import ingest_email
from api_service.health import liveness, openapi, readiness
from api_service.ids import RandomIds
from api_service.keys import (
    ACCESS_LOG,
    LIFECYCLE,
    MEMORY_BUDGET,
    METRICS,
    OPENAPI_DOCUMENT,
    PUBLISHER,
    QUEUE,
    RANDOM_IDS,
    RATE_LIMITER,
    REGISTRY,
    SETTINGS,
    TOKEN_CACHE,
    TOKEN_SOURCE,
    TRACER,
)
from api_service.lifecycle import Lifecycle
from api_service.memory_budget import MemoryBudget
from api_service.metrics import ApiMetrics, PublisherMetrics, TokenMetrics
from api_service.middleware import observe_request
from api_service.publisher import BatchPublisher
from api_service.rate_limit import RateLimiter
from api_service.sqs.json_client import SqsJsonClient, session_credentials, session_ssl_context
from api_service.sqs.queue import SendQueue, SqsQueue
from api_service.token_cache import TokenCache, TokenSource
from api_service.token_source import SsmTokenSource
from ingest_common.aws import AwsCallMetrics, client_config
from ingest_common.logging import AccessLog
from ingest_common.metrics import metrics_handler, new_registry
from ingest_common.tracing import open_tracing

SERVICE_NAME = "email-ingest-api"  # service.name in traces unless OTEL_SERVICE_NAME says otherwise


async def sqs_endpoint(session: aioboto3.Session, region: str) -> str:
    """The SQS endpoint botocore resolves (region, AWS_ENDPOINT_URL[_SQS], FIPS...), so ours never differs."""
    async with session.client("sqs", region_name=region) as resolver:
        return str(resolver.meta.endpoint_url)


async def tracing(app: web.Application) -> AsyncIterator[None]:
    """The tracer (only when OTEL_* turns tracing on), opened first and closed last: the last spans are exported."""
    async with open_tracing(app[SETTINGS].tracing, SERVICE_NAME, "api_service") as tracer:
        if tracer is not None:
            app[TRACER] = tracer
        yield


async def aws_adapters(session: aioboto3.Session, app: web.Application) -> AsyncIterator[None]:
    """One SQS client and one SSM client for the life of the process, each behind its adapter."""
    settings = app[SETTINGS]
    aws_metrics = AwsCallMetrics(app[REGISTRY], tracer=app.get(TRACER))
    ssm_config = client_config(max_pool_connections=2, read_timeout=5.0, max_attempts=3)
    # The publisher retries on its own within a deadline: one attempt per call, with tight timeouts.
    sqs = SqsJsonClient(
        endpoint_url=await sqs_endpoint(session, settings.region),
        region=settings.region,
        credentials=await session_credentials(session),
        max_connections=settings.publish_max_batches_in_flight,
        connect_timeout=2.0,
        request_timeout=5.0,
        ssl_context=session_ssl_context(session),
    )
    async with aclosing(sqs), session.client("ssm", region_name=settings.region, config=ssm_config) as ssm:
        app[QUEUE] = SqsQueue(sqs, settings.queue_url, aws_metrics)
        app[TOKEN_SOURCE] = SsmTokenSource(
            ssm,
            aws_metrics,
            parameter_name=settings.token_parameter_name,
            parameter_path=settings.token_parameter_path,
            rotation_grace_seconds=settings.token_rotation_grace_seconds,
        )
        yield


def forget_removed_clients(app: web.Application, loaded: frozenset[str]) -> None:
    """A revoked client's bucket and metric series go with it: both stay bounded by the clients loaded."""
    app[RATE_LIMITER].retain(loaded)
    app[METRICS].retain_clients(loaded)


async def token_cache(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    cache = app[TOKEN_CACHE] = TokenCache(
        app[TOKEN_SOURCE],
        refresh_seconds=settings.token_refresh_seconds,
        max_staleness_seconds=settings.token_max_staleness_seconds,
        rotation_grace_seconds=settings.token_rotation_grace_seconds,
        early_refresh_seconds=settings.token_early_refresh_seconds,
        max_clients=settings.max_clients,
        on_clients=partial(forget_removed_clients, app),
        metrics=TokenMetrics(app[REGISTRY]),
    )
    await cache.start()
    yield
    await cache.stop()


async def publisher(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    batch_publisher = app[PUBLISHER] = BatchPublisher(
        app[QUEUE].send_batch,
        linger_seconds=settings.publish_linger_seconds,
        max_batches_in_flight=settings.publish_max_batches_in_flight,
        max_pending=settings.publish_max_pending,
        deadline_seconds=settings.publish_deadline_seconds,
        max_message_bytes=settings.publish_max_message_bytes,
        max_hold_seconds=settings.publish_max_hold_seconds,
        metrics=PublisherMetrics(app[REGISTRY]),
    )
    batch_publisher.start()
    yield
    await batch_publisher.close(settings.shutdown_grace_seconds)


def create_app(
    settings: ApiSettings,
    *,
    session: aioboto3.Session | None = None,
    queue: SendQueue | None = None,
    token_source: TokenSource | None = None,
) -> web.Application:
    """The API's app; with `queue` and `token_source` given (fakes in tests) it makes no AWS client."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[observe_request])
    registry = new_registry("api")
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[METRICS] = ApiMetrics(registry)
    app[MEMORY_BUDGET] = MemoryBudget(settings.memory_budget_bytes, registry)
    app[LIFECYCLE] = Lifecycle()
    app[RANDOM_IDS] = RandomIds()
    app[RATE_LIMITER] = RateLimiter(settings.rate_limit)
    app[ACCESS_LOG] = AccessLog("api_service.access")
    app[OPENAPI_DOCUMENT] = resources.files("api_service").joinpath("openapi.json").read_bytes()
    app.cleanup_ctx.append(tracing)
    if queue is None or token_source is None:
        app.cleanup_ctx.append(partial(aws_adapters, session or aioboto3.Session()))
    else:
        app[QUEUE], app[TOKEN_SOURCE] = queue, token_source
    # Stopped in reverse: the publisher flushes first, then the token cache stops, then the clients close, then the
    # tracer exports what is left.
    app.cleanup_ctx.append(token_cache)
    app.cleanup_ctx.append(publisher)
    app.router.add_post("/api/email", ingest_email)
    app.router.add_get("/healthz", liveness)
    app.router.add_get("/health", liveness)
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/openapi.json", openapi)
    return app


def count_refused(app: web.Application, status: int) -> None:
    """A request the HTTP parser refused (ingest_common.http_protocol): counted like the requests that reached us."""
    metrics = app[METRICS]
    metrics.reject("malformed_request")
    metrics.observe("unmatched", "OTHER", status, 0.0)


def begin_drain(app: web.Application) -> None:
    """First step of a graceful stop: refuse new emails, fail readiness, flush what is queued."""
    app[LIFECYCLE].draining = True
    if PUBLISHER in app:
        app[PUBLISHER].begin_drain()
