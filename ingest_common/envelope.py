"""The SQS message envelope: the one contract between the API and the consumer (docs/contract.md).

Version 1 body:
    {"v": 1, "email_id": str, "received_at": "YYYY-MM-DDTHH:MM:SS.mmmZ", "request_id": str, "email": {...}}
and, optional, "traceparent": the W3C trace context of the span that published the email.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypeGuard

import orjson

from ingest_common.email import (
    CONTENT_MAX_BYTES,
    SENDER_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    TIMESTREAM_MAX,
    Email,
    FieldError,
    parse_email,
)
from ingest_common.sqs_limits import message_payload_bytes

ENVELOPE_VERSION: Final = 1
REQUEST_ID_ATTRIBUTE: Final = "request_id"
TRACEPARENT_ATTRIBUTE: Final = "traceparent"
_ENVELOPE_KEYS: Final = frozenset({"v", "email_id", "received_at", "request_id", "email", "traceparent"})
_MAX_ID_CHARS: Final = 128
# W3C Trace Context, version 00: version-trace_id-parent_id-flags, lower-case hex.
TRACEPARENT_CHARS: Final = 55
_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")

# SQS refuses these code points in a message body; JSON leaves them raw, so we escape them ourselves.
_SQS_FORBIDDEN_UTF8: Final = ((b"\xef\xbf\xbe", b"\\ufffe"), (b"\xef\xbf\xbf", b"\\uffff"))


class EnvelopeError(ValueError):
    """A message that is not a valid envelope. `reason` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: `2026-11-22T18:51:11.123Z`."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def sqs_safe_json(document: object) -> bytes:
    """JSON bytes that SQS accepts as a message body."""
    data = orjson.dumps(document)
    if b"\xef\xbf" in data:
        for raw, escaped in _SQS_FORBIDDEN_UTF8:
            data = data.replace(raw, escaped)
    return data


@dataclass(frozen=True, slots=True)
class Envelope:
    email_id: str
    received_at: datetime
    request_id: str
    email: Email
    traceparent: str | None = None
    """The W3C trace context of the span that published this email: the consumer's spans link to it."""

    def to_body(self) -> str:
        document: dict[str, object] = {
            "v": ENVELOPE_VERSION,
            "email_id": self.email_id,
            "received_at": format_timestamp(self.received_at),
            "request_id": self.request_id,
            "email": self.email.as_dict(),
        }
        if self.traceparent is not None:  # written only when set: untraced bodies stay as they were
            document["traceparent"] = self.traceparent
        return sqs_safe_json(document).decode("utf-8")

    def stored_object(self) -> bytes:
        """The JSON document written to S3."""
        return orjson.dumps(
            {
                "email_id": self.email_id,
                "received_at": format_timestamp(self.received_at),
                **self.email.as_dict(),
            }
        )

    def s3_key(self, prefix: str) -> str:
        """`<prefix>YYYY/MM/DD/<email_id>.json`, dated by the email's own timestamp (UTC).

        The email's timestamp, not the time of receipt, so that a client's retry with the same
        Idempotency-Key maps to the same object even when it arrives on another day.
        """
        day = datetime.fromtimestamp(self.email.timestream, tz=UTC)
        return f"{prefix}{day:%Y/%m/%d}/{self.email_id}.json"


def largest_message_bytes() -> int:
    """The most SQS can be asked to hold for one valid email: envelope body plus `request_id` and `traceparent`
    attributes (the trace context counted in both places).

    Built, not estimated: the worst character for each field at its limit. In content every UTF-8 byte
    takes at most two bytes of JSON (a quote, a backslash, TAB/LF/FF/CR, or U+FFFE/U+FFFF, whose three
    bytes become six); the control characters JSON writes in six bytes are refused at the API. A
    subject or sender character takes at most six (U+FFFE). Every queue must take at least this.
    """
    worst = Envelope(
        email_id=str(uuid.UUID(int=0)),
        received_at=datetime(2099, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        request_id="r" * _MAX_ID_CHARS,
        email=Email(
            subject="\ufffe" * SUBJECT_MAX_CHARS,
            sender="\ufffe" * SENDER_MAX_CHARS,
            timestream=TIMESTREAM_MAX,
            content='"' * CONTENT_MAX_BYTES,
        ),
        traceparent="0" * TRACEPARENT_CHARS,
    )
    attributes = {
        REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": worst.request_id},
        TRACEPARENT_ATTRIBUTE: {"DataType": "String", "StringValue": "0" * TRACEPARENT_CHARS},
    }
    return message_payload_bytes(worst.to_body(), attributes)


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def parse_traceparent(value: object) -> str | None:
    """A W3C traceparent as written by our producers, or None for one that is not (then no trace is continued).

    As the W3C spec asks of a receiver, a malformed value is ignored rather than refused: an email is never held
    back for its tracing. All-zero trace or span ids are invalid by the spec.
    """
    if not isinstance(value, str) or len(value) != TRACEPARENT_CHARS:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None or not match[1].strip("0") or not match[2].strip("0"):
        return None
    return value


def _is_identifier(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS and value.isprintable()


def parse_envelope(body: str | bytes) -> Envelope:
    """Parses and validates an envelope; raises EnvelopeError (never anything else) when it is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("invalid_json", str(exc)) from None
    if not isinstance(document, dict):
        raise EnvelopeError("invalid_envelope", "the body is not a JSON object")
    version = document.get("v")
    if version != ENVELOPE_VERSION or isinstance(version, bool):
        raise EnvelopeError("unsupported_version", f"envelope version {version!r} is not {ENVELOPE_VERSION}")
    unknown = set(document) - _ENVELOPE_KEYS
    if unknown:
        raise EnvelopeError("invalid_envelope", f"unknown keys {sorted(unknown)}")
    email_id = document.get("email_id")
    request_id = document.get("request_id")
    received_at = _parse_timestamp(document.get("received_at"))
    if not _is_identifier(email_id) or not _is_identifier(request_id) or received_at is None:
        raise EnvelopeError("invalid_envelope", "email_id, request_id or received_at is missing or malformed")
    if "/" in email_id or email_id in {".", ".."}:
        raise EnvelopeError("invalid_envelope", "email_id is not usable as an object name")
    traceparent = document.get("traceparent")
    if traceparent is not None and (not isinstance(traceparent, str) or len(traceparent) > _MAX_ID_CHARS):
        raise EnvelopeError("invalid_envelope", "traceparent is not a string of at most 128 characters")
    email, errors = parse_email(document.get("email"), pointer_prefix="/email", check_characters=False)
    if email is None:
        raise EnvelopeError("invalid_envelope", _describe(errors))
    return Envelope(
        email_id=email_id,
        received_at=received_at,
        request_id=request_id,
        email=email,
        traceparent=parse_traceparent(traceparent),
    )


def _describe(errors: list[FieldError]) -> str:
    return "; ".join(f"{error.pointer} {error.detail}" for error in errors)
