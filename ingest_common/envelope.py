"""The SQS message envelope: the one contract between the API and the consumer (docs/contract.md).

Version 2 body (what the API writes): one or more emails, packed while requests wait together:
    {"v": 2, "emails": [{"email_id": str, "received_at": "YYYY-MM-DDTHH:MM:SS.mmmZ", "request_id": str,
                         "email": {...}, "client": str}, ...]}
    (optional in each email: "client", the name of the API client that sent it, and "traceparent", the W3C trace
    context of the span that published it)
Version 1 body (an API before packing; the consumer still reads it during a rolling deploy):
    {"v": 1, "email_id": str, "received_at": "...", "request_id": str, "email": {...}}
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
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

ENVELOPE_VERSION: Final = 2
READABLE_VERSIONS: Final = (1, 2)
REQUEST_ID_ATTRIBUTE: Final = "request_id"
TRACEPARENT_ATTRIBUTE: Final = "traceparent"
_ITEM_KEYS: Final = frozenset({"email_id", "received_at", "request_id", "email", "client", "traceparent"})
_V1_KEYS: Final = _ITEM_KEYS | {"v"}
_V2_KEYS: Final = frozenset({"v", "emails"})
_PACK_HEAD: Final = b'{"v":2,"emails":['
_PACK_TAIL: Final = b"]}"
PACK_OVERHEAD_BYTES: Final = len(_PACK_HEAD) + len(_PACK_TAIL)
"""The bytes a version-2 body adds around its items; each item after the first adds one more (a comma)."""
_MAX_ID_CHARS: Final = 128
# Every API (this one and every earlier one) writes `str(uuid.UUID)`: random (version 4) or from a client's
# Idempotency-Key (version 5). An id of any other form was not made by an API: poison, not a key to store under
# (an id such as " " or "..json" would make an odd object name).
_EMAIL_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
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
    client: str | None = None  # the name of the API client that sent it; written only when known
    traceparent: str | None = None
    """The W3C trace context of the span that published this email: the consumer's spans link to it."""

    def _fields(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "email_id": self.email_id,
            "received_at": format_timestamp(self.received_at),
            "request_id": self.request_id,
            "email": self.email.as_dict(),
        }
        if self.client is not None:
            fields["client"] = self.client
        if self.traceparent is not None:  # written only when set: untraced items stay as they were
            fields["traceparent"] = self.traceparent
        return fields

    def to_item(self) -> bytes:
        """This email as one element of a version-2 body (see `pack_body`): SQS-safe JSON bytes."""
        return sqs_safe_json(self._fields())

    def to_body(self) -> str:
        """A version-2 body holding only this email."""
        return pack_body([self.to_item()])

    def to_v1_body(self) -> str:
        """The version-1 body an API before packing sent: what a rolling deploy still has in flight."""
        return sqs_safe_json({"v": 1, **self._fields()}).decode("utf-8")

    def stored_object(self) -> bytes:
        """The JSON document written to S3 (one object, or one line of a batch)."""
        document: dict[str, object] = {"email_id": self.email_id, "received_at": format_timestamp(self.received_at)}
        if self.client is not None:
            document["client"] = self.client
        document.update(self.email.as_dict())
        return orjson.dumps(document)

    def content_digest(self) -> str:
        """SHA-256 (hex) of what a client's retry repeats: its client and the email's four fields.

        Not the ids, the time of receipt or the trace context, which differ between two sends of one email. Two
        envelopes with one `email_id` and different digests are a conflict: one client sent two different emails
        under one Idempotency-Key (docs/design.md, "Idempotency-Key conflicts").
        """
        canonical = orjson.dumps(
            [self.client, self.email.subject, self.email.sender, self.email.timestream, self.email.content]
        )
        return hashlib.sha256(canonical).hexdigest()

    def s3_key(self, prefix: str) -> str:
        """`<prefix>YYYY/MM/DD/<email_id>.json`, dated by the email's own timestamp (UTC).

        The email's timestamp, not the time of receipt, so that a client's retry with the same
        Idempotency-Key maps to the same object even when it arrives on another day.
        """
        return f"{self._day_prefix(prefix)}{self.email_id}.json"

    def conflict_s3_key(self, prefix: str) -> str:
        """`<prefix>YYYY/MM/DD/<email_id>.conflict-<digest>.json`: where an email whose `email_id` already names a
        different email is stored, beside the first. Named by its own digest, so its redelivery finds it (412)."""
        return f"{self._day_prefix(prefix)}{self.email_id}.conflict-{self.content_digest()}.json"

    def _day_prefix(self, prefix: str) -> str:
        day = datetime.fromtimestamp(self.email.timestream, tz=UTC)
        return f"{prefix}{day:%Y/%m/%d}/"


