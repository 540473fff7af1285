"""API settings, read once from the environment at start-up (names in docs/contract.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ingest_common.config import LOG_LEVELS, EnvReader


@dataclass(frozen=True, slots=True)
class ApiSettings:
    region: str
    queue_url: str
    token_parameter_name: str
    host: str = "127.0.0.1"
    port: int = 8080
    token_refresh_seconds: float = 300.0
    token_max_staleness_seconds: float = 3600.0
    token_rotation_grace_seconds: float = 900.0
    token_early_refresh_seconds: float = 5.0
    publish_linger_seconds: float = 0.005
    publish_max_batches_in_flight: int = 16
    publish_max_pending: int = 2000
    publish_deadline_seconds: float = 10.0
    max_body_bytes: int = 307_200
    shutdown_grace_seconds: float = 20.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = EnvReader(os.environ if environ is None else environ)
        settings = cls(
            region=env.first_of(("AWS_REGION", "AWS_DEFAULT_REGION"), "the AWS region of the queue and parameter"),
            queue_url=env.url("SQS_QUEUE_URL", "the SQS queue the API publishes to"),
            token_parameter_name=env.required("TOKEN_PARAMETER_NAME", "the SSM SecureString holding the API token"),
            host=env.optional("API_HOST", "127.0.0.1") or "127.0.0.1",
            port=env.integer("API_PORT", 8080, minimum=1, maximum=65535),
            token_refresh_seconds=env.number("TOKEN_REFRESH_SECONDS", 300.0, minimum=0.1, maximum=86_400),
            token_max_staleness_seconds=env.number(
                "TOKEN_MAX_STALENESS_SECONDS", 3600.0, minimum=0.1, maximum=7 * 86_400
            ),
            token_rotation_grace_seconds=env.number(
                "TOKEN_ROTATION_GRACE_SECONDS", 900.0, minimum=0, maximum=7 * 86_400
            ),
            token_early_refresh_seconds=env.number("TOKEN_EARLY_REFRESH_SECONDS", 5.0, minimum=1, maximum=3600),
            publish_linger_seconds=env.number("PUBLISH_LINGER_MS", 5.0, minimum=0, maximum=1000) / 1000,
            publish_max_batches_in_flight=env.integer("PUBLISH_MAX_BATCHES_IN_FLIGHT", 16, minimum=1, maximum=256),
            publish_max_pending=env.integer("PUBLISH_MAX_PENDING", 2000, minimum=1, maximum=1_000_000),
            publish_deadline_seconds=env.number("PUBLISH_DEADLINE_SECONDS", 10.0, minimum=0.1, maximum=300),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 307_200, minimum=1024, maximum=1_048_576),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 20.0, minimum=0, maximum=3600),
            log_level=env.choice("LOG_LEVEL", "info", LOG_LEVELS),
        )
        if settings.token_max_staleness_seconds < settings.token_refresh_seconds:
            env.problems.append(
                "TOKEN_MAX_STALENESS_SECONDS must be at least TOKEN_REFRESH_SECONDS "
                "(otherwise the token goes stale between two successful refreshes)"
            )
        env.finish()
        return settings
