"""POST /api/email: authenticate (which client), rate-limit, validate, publish, and answer only after SQS took the
message."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import Final

import orjson
from aiohttp import web
from opentelemetry.trace import SpanKind, Tracer

from api_service.clients import Client
from api_service.ids import email_id_for
from api_service.keys import (
    CLIENT,
    LIFECYCLE,
    MEMORY_BUDGET,
    METRICS,
    PUBLISHER,
    RANDOM_IDS,
    RATE_LIMITER,
    REQUEST_ID,
    SETTINGS,
    TOKEN_CACHE,
    TRACER,
)
from api_service.memory_budget import Reservation
from api_service.problems import ACCEPT_ENCODING_HEADER, problem
from api_service.publisher import BatchPublisher, PublishRejected
from api_service.rate_limit import retry_after_header
from api_service.token_cache import TokenCheck
from ingest_common.email import FieldError, parse_email, unknown_field_errors
from ingest_common.envelope import REQUEST_ID_ATTRIBUTE, TRACEPARENT_ATTRIBUTE, Envelope
from ingest_common.http_protocol import SUPPORTED_CONTENT_CODINGS
from ingest_common.tracing import traceparent_of

_BODY_KEYS: Final = frozenset({"data", "token"})
# `"traceparent":"00-<32 hex>-<16 hex>-<2 hex>",` in an envelope item: what tracing adds to what a request holds.
_TRACEPARENT_ITEM_BYTES: Final = 72
_IDEMPOTENCY_KEY_MAX: Final = 255
_TOKEN_UNAVAILABLE_RETRY_AFTER: Final = 5
_MEMORY_BUDGET_RETRY_AFTER: Final = 1
# A body is held twice while it is read: gathered in a buffer, then copied into one bytes object.
_READ_COPIES: Final = 2


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _idempotency_key(request: web.Request) -> tuple[str | None, FieldError | None]:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None, None
    if not 0 < len(key) <= _IDEMPOTENCY_KEY_MAX or not (key.isascii() and key.isprintable()):
        return None, FieldError(
            "/headers/Idempotency-Key", f"must be 1 to {_IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key, None


def _unavailable(request: web.Request, reason: str, retry_after: int) -> web.Response:
    request.app[METRICS].shed[reason].inc()
    return problem(
        "service-unavailable",
        detail="The service is temporarily unable to accept emails.",
        request_id=request[REQUEST_ID],
        headers={"Retry-After": str(retry_after)},
    )


async def ingest_email(request: web.Request) -> web.Response:
    app = request.app
    metrics = app[METRICS]
    request_id: str = request[REQUEST_ID]
    if app[LIFECYCLE].draining:
        return _unavailable(request, "draining", 1)
    # The usual header, exactly, skips aiohttp's full media-type parse.
    if request.headers.get("Content-Type") != "application/json" and not _is_json(request.content_type):
        metrics.reject("unsupported_media_type")
        return problem(
            "unsupported-media-type",
            detail=f"Send JSON with Content-Type: application/json, not {request.content_type!r}.",
            request_id=request_id,
        )
    coding = _content_coding(request)
    if coding is not None and coding not in SUPPORTED_CONTENT_CODINGS:
        metrics.reject("unsupported_encoding")
        return problem(
            "unsupported-content-encoding",
            detail=f"Send the body as identity, {' or '.join(SUPPORTED_CONTENT_CODINGS)}.",
            request_id=request_id,
            headers=ACCEPT_ENCODING_HEADER,
        )
    with app[MEMORY_BUDGET].reservation() as held:
        body = await _read_body(request, held, decoded=coding is not None)
        if isinstance(body, web.Response):
            return body
        return await _ingest(request, body, held)


def _content_coding(request: web.Request) -> str | None:
    """The body's content coding, lower case; None for none (or identity)."""
    coding = request.headers.get("Content-Encoding")
    if coding is None:
        return None
    coding = coding.strip().lower()
    return None if coding in {"", "identity"} else coding