def pack_body(items: Sequence[bytes]) -> str:
    """A version-2 body of items made by `Envelope.to_item`: its UTF-8 size is
    PACK_OVERHEAD_BYTES + the items' sizes + one comma between each two."""
    return (_PACK_HEAD + b",".join(items) + _PACK_TAIL).decode("utf-8")


def largest_message_bytes() -> int:
    """The most SQS can be asked to hold for one valid email: envelope body plus `request_id` and `traceparent`
    attributes (the trace context counted in both places).

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
        traceparent="0" * TRACEPARENT_CHARS,
    )
    attributes = {
        REQUEST_ID_ATTRIBUTE: {"DataType": "String", "StringValue": worst.request_id},
        TRACEPARENT_ATTRIBUTE: {"DataType": "String", "StringValue": "0" * TRACEPARENT_CHARS},
    }
    return max(message_payload_bytes(body, attributes) for body in (worst.to_body(), worst.to_v1_body()))


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


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """The emails of one SQS message, and the problems of those in it that are not valid (version 2 only)."""

    envelopes: list[Envelope]
    invalid: list[EnvelopeError]


def parse_message(body: str | bytes) -> ParsedMessage:
    """Reads a version-1 or version-2 body.

    Raises EnvelopeError (never anything else) when the message as a whole is unreadable: not JSON, not an
    envelope, an unknown version, or a version-1 email that is not valid. In a version-2 body each email is
    judged alone: the valid ones are returned beside the problems of the others, so one bad email never
    takes the good ones of its message down with it (docs/design.md, "Packed messages").
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("invalid_json", str(exc)) from None
    if not isinstance(document, dict):
        raise EnvelopeError("invalid_envelope", "the body is not a JSON object")
    version = document.get("v")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise EnvelopeError("unsupported_version", f"envelope version {version!r} is not one of {READABLE_VERSIONS}")
    if version == 1:
        return ParsedMessage([_parse_item(document, _V1_KEYS, "")], [])
    unknown = set(document) - _V2_KEYS
    if unknown:
        raise EnvelopeError("invalid_envelope", f"unknown keys {sorted(unknown)}")
    items = document.get("emails")
    if not isinstance(items, list) or not items:
        raise EnvelopeError("invalid_envelope", "'emails' is not a non-empty list")
    envelopes: list[Envelope] = []
    invalid: list[EnvelopeError] = []
    for index, item in enumerate(items):
        try:
            envelopes.append(_parse_item(item, _ITEM_KEYS, f"/emails/{index}"))
        except EnvelopeError as exc:
            invalid.append(exc)
    return ParsedMessage(envelopes, invalid)


def _parse_item(document: object, allowed_keys: frozenset[str], pointer: str) -> Envelope:
    if not isinstance(document, dict):
        raise EnvelopeError("invalid_envelope", f"{pointer or '/'} is not a JSON object")
    unknown = set(document) - allowed_keys
    if unknown:
        raise EnvelopeError("invalid_envelope", f"{pointer or '/'} has unknown keys {sorted(unknown)}")
    email_id = document.get("email_id")
    request_id = document.get("request_id")
    received_at = _parse_timestamp(document.get("received_at"))
    if not _is_identifier(email_id) or not _is_identifier(request_id) or received_at is None:
        raise EnvelopeError(
            "invalid_envelope", f"{pointer or '/'}: email_id, request_id or received_at is missing or malformed"
        )
    if not _EMAIL_ID.fullmatch(email_id):
        raise EnvelopeError(
            "invalid_envelope", f"{pointer or '/'}: email_id is not an id the API makes (a lower-case canonical UUID)"
        )
    email, errors = parse_email(document.get("email"), pointer_prefix=f"{pointer}/email", check_characters=False)
    client = document.get("client")
    if "client" in document and not _is_identifier(client):
        raise EnvelopeError("invalid_envelope", f"{pointer or '/'}: client is malformed")
    traceparent = document.get("traceparent")
    if traceparent is not None and (not isinstance(traceparent, str) or len(traceparent) > _MAX_ID_CHARS):
        raise EnvelopeError(
            "invalid_envelope", f"{pointer or '/'}: traceparent is not a string of at most 128 characters"
        )
    if email is None:
        raise EnvelopeError("invalid_envelope", _describe(errors))
    return Envelope(
        email_id=email_id,
        received_at=received_at,
        request_id=request_id,
        email=email,
        client=client,
        traceparent=parse_traceparent(traceparent),
    )


def _describe(errors: list[FieldError]) -> str:
    return "; ".join(f"{error.pointer} {error.detail}" for error in errors)
