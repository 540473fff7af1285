"""The consumer's application factory: the data path runs beside a small health and metrics server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import aioboto3
import structlog
from aiohttp import web

from consumer_service.batches import BatchedStore, BatchLimits
from consumer_service.config import ConsumerSettings
from consumer_service.deleter import BatchDeleter
from consumer_service.health import liveness, readiness
from consumer_service.heartbeat import Heartbeat
from consumer_service.keys import CONSUMER, METRICS, REGISTRY, SETTINGS
from consumer_service.metrics import ConsumerMetrics
from consumer_service.poller import ASSUMED_MAX_RECEIVE_COUNT, Consumer, EmailStore, PoisonSchedule
from consumer_service.queue_stats import QueueStats, attribute_names
from consumer_service.writer import S3Writer
from ingest_common.aws import AwsCallMetrics, client_config, error_code, http_status
from ingest_common.metrics import metrics_handler, new_registry

log = structlog.get_logger("consumer_service")

_FALLBACK_VISIBILITY_SECONDS = 30
_BATCH_WRITE_CONNECTIONS = 8


async def aws_resources(session: aioboto3.Session, app: web.Application) -> AsyncIterator[None]:
    """One SQS and one S3 client for the life of the process, and the consumer running on them."""
    settings = app[SETTINGS]
    metrics = app[METRICS]
    aws = AwsCallMetrics(app[REGISTRY])
    # Long polls hold a connection each for up to WaitTimeSeconds: the read timeout must outlast them.
    sqs_config = client_config(
        max_pool_connections=settings.pollers + 8,
        read_timeout=settings.wait_time_seconds + 10.0,
        max_attempts=3,
    )
    batched = settings.storage_layout == "batched"
    # The writer retries with its own backoff; botocore must not multiply the attempts. Batches are few large
    # PUTs (their messages, up to CONSUMER_MAX_IN_FLIGHT, wait without a connection).
    s3_config = client_config(
        max_pool_connections=_BATCH_WRITE_CONNECTIONS if batched else settings.max_in_flight,
        read_timeout=30.0,
        max_attempts=1,
    )
    async with (
        session.client("sqs", region_name=settings.region, config=sqs_config) as sqs,
        session.client("s3", region_name=settings.region, config=s3_config) as s3,
    ):
        queue_url = settings.queue_url
        queue = await _queue_attributes(sqs, queue_url, aws)
        visibility = settings.visibility_timeout_seconds or queue.visibility_timeout_seconds
        if batched and not settings.visibility_timeout_seconds:
            # Messages wait for their batch: a timeout past the batch's age spares most heartbeat calls.
            visibility = max(visibility, batch_visibility_seconds(settings.batch_max_seconds))
        poison_schedule = PoisonSchedule(
            window_seconds=settings.poison_retry_window_seconds,
            max_receive_count=queue.max_receive_count or ASSUMED_MAX_RECEIVE_COUNT,
        )

        # A configured timeout applies from the receive on: the heartbeat's first extension is timed by it.
        receive_visibility: dict[str, Any] = (
            {"VisibilityTimeout": visibility} if settings.visibility_timeout_seconds or batched else {}
        )

        async def receive(count: int) -> Any:
            return await aws.call(
                "sqs",
                "ReceiveMessage",
                partial(
                    sqs.receive_message,
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=count,
                    WaitTimeSeconds=settings.wait_time_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                    MessageAttributeNames=["All"],
                    **receive_visibility,
                ),
            )

        async def change_visibility(receipt_handle: str, seconds: int) -> Any:
            return await aws.call(
                "sqs",
                "ChangeMessageVisibility",
                partial(
                    sqs.change_message_visibility,
                    QueueUrl=queue_url,
                    ReceiptHandle=receipt_handle,
                    VisibilityTimeout=seconds,
                ),
            )

        async def change_visibility_batch(entries: list[dict[str, Any]]) -> Any:
            return await aws.call(
                "sqs",
                "ChangeMessageVisibilityBatch",
                partial(sqs.change_message_visibility_batch, QueueUrl=queue_url, Entries=cast(Any, entries)),
            )

        async def delete_batch(entries: list[dict[str, str]]) -> Any:
            return await aws.call(
                "sqs",
                "DeleteMessageBatch",
                partial(sqs.delete_message_batch, QueueUrl=queue_url, Entries=cast(Any, entries)),
            )

        async def put_object(**kwargs: Any) -> Any:
            return await aws.call("s3", "PutObject", partial(s3.put_object, **kwargs))

        async def put_batch(key: str, body: bytes) -> None:
            try:
                await put_object(
                    Bucket=settings.bucket, Key=key, Body=body, ContentType="application/gzip", IfNoneMatch="*"
                )
            except Exception as exc:
                # A batch id is unique: the object exists only if an earlier attempt of this very write got
                # through (its answer was lost), so it holds these bytes.
                if http_status(exc) == 412 or error_code(exc) == "PreconditionFailed":
                    return
                raise

        store: EmailStore
        if batched:
            store = BatchedStore(
                put_batch,
                key_prefix=settings.batch_key_prefix,
                limits=BatchLimits(
                    max_bytes=settings.batch_max_bytes,
                    max_emails=settings.batch_max_emails,
                    max_seconds=settings.batch_max_seconds,
                    max_held_bytes=settings.batch_max_held_bytes,
                ),
                max_attempts=settings.s3_max_attempts,
                metrics=metrics,
            )
        else:
            store = S3Writer(
                put_object,
                bucket=settings.bucket,
                key_prefix=settings.key_prefix,
                max_attempts=settings.s3_max_attempts,
                metrics=metrics,
            )

        async def queue_attributes(url: str) -> dict[str, str]:
            response = await aws.call(
                "sqs",
                "GetQueueAttributes",
                partial(sqs.get_queue_attributes, QueueUrl=url, AttributeNames=cast(Any, attribute_names())),
            )
            return {str(name): value for name, value in response.get("Attributes", {}).items()}

        consumer = Consumer(
            receive=receive,
            change_visibility=change_visibility,
            store=store,
            deleter=BatchDeleter(delete_batch, metrics=metrics),
            heartbeat=Heartbeat(
                change_visibility_batch,
                visibility_timeout_seconds=visibility,
                fraction=settings.heartbeat_fraction,
                metrics=metrics,
            ),
            pollers=settings.pollers,
            max_in_flight=settings.max_in_flight,
            metrics=metrics,
            poison_schedule=poison_schedule,
        )
        queues = {"main": queue_url}
        if settings.dead_letter_queue_url:
            queues["dlq"] = settings.dead_letter_queue_url
        stats = QueueStats(
            queue_attributes,
            queues=queues,
            interval_seconds=settings.queue_metrics_interval_seconds,
            metrics=metrics,
        )
        app[CONSUMER] = consumer
        consumer.start()
        stats.start()
        log.info(
            "consumer_started",
            storage_layout=settings.storage_layout,
            pollers=settings.pollers,
            max_in_flight=settings.max_in_flight,
            visibility_timeout_seconds=visibility,
            poison_retry_window_seconds=poison_schedule.window_seconds,
            poison_max_receive_count=poison_schedule.max_receive_count,
        )
        try:
            yield
        finally:
            if not consumer.draining:
                await consumer.drain(settings.shutdown_grace_seconds)
            await stats.stop()


def batch_visibility_seconds(batch_max_seconds: float) -> int:
    """Twice a batch's longest wait plus 30 s for its write: a message's first heartbeat extension falls due
    (at HEARTBEAT_FRACTION, 0.5) only after its batch should have been written."""
    return min(43_200, int(2 * batch_max_seconds) + 30)


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    visibility_timeout_seconds: int
    max_receive_count: int | None  # None: no redrive policy, or it could not be read


async def _queue_attributes(sqs: Any, queue_url: str, aws: AwsCallMetrics) -> QueueAttributes:
    """The queue's visibility timeout and maxReceiveCount; warns when it has no redrive policy (poison would cycle)."""
    try:
        response = await aws.call(
            "sqs",
            "GetQueueAttributes",
            partial(
                sqs.get_queue_attributes,
                QueueUrl=queue_url,
                AttributeNames=["VisibilityTimeout", "RedrivePolicy"],
            ),
        )
    except Exception:
        log.warning(
            "queue_attributes_unavailable",
            fallback_visibility_seconds=_FALLBACK_VISIBILITY_SECONDS,
            assumed_max_receive_count=ASSUMED_MAX_RECEIVE_COUNT,
        )
        return QueueAttributes(_FALLBACK_VISIBILITY_SECONDS, None)
    attributes = response.get("Attributes", {})
    visibility = int(attributes.get("VisibilityTimeout", _FALLBACK_VISIBILITY_SECONDS))
    if "RedrivePolicy" not in attributes:
        log.warning("queue_has_no_redrive_policy", consequence="poison messages are retried until they expire")
        return QueueAttributes(visibility, None)
    policy = json.loads(attributes["RedrivePolicy"])
    log.info("queue_redrive_policy", policy=policy)
    try:
        max_receive_count = max(1, int(policy["maxReceiveCount"]))
    except (KeyError, TypeError, ValueError):
        log.warning("queue_redrive_policy_unreadable", assumed_max_receive_count=ASSUMED_MAX_RECEIVE_COUNT)
        return QueueAttributes(visibility, None)
    return QueueAttributes(visibility, max_receive_count)


def create_app(settings: ConsumerSettings, *, session: aioboto3.Session | None = None) -> web.Application:
    app = web.Application()
    registry = new_registry("consumer")
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[METRICS] = ConsumerMetrics(registry)
    app.cleanup_ctx.append(partial(aws_resources, session or aioboto3.Session()))
    app.router.add_get("/healthz", liveness)
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/metrics", metrics_handler(registry))
    return app