async def _read_body(request: web.Request, held: Reservation, *, decoded: bool) -> bytes | web.Response:
    """The body, its bytes reserved before they are read; or the answer when it is refused.

    Reserving before reading bounds the bodies still arriving (unauthenticated as yet) too. A chunked or
    compressed (`decoded`) body is reserved chunk by chunk as it arrives, by its decoded size: Content-Length
    counts the compressed bytes, and 1.6 KB of gzip unpacks to 1.6 MB. The body limit applies to the decoded bytes.
    """
    max_bytes = request.app[SETTINGS].max_body_bytes
    length = request.content_length
    try:
        if length is not None and not decoded:
            if length > max_bytes:
                return _too_large(request, max_bytes)
            if not held.add(_READ_COPIES * length):
                return _unavailable(request, "memory_budget", _MEMORY_BUDGET_RETRY_AFTER)
            return await request.read()
        chunks: list[bytes] = []
        async for chunk in request.content.iter_any():
            if held.size + _READ_COPIES * len(chunk) > _READ_COPIES * max_bytes:
                return _too_large(request, max_bytes)
            if not held.add(_READ_COPIES * len(chunk)):
                return _unavailable(request, "memory_budget", _MEMORY_BUDGET_RETRY_AFTER)
            chunks.append(chunk)
        return b"".join(chunks)
    except web.RequestPayloadError:
        # Not the coding it claims (a plain body sent as gzip), or a broken chunked framing: the client's mistake.
        request.app[METRICS].reject("invalid_encoding")
        what = "its Content-Encoding" if decoded else "its Transfer-Encoding (chunked)"
        refused = problem(
            "malformed-body", detail=f"The body does not decode by {what}.", request_id=request[REQUEST_ID]
        )
        # The rest of the body cannot be read either: close after the answer instead of reading on (aiohttp's
        # lingering read would meet the same error and drop the connection before the answer reached the client).
        refused.force_close()
        request.content.feed_eof()
        return refused


def _rate_limited(request: web.Request, client: Client, wait_seconds: float) -> web.Response:
    request.app[METRICS].reject("rate_limited", client.name)
    limit = client.rate_limit or request.app[SETTINGS].rate_limit
    return problem(
        "too-many-requests",
        detail=(
            f"Client {client.name!r} may send {limit.rps:g} requests a second (bursts of {limit.burst}) to each "
            "instance of the service; retry after the time in Retry-After. The email was not taken."
        ),
        request_id=request[REQUEST_ID],
        headers={"Retry-After": retry_after_header(wait_seconds)},
    )


def _too_large(request: web.Request, max_bytes: int) -> web.Response:
    request.app[METRICS].reject("too_large")
    return problem(
        "payload-too-large", detail=f"The body must be at most {max_bytes} bytes.", request_id=request[REQUEST_ID]
    )


