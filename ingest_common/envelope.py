"""The SQS message envelope: the one contract between the API and the consumer (docs/contract.md).

Version 1 body:
    {"v": 1, "email_id": str, "received_at": "YYYY-MM-DDTHH:MM:SS.mmmZ", "request_id": str, "email": {...}}
and, when the API knows which client sent the email, "client": str (an optional key: older bodies lack it).
"""

from __future__ import annotations

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
_ENVELOPE_KEYS: Final = frozenset({"v", "email_id", "received_at", "request_id", "email", "client"})
_MAX_ID_CHARS: Final = 128

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
    client: str | None = None  # the name of the API client that sent it; written only when known

    def to_body(self) -> str:
        document: dict[str, object] = {
            "v": ENVELOPE_VERSION,
            "email_id": self.email_id,
            "received_at": format_timestamp(self.received_at),
            "request_id": self.request_id,
            "email": self.email.as_dict(),
        }
        if self.client is not None:
            document["client"] = self.client
        return sqs_safe_json(document).decode("utf-8")

    def stored_object(self) -> bytes:
        """The JSON document written to S3 (one object, or one line of a batch)."""
        document: dict[str, object] = {"email_id": self.email_id, "received_at": format_timestamp(self.received_at)}
        if self.client is not None:
            document["client"] = self.client
        document.update(self.email.as_dict())
        return orjson.dumps(document)

    def s3_key(self, prefix: str) -> str:
        """`<prefix>YYYY/MM/DD/<email_id>.json`, dated by the email's own timestamp (UTC).

        The email's timestamp, not the time of receipt, so that a client's retry with the same
        Idempotency-Key maps to the same object even when it arrives on another day.
        """
        day = datetime.fromtimestamp(self.email.timestream, tz=UTC)
        return f"{prefix}{day:%Y/%m/%d}/{self.email_id}.json"


def largest_message_bytes() -> int:
    """The most SQS can be asked to hold for one valid email: envelope body plus `request_id` attribute.

    Built, not estimated: the worst character for each field at its limit. In content every UTF-8 byte
    takes at most two bytes of JSON (a quote, a backslash, TAB/LF/FF/CR, or U+FFFE/U+FFFF, whose three
    bytes become six); the control characters JSON writes in six bytes are refused at the API. A
    subject or sender character takes at most six (U+FFFE); a client name's (printable) at most four. Every
    queue must take at least this.
    """
    worst = Envelope(
        email_id=str(uuid.UUID(int=0)),
        received_at=datetime(2099, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        request_id="r" * _MAX_ID_CHARS,
        client="\U0001f600" * _MAX_ID_CHARS,  # printable, four bytes of UTF-8 each: the worst a client can be
        email=Email(
            subject="\ufffe" * SUBJECT_MAX_CHARS,
            sender="\ufffe" * SENDER_MAX_CHARS,
            timestream=TIMESTREAM_MAX,
            content='"' * CONTENT_MAX_BYTES,
        ),
    )
    attributes = {REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": worst.request_id}}
    return message_payload_bytes(worst.to_body(), attributes)


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


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
    client = document.get("client")
    if "client" in document and not _is_identifier(client):
        raise EnvelopeError("invalid_envelope", "client is malformed")
    email, errors = parse_email(document.get("email"), pointer_prefix="/email", check_characters=False)
    if email is None:
        raise EnvelopeError("invalid_envelope", _describe(errors))
    return Envelope(email_id=email_id, received_at=received_at, request_id=request_id, email=email, client=client)


def _describe(errors: list[FieldError]) -> str:
    return "; ".join(f"{error.pointer} {error.detail}" for error in errors)
