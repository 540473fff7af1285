"""API settings, read once from the environment at start-up (names in docs/contract.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from api_service.clients import MAX_RATE, MIN_RATE, NO_RATE_LIMIT, RateLimit
from api_service.memory_budget import MIB, container_memory_limit, default_budget_bytes
from ingest_common.config import LOG_LEVELS, EnvReader
from ingest_common.email import (
    CONTENT_MAX_BYTES,
    EMAIL_FIELDS,
    SENDER_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    TIMESTREAM_MAX_DIGITS,
)
from ingest_common.sqs_limits import MAX_MESSAGE_BYTES
from ingest_common.tracing import TracingSettings

# SSM's largest parameter value (advanced tier): no valid token is longer.
TOKEN_MAX_BYTES: Final = 8192
# Room for what escaping does not grow: braces, colons, commas and a pretty-printer's whitespace.
_BODY_STRUCTURE_ALLOWANCE: Final = 4096


def largest_valid_body_bytes() -> int:
    """The longest JSON body a valid email can arrive in, whatever the client's escaping.

    JSON lets a client write any character as `\\uXXXX`: six bytes for a one-byte UTF-8 character (the
    worst ratio), twelve for a surrogate pair (four bytes of UTF-8, one code point). So content takes at
    most six bytes per byte, a subject or sender at most twelve per code point, a key or a token six per
    character. The default MAX_BODY_BYTES is this, so no email within the field limits meets a 413.
    """
    escaped = 6
    keys = sum(escaped * len(key) + 2 for key in (*EMAIL_FIELDS, "data", "token"))
    return (
        escaped * CONTENT_MAX_BYTES
        + 2 * escaped * (SUBJECT_MAX_CHARS + SENDER_MAX_CHARS)
        + escaped * TIMESTREAM_MAX_DIGITS
        + escaped * TOKEN_MAX_BYTES
        + keys
        + _BODY_STRUCTURE_ALLOWANCE
    )


DEFAULT_MAX_BODY_BYTES: Final = largest_valid_body_bytes()
# Copies of a body's size that one request can hold at its peak (see handlers.py's reservations).
REQUEST_COPIES: Final = 7
# Four of SQS's 64 KiB billing chunks: packs large enough that a call's payload, not its count, sets the bill,
# and small enough that a consumer holding thousands of messages stays within its memory bounds.
DEFAULT_PUBLISH_MAX_MESSAGE_BYTES: Final = 262_144
# An SSM hierarchy: `/` and name segments of SSM's own characters.
_PARAMETER_PATH: Final = re.compile(r"(/[A-Za-z0-9_.\-]+)+")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    region: str
    queue_url: str
    token_parameter_name: str | None = None
    token_parameter_path: str | None = None
    max_clients: int = 100
    rate_limit: RateLimit = NO_RATE_LIMIT
    host: str = "127.0.0.1"
    port: int = 8080
    token_refresh_seconds: float = 300.0
    token_max_staleness_seconds: float = 3600.0
    token_rotation_grace_seconds: float = 900.0
    token_early_refresh_seconds: float = 5.0
    publish_linger_seconds: float = 0.005
    publish_max_batches_in_flight: int = 16
    # While calls are in flight, a partial call waits for one of them to return, at most this long past the
    # linger (docs/design.md, "Publishing"): SQS from a pod answers in 10-30 ms; 0 restores "send at the linger".
    publish_max_hold_seconds: float = 0.05
    publish_max_pending: int = 2000
    publish_deadline_seconds: float = 10.0
    publish_max_message_bytes: int = DEFAULT_PUBLISH_MAX_MESSAGE_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    memory_budget_bytes: int = default_budget_bytes(None)
    shutdown_grace_seconds: float = 20.0
    log_level: str = "info"
    tracing: TracingSettings = field(default_factory=TracingSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = EnvReader(os.environ if environ is None else environ)
        settings = cls(
            region=env.first_of(("AWS_REGION", "AWS_DEFAULT_REGION"), "the AWS region of the queue and parameter"),
            queue_url=env.url("SQS_QUEUE_URL", "the SQS queue the API publishes to"),
            token_parameter_name=env.optional("TOKEN_PARAMETER_NAME"),
            token_parameter_path=_parameter_path(env),
            max_clients=env.integer("MAX_CLIENTS", 100, minimum=1, maximum=10_000),
            rate_limit=_rate_limit(env),
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
            publish_max_hold_seconds=env.number("PUBLISH_MAX_HOLD_MS", 50.0, minimum=0, maximum=1000) / 1000,
            publish_max_pending=env.integer("PUBLISH_MAX_PENDING", 2000, minimum=1, maximum=1_000_000),
            publish_deadline_seconds=env.number("PUBLISH_DEADLINE_SECONDS", 10.0, minimum=0.1, maximum=300),
            publish_max_message_bytes=env.integer(
                "PUBLISH_MAX_MESSAGE_BYTES", DEFAULT_PUBLISH_MAX_MESSAGE_BYTES, minimum=1024, maximum=MAX_MESSAGE_BYTES
            ),
            max_body_bytes=env.integer(
                "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024, maximum=16 * DEFAULT_MAX_BODY_BYTES
            ),
            memory_budget_bytes=env.integer(
                "MEMORY_BUDGET_BYTES",
                default_budget_bytes(container_memory_limit()),
                minimum=16 * MIB,
                maximum=1 << 40,
            ),
            shutdown_grace_seconds=env.number("SHUTDOWN_GRACE_SECONDS", 20.0, minimum=0, maximum=3600),
            log_level=env.choice("LOG_LEVEL", "info", LOG_LEVELS),
            tracing=TracingSettings.from_env(env),
        )
        if not settings.token_parameter_name and not settings.token_parameter_path:
            env.problems.append(
                "TOKEN_PARAMETER_NAME or TOKEN_PARAMETER_PATH is required (the SSM SecureString holding the API "
                "token, or the path whose SecureStrings are one client's token each)"
            )
        if settings.token_max_staleness_seconds < settings.token_refresh_seconds:
            env.problems.append(
                "TOKEN_MAX_STALENESS_SECONDS must be at least TOKEN_REFRESH_SECONDS "
                "(otherwise the token goes stale between two successful refreshes)"
            )
        if settings.memory_budget_bytes < REQUEST_COPIES * settings.max_body_bytes:
            env.problems.append(
                f"MEMORY_BUDGET_BYTES={settings.memory_budget_bytes} cannot hold one request of MAX_BODY_BYTES="
                f"{settings.max_body_bytes} (it needs {REQUEST_COPIES} x that: body, email, envelope, packed "
                "message, SQS request)"
            )
        env.finish()
        return settings


def _parameter_path(env: EnvReader) -> str | None:
    raw = env.optional("TOKEN_PARAMETER_PATH")
    if raw is None:
        return None
    path = raw.rstrip("/")
    if not _PARAMETER_PATH.fullmatch(path):
        env.problems.append(
            f"TOKEN_PARAMETER_PATH={raw!r} is not an SSM path such as /email-ingest/prod/clients (it starts with "
            "'/', and its segments hold letters, digits, '_', '.' and '-')"
        )
        return None
    return path


def _rate_limit(env: EnvReader) -> RateLimit:
    rps = env.number("RATE_LIMIT_RPS", 0.0, minimum=0, maximum=MAX_RATE)
    if 0 < rps < MIN_RATE:
        env.problems.append(f"RATE_LIMIT_RPS={rps:g} is below {MIN_RATE:g} (one request per 1,000 s); 0 turns it off")
    burst_set = env.optional("RATE_LIMIT_BURST") is not None
    problems = len(env.problems)
    burst = env.integer("RATE_LIMIT_BURST", 1, minimum=1, maximum=int(MAX_RATE))
    if burst_set and rps == 0 and len(env.problems) == problems:
        env.problems.append("RATE_LIMIT_BURST is set but RATE_LIMIT_RPS is 0 (off): set both, or neither")
    return RateLimit.of(rps, burst if burst_set else None)