async def _ingest(request: web.Request, body: bytes, held: Reservation) -> web.Response:
    app = request.app
    metrics = app[METRICS]
    request_id: str = request[REQUEST_ID]
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        metrics.reject("malformed_json")
        return problem("malformed-json", detail=f"The body is not valid JSON: {exc}", request_id=request_id)
    if not isinstance(document, dict):
        metrics.reject("invalid_payload")
        return problem(
            "invalid-payload",
            detail="The body must be a JSON object with 'data' and 'token'.",
            request_id=request_id,
            errors=[FieldError("", "must be an object with 'data' and 'token'")],
        )

    body_token = document.get("token")
    token = _bearer_token(request) or (body_token if isinstance(body_token, str) else None)
    client = app[TOKEN_CACHE].check(token)
    if client is TokenCheck.INVALID:  # perhaps a version or a client no refresh loaded yet: one early refresh
        client = await app[TOKEN_CACHE].recheck(token)
    if client is TokenCheck.UNAVAILABLE:
        return _unavailable(request, "token_unavailable", _TOKEN_UNAVAILABLE_RETRY_AFTER)
    if client is TokenCheck.INVALID:
        metrics.reject("unauthorized")
        return problem(
            "unauthorized",
            detail="Send a valid token in the 'token' field or as 'Authorization: Bearer <token>'.",
            request_id=request_id,
            headers={"WWW-Authenticate": 'Bearer realm="email-ingest"'},
        )
    request[CLIENT] = client.name
    wait_seconds = app[RATE_LIMITER].retry_after(client)
    if wait_seconds > 0:
        return _rate_limited(request, client, wait_seconds)

    email, errors = parse_email(document.get("data"))
    errors.extend(unknown_field_errors(document, _BODY_KEYS, ""))
    if "token" in document and not isinstance(body_token, str):  # ignored next to a bearer token, but still wrong
        errors.append(FieldError("/token", "must be a string"))
    idempotency_key, header_error = _idempotency_key(request)
    if header_error is not None:
        errors.append(header_error)
    if email is None or errors:
        metrics.reject("invalid_payload", client.name)
        return problem(
            "invalid-payload",
            detail=f"{len(errors)} problem(s) with the request; see 'errors'.",
            request_id=request_id,
            errors=errors,
        )

    envelope = Envelope(
        email_id=email_id_for(client.name, idempotency_key, app[RANDOM_IDS]),
        received_at=datetime.now(UTC),
        request_id=request_id,
        email=email,
        client=client.name,
    )
    item = envelope.to_item()
    # Held until SQS answers: the parsed content, the envelope item, the packed body holding it and its
    # copy in the SendMessageBatch request, where JSON escapes it once more (at most twice its size).
    # Reserved only now that the email is known valid; until here the parsed document is covered by the
    # body's two-copy reservation, except while an unknown token waits (at most 2 s, rate-limited) for an
    # early refresh.
    tracer = app.get(TRACER)
    traced_bytes = _TRACEPARENT_ITEM_BYTES if tracer is not None else 0
    if not held.add(sys.getsizeof(email.content) + 4 * (len(item) + traced_bytes)):
        return _unavailable(request, "memory_budget", _MEMORY_BUDGET_RETRY_AFTER)
    attributes = {REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": request_id}}
    try:
        message_id = await _publish(app, tracer, envelope, item, attributes)
    except PublishRejected as rejected:
        return _unavailable(request, rejected.reason, rejected.retry_after_seconds)
    metrics.accept(client.name)
    return web.Response(
        body=orjson.dumps({"status": "success", "message_id": message_id, "email_id": envelope.email_id}),
        content_type="application/json",
    )


async def _publish(
    app: web.Application,
    tracer: Tracer | None,
    envelope: Envelope,
    item: bytes,
    attributes: dict[str, dict[str, str]],
) -> str:
    if tracer is None:
        return await app[PUBLISHER].publish(item, attributes)
    return await _traced_publish(
        tracer, publisher=app[PUBLISHER], envelope=envelope, attributes=attributes, queue_url=app[SETTINGS].queue_url
    )


async def _traced_publish(
    tracer: Tracer,
    *,
    publisher: BatchPublisher,
    envelope: Envelope,
    attributes: dict[str, dict[str, str]],
    queue_url: str,
) -> str:
    """The publish as a producer span (the messaging conventions' "send"), covering the wait for SQS's verdict on
    the message; its context travels inside the email's envelope item (a pack holds many emails, each with its
    own) and as the `traceparent` attribute of a message holding this email alone: the creation context the
    consumer's spans link to. The item is built again here, with the context, only for a sampled span."""
    queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    with tracer.start_as_current_span(
        f"send {queue_name}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": queue_name,
            "email_ingest.email_id": envelope.email_id,
        },
    ) as span:
        traceparent = traceparent_of(span)
        if traceparent is not None:
            attributes[TRACEPARENT_ATTRIBUTE] = {"DataType": "String", "StringValue": traceparent}
            envelope = dataclasses.replace(envelope, traceparent=traceparent)
        message_id = await publisher.publish(envelope.to_item(), attributes)
        span.set_attribute("messaging.message.id", message_id)
        return message_id
