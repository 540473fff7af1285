"""The consumer's application factory: the data path runs beside a small health and metrics server.

Two resources, each created, yielded and closed by its own cleanup context: the AWS adapters (one SQS and one S3
client for the life of the process) and the consumer running on them. Tests hand in fakes for the adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import aioboto3
import structlog
from aiohttp import web
from opentelemetry.trace import Tracer

from consumer_service.batches import BatchedStore, BatchLimits
from consumer_service.config import ConsumerSettings
from consumer_service.consumer import Consumer, EmailStore, PoisonSchedule
from consumer_service.deleter import BatchDeleter
from consumer_service.health import liveness, readiness
from consumer_service.heartbeat import Heartbeat
from consumer_service.keys import CONSUMER, METRICS, QUEUE, REGISTRY, SETTINGS, STORE, TRACER
from consumer_service.metrics import ConsumerMetrics
from consumer_service.queue_stats import QueueStats
from consumer_service.s3_store import ObjectStore, S3Store
from consumer_service.spans import MessageSpans
from consumer_service.sqs_queue import ASSUMED_MAX_RECEIVE_COUNT, Queue, SqsQueue
from consumer_service.writer import S3Writer
from ingest_common.aws import AwsCallMetrics, client_config
from ingest_common.metrics import metrics_handler, new_registry
from ingest_common.tracing import open_tracing

log = structlog.get_logger("consumer_service")

BATCH_WRITE_CONNECTIONS = 8
SERVICE_NAME = "email-ingest-consumer"  # service.name in traces unless OTEL_SERVICE_NAME says otherwise


async def tracing(app: web.Application) -> AsyncIterator[None]:
    """The tracer (only when OTEL_* turns tracing on), opened first and closed last: the last spans are exported."""
    async with open_tracing(app[SETTINGS].tracing, SERVICE_NAME, "consumer_service") as tracer:
        if tracer is not None:
            app[TRACER] = tracer
        yield


async def aws_adapters(session: aioboto3.Session, app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    aws = AwsCallMetrics(app[REGISTRY], tracer=app.get(TRACER))
    # Long polls hold a connection each for up to WaitTimeSeconds: the read timeout must outlast them.
    sqs_config = client_config(
        max_pool_connections=settings.pollers + 8, read_timeout=settings.wait_time_seconds + 10.0, max_attempts=3
    )
    # The writers retry with their own backoff; botocore must not multiply the attempts. Batches are few large
    # PUTs (their messages, up to CONSUMER_MAX_IN_FLIGHT, wait without a connection).
    s3_config = client_config(
        max_pool_connections=BATCH_WRITE_CONNECTIONS if settings.batched else settings.s3_max_concurrent_writes,
        read_timeout=30.0,
        max_attempts=1,
    )
    async with (
        session.client("sqs", region_name=settings.region, config=sqs_config) as sqs,
        session.client("s3", region_name=settings.region, config=s3_config) as s3,
    ):
        app[QUEUE] = SqsQueue(
            sqs,
            settings.queue_url,
            aws,
            wait_time_seconds=settings.wait_time_seconds,
            visibility_timeout_seconds=settings.receive_visibility_seconds,
        )
        app[STORE] = S3Store(s3, settings.bucket, aws)
        yield


async def running_consumer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    consumer = await build_consumer(settings, app[QUEUE], app[STORE], app[METRICS], app.get(TRACER))
    stats = QueueStats(
        app[QUEUE].attributes,
        queues={
            "main": settings.queue_url,
            **({"dlq": settings.dead_letter_queue_url} if settings.dead_letter_queue_url else {}),
        },
        interval_seconds=settings.queue_metrics_interval_seconds,
        metrics=app[METRICS],
    )
    app[CONSUMER] = consumer
    consumer.start()
    stats.start()
    yield
    if not consumer.draining:  # SIGTERM drains it first (see __main__)
        await consumer.drain(settings.shutdown_grace_seconds)
    await stats.stop()


async def build_consumer(
    settings: ConsumerSettings,
    queue: Queue,
    store: ObjectStore,
    metrics: ConsumerMetrics,
    tracer: Tracer | None = None,
) -> Consumer:
    """The consumer on these adapters, its visibility timeout and poison schedule fitted to the queue's."""
    queue_settings = await queue.settings()
    visibility = settings.receive_visibility_seconds or queue_settings.visibility_timeout_seconds
    poison_schedule = PoisonSchedule(
        window_seconds=settings.poison_retry_window_seconds,
        max_receive_count=queue_settings.max_receive_count or ASSUMED_MAX_RECEIVE_COUNT,
    )
    log.info(
        "consumer_started",
        storage_layout=settings.storage_layout,
        pollers=settings.pollers,
        max_in_flight=settings.max_in_flight,
        visibility_timeout_seconds=visibility,
        poison_retry_window_seconds=poison_schedule.window_seconds,
        poison_max_receive_count=poison_schedule.max_receive_count,
    )
    return Consumer(
        queue=queue,
        store=email_store(settings, store, metrics, tracer),
        deleter=BatchDeleter(queue.delete_batch, metrics=metrics),
        heartbeat=Heartbeat(
            queue.change_visibility_batch,
            visibility_timeout_seconds=visibility,
            fraction=settings.heartbeat_fraction,
            metrics=metrics,
        ),
        pollers=settings.pollers,
        max_in_flight=settings.max_in_flight,
        metrics=metrics,
        poison_schedule=poison_schedule,
        receive_fill_seconds=settings.receive_fill_seconds,
        spans=MessageSpans(tracer, settings.queue_url),
    )


def email_store(
    settings: ConsumerSettings, objects: ObjectStore, metrics: ConsumerMetrics, tracer: Tracer | None = None
) -> EmailStore:
    """The layout STORAGE_LAYOUT asks for: one object per email, or batches."""
    if settings.batched:
        return BatchedStore(
            objects,
            key_prefix=settings.batch_key_prefix,
            limits=BatchLimits(
                max_bytes=settings.batch_max_bytes,
                max_emails=settings.batch_max_emails,
                max_seconds=settings.batch_max_seconds,
                max_held_bytes=settings.batch_max_held_bytes,
            ),
            max_attempts=settings.s3_max_attempts,
            metrics=metrics,
            tracer=tracer,
        )
    return S3Writer(
        objects,
        key_prefix=settings.key_prefix,
        max_attempts=settings.s3_max_attempts,
        max_concurrent_writes=settings.s3_max_concurrent_writes,
        metrics=metrics,
    )


def create_app(
    settings: ConsumerSettings,
    *,
    session: aioboto3.Session | None = None,
    queue: Queue | None = None,
    store: ObjectStore | None = None,
) -> web.Application:
    """The consumer's app; with `queue` and `store` given (fakes in tests) it makes no AWS client."""
    app = web.Application()
    registry = new_registry("consumer")
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[METRICS] = ConsumerMetrics(registry)
    app.cleanup_ctx.append(tracing)
    if queue is None or store is None:
        app.cleanup_ctx.append(partial(aws_adapters, session or aioboto3.Session()))
    else:
        app[QUEUE], app[STORE] = queue, store
    app.cleanup_ctx.append(running_consumer)
    app.router.add_get("/healthz", liveness)
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/metrics", metrics_handler(registry))
    return app
