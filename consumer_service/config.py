"""Consumer settings, read once from the environment at start-up (names in docs/contract.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest_common.config import LOG_LEVELS, EnvReader
from ingest_common.tracing import TracingSettings

STORAGE_LAYOUTS = ("per-email", "batched")
SQS_MAX_IN_FLIGHT_PER_QUEUE = 120_000
"""SQS's limit of in-flight messages for a standard queue, across every consumer of the fleet."""

PER_EMAIL_MAX_IN_FLIGHT = 64
BATCHED_MAX_IN_FLIGHT = 10_000
"""A batch can hold only the emails whose messages are in flight: the batched layout needs many more. With the
chart's consumer HPA bound (maxReplicas) N, keep N x CONSUMER_MAX_IN_FLIGHT <= 120,000 (the chart checks it)."""
BATCH_MAX_BYTES = 32 * 1024 * 1024
BATCH_MAX_EMAILS = 10_000
BATCH_MAX_SECONDS = 60.0
BATCH_MAX_HELD_BYTES = 128 * 1024 * 1024
"""Uncompressed bytes of unwritten batches one consumer holds: sized for the chart's 512Mi consumer memory limit
(the process itself needs ~100 MiB; a batch being written is held twice for a moment while it is joined)."""


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    region: str
    queue_url: str
    bucket: str
    dead_letter_queue_url: str | None = None
    key_prefix: str = "emails/"
    host: str = "127.0.0.1"
    port: int = 8081
    pollers: int = 4
    max_in_flight: int = 64
    wait_time_seconds: int = 20
    receive_fill_seconds: float = 0.0
    visibility_timeout_seconds: int = 0  # 0: read from the queue at start-up
    heartbeat_fraction: float = 0.5
    poison_retry_window_seconds: int = 1800
    s3_max_attempts: int = 5
    s3_max_concurrent_writes: int = 64
    queue_metrics_interval_seconds: float = 15.0
    shutdown_grace_seconds: float = 25.0
    log_level: str = "info"
    tracing: TracingSettings = field(default_factory=TracingSettings)
    storage_layout: str = "per-email"
    batch_key_prefix: str = "batches/"
    batch_max_bytes: int = BATCH_MAX_BYTES
    batch_max_emails: int = BATCH_MAX_EMAILS
    batch_max_seconds: float = BATCH_MAX_SECONDS
    batch_max_held_bytes: int = BATCH_MAX_HELD_BYTES

    @property
    def batched(self) -> bool:
        return self.storage_layout == "batched"

    @property
    def receive_visibility_seconds(self) -> int:
        """The VisibilityTimeout asked for at each receive (0: the queue's own). In the batched layout, messages
        wait for their batch: twice a batch's longest wait plus 30 s for its write, so that their first heartbeat
        extension (at HEARTBEAT_FRACTION, 0.5) falls due only after the batch should have been written."""
        if self.visibility_timeout_seconds or not self.batched:
            return self.visibility_timeout_seconds
        return min(43_200, int(2 * self.batch_max_seconds) + 30)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerSettings:
        env = EnvReader(os.environ if environ is None else environ)
        dlq = env.optional("SQS_DLQ_URL")
        if dlq is not None and not dlq.startswith(("https://", "http://")):
            env.problems.append(f"SQS_DLQ_URL={dlq!r} is not an http(s) URL (the dead-letter queue)")
        prefix = _key_prefix(env, "S3_KEY_PREFIX", "emails/")
        batch_prefix = _key_prefix(env, "BATCH_KEY_PREFIX", "batches/")
        layout = env.choice("STORAGE_LAYOUT", "per-email", STORAGE_LAYOUTS)
        batched = layout == "batched"
        default_in_flight = BATCHED_MAX_IN_FLIGHT if batched else PER_EMAIL_MAX_IN_FLIGHT
        settings = cls(
            region=env.first_of(("AWS_REGION", "AWS_DEFAULT_REGION"), "the AWS region of the queue and bucket"),
            queue_url=env.url("SQS_QUEUE_URL", "the SQS queue to drain"),
            bucket=env.required("S3_BUCKET", "the bucket the emails are stored in"),
            dead_letter_queue_url=dlq,
            key_prefix=prefix,
            host=env.optional("CONSUMER_HOST", "127.0.0.1") or "127.0.0.1",
            port=env.integer("CONSUMER_PORT", 8081, minimum=1, maximum=65535),
            pollers=env.integer("CONSUMER_POLLERS", 4, minimum=1, maximum=64),
            max_in_flight=env.integer(
                "CONSUMER_MAX_IN_FLIGHT", default_in_flight, minimum=1, maximum=SQS_MAX_IN_FLIGHT_PER_QUEUE
            ),
            wait_time_seconds=env.integer("SQS_WAIT_TIME_SECONDS", 20, minimum=0, maximum=20),
            receive_fill_seconds=env.number(
                "RECEIVE_FILL_SECONDS", 1.0 if layout == "batched" else 0.0, minimum=0, maximum=60
            ),
            visibility_timeout_seconds=env.integer("VISIBILITY_TIMEOUT_SECONDS", 0, minimum=0, maximum=43_200),
            heartbeat_fraction=env.number("HEARTBEAT_FRACTION", 0.5, minimum=0.1, maximum=0.9),
            poison_retry_window_seconds=env.integer("POISON_RETRY_WINDOW_SECONDS", 1800, minimum=1, maximum=43_200),
            s3_max_attempts=env.integer("S3_MAX_ATTEMPTS", 5, minimum=1, maximum=20),
            s3_max_concurrent_writes=env.integer("S3_MAX_CONCURRENT_WRITES", 64, minimum=1, maximum=1024),
            queue_metrics_interval_seconds=env.number(
                "QUEUE_METRICS_INTERVAL_SECONDS", 15.0, minimum=0.5, maximum=3600
            ),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 25.0, minimum=0, maximum=3600),
            log_level=env.choice("LOG_LEVEL", "info", LOG_LEVELS),
            tracing=TracingSettings.from_env(env),
            storage_layout=layout,
            batch_key_prefix=batch_prefix,
            batch_max_bytes=env.integer("BATCH_MAX_BYTES", BATCH_MAX_BYTES, minimum=1024, maximum=5 * 1024**3),
            batch_max_emails=env.integer("BATCH_MAX_EMAILS", BATCH_MAX_EMAILS, minimum=1, maximum=1_000_000),
            batch_max_seconds=env.number("BATCH_MAX_SECONDS", BATCH_MAX_SECONDS, minimum=0.1, maximum=3600),
            batch_max_held_bytes=env.integer(
                "BATCH_MAX_HELD_BYTES", BATCH_MAX_HELD_BYTES, minimum=1024, maximum=64 * 1024**3
            ),
        )
        if settings.batch_max_bytes > settings.batch_max_held_bytes:
            env.problems.append(
                f"BATCH_MAX_BYTES={settings.batch_max_bytes} is above BATCH_MAX_HELD_BYTES="
                f"{settings.batch_max_held_bytes}: a full batch must fit in what a consumer may hold"
            )
        env.finish()
        return settings


def _key_prefix(env: EnvReader, name: str, default: str) -> str:
    prefix = env.optional(name, default) or default
    if prefix.startswith("/") or not prefix.endswith("/"):
        env.problems.append(f"{name}={prefix!r} must not start with '/' and must end with '/'")
    return prefix
