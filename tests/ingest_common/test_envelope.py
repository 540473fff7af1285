"""The SQS envelope: round trips, the S3 key, SQS-safe bodies, and rejection of anything else."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_common.email import (
    CONTENT_MAX_BYTES,
    SENDER_MAX_CHARS,
    SUBJECT_MAX_CHARS,
    TIMESTREAM_MAX,
    TIMESTREAM_MIN,
    Email,
    parse_email,
)
from ingest_common.envelope import (
    PACK_OVERHEAD_BYTES,
    REQUEST_ID_ATTRIBUTE,
    TRACEPARENT_ATTRIBUTE,
    TRACEPARENT_CHARS,
    Envelope,
    EnvelopeError,
    ParsedMessage,
    format_timestamp,
    largest_message_bytes,
    pack_body,
    parse_message,
)
from ingest_common.sqs_limits import MAX_MESSAGE_BYTES

RECEIVED = datetime(2026, 11, 22, 18, 51, 11, 123456, tzinfo=UTC)

EMAIL_ID = "0b6f1c2e-8a4d-4c3b-9e5f-2a1d7c6b5e4f"


def make_envelope(**email_overrides: Any) -> Envelope:
    email: dict[str, Any] = {"subject": "Hi", "sender": "John doe", "timestream": 1693561101, "content": "Hello"}
    email.update(email_overrides)
    return Envelope(email_id=EMAIL_ID, received_at=RECEIVED, request_id="req-1", email=Email(**email))


def parse_envelope(body: str | bytes) -> Envelope:
    """The one email of a message that must hold exactly one, valid."""
    parsed = parse_message(body)
    assert parsed.invalid == [] and len(parsed.envelopes) == 1
    return parsed.envelopes[0]


def test_round_trip() -> None:
    envelope = make_envelope()
    parsed = parse_envelope(envelope.to_body())
    assert parsed.email == envelope.email
    assert parsed.email_id == envelope.email_id
    assert parsed.request_id == "req-1"
    assert parsed.received_at == datetime(2026, 11, 22, 18, 51, 11, 123000, tzinfo=UTC)


_FIELDS = {
    "email_id": EMAIL_ID,
    "received_at": "2026-11-22T18:51:11.123Z",
    "request_id": "req-1",
    "email": {
        "email_subject": "Hi",
        "email_sender": "John doe",
        "email_timestream": 1693561101,
        "email_content": "Hello",
    },
}


def test_version_one_layout_is_stable() -> None:
    assert orjson.loads(make_envelope().to_v1_body()) == {"v": 1, **_FIELDS}


def test_version_two_layout_is_stable() -> None:
    assert orjson.loads(make_envelope().to_body()) == {"v": 2, "emails": [_FIELDS]}


def test_version_one_bodies_still_parse() -> None:
    envelope = make_envelope()
    assert parse_envelope(envelope.to_v1_body()) == parse_envelope(envelope.to_body())


def _other(number: int) -> Envelope:
    return Envelope(
        email_id=str(uuid.UUID(int=number)),
        received_at=RECEIVED,
        request_id=f"req-{number}",
        email=Email(subject=f"s{number}", sender="x", timestream=1693561101, content="c" * (number + 1)),
    )


def test_a_packed_body_holds_its_emails_in_order_and_its_size_is_the_documented_sum() -> None:
    envelopes = [_other(number) for number in range(1, 6)]
    items = [envelope.to_item() for envelope in envelopes]
    body = pack_body(items)
    assert len(body.encode()) == PACK_OVERHEAD_BYTES + sum(map(len, items)) + len(items) - 1
    parsed = parse_message(body)
    assert parsed.invalid == []
    assert [envelope.email_id for envelope in parsed.envelopes] == [
        str(uuid.UUID(int=number)) for number in range(1, 6)
    ]
    assert [envelope.email for envelope in parsed.envelopes] == [envelope.email for envelope in envelopes]


def test_one_invalid_email_in_a_packed_body_leaves_the_others_readable() -> None:
    items = [orjson.loads(_other(number).to_item()) for number in range(3)]
    items[1]["email"] = {"email_subject": "only"}
    items.insert(2, {"email_id": "x", "future_field": 1})
    items.append("not an object")
    parsed = parse_message(orjson.dumps({"v": 2, "emails": items}))
    assert [envelope.email_id for envelope in parsed.envelopes] == [str(uuid.UUID(int=0)), str(uuid.UUID(int=2))]
    assert [error.reason for error in parsed.invalid] == ["invalid_envelope"] * 3
    assert "/emails/1/email" in parsed.invalid[0].detail
    assert "/emails/2" in parsed.invalid[1].detail and "future_field" in parsed.invalid[1].detail
    assert "/emails/4" in parsed.invalid[2].detail


@pytest.mark.parametrize(
    "body",
    [b'{"v": 2}', b'{"v": 2, "emails": []}', b'{"v": 2, "emails": {}}', b'{"v": 2, "emails": [], "x": 1}'],
)
def test_a_version_two_body_without_a_list_of_emails_is_refused_whole(body: bytes) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_message(body)
    assert caught.value.reason == "invalid_envelope"


def test_an_invalid_version_one_email_refuses_the_whole_message() -> None:
    document = orjson.loads(make_envelope().to_v1_body())
    document["email_id"] = ""
    with pytest.raises(EnvelopeError):
        parse_message(orjson.dumps(document))


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_is_written_only_when_set_and_round_trips() -> None:
    assert "traceparent" not in orjson.loads(make_envelope().to_body())["emails"][0]
    traced = Envelope(
        email_id=EMAIL_ID,
        received_at=RECEIVED,
        request_id="req-1",
        email=make_envelope().email,
        traceparent=TRACEPARENT,
    )
    assert orjson.loads(traced.to_body())["emails"][0]["traceparent"] == TRACEPARENT
    assert parse_envelope(traced.to_v1_body()).traceparent == TRACEPARENT
    assert parse_envelope(traced.to_body()).traceparent == TRACEPARENT
    assert parse_envelope(make_envelope().to_body()).traceparent is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not a traceparent",
        TRACEPARENT.upper(),
        "01" + TRACEPARENT[2:],  # a version we do not write
        "00-" + "0" * 32 + TRACEPARENT[35:],  # all-zero trace id: invalid by the spec
        TRACEPARENT[:36] + "0" * 16 + TRACEPARENT[52:],  # all-zero span id
        TRACEPARENT + "-extra",
    ],
)
def test_a_malformed_traceparent_is_ignored_not_refused(value: str) -> None:
    """The W3C spec's rule for receivers: an email is never held back for its tracing."""
    parsed = parse_envelope(_document(traceparent=value))
    assert parsed.traceparent is None
    assert parsed.email == make_envelope().email


@pytest.mark.parametrize("value", [7, ["x"], {"a": 1}, "0" * 129])
def test_a_traceparent_that_is_not_a_short_string_makes_an_invalid_envelope(value: object) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(_document(traceparent=value))
    assert caught.value.reason == "invalid_envelope"


def test_s3_key_is_dated_by_the_emails_own_timestamp() -> None:
    envelope = make_envelope()
    assert envelope.s3_key("emails/") == f"emails/2023/09/01/{envelope.email_id}.json"


def test_stored_object_holds_id_receipt_time_and_fields() -> None:
    stored = orjson.loads(make_envelope().stored_object())
    assert stored == {
        "email_id": EMAIL_ID,
        "received_at": "2026-11-22T18:51:11.123Z",
        "email_subject": "Hi",
        "email_sender": "John doe",
        "email_timestream": 1693561101,
        "email_content": "Hello",
    }


def test_the_client_is_written_only_when_known_and_round_trips() -> None:
    plain = make_envelope()
    assert "client" not in orjson.loads(plain.to_body())["emails"][0]
    assert "client" not in orjson.loads(plain.stored_object())
    assert parse_envelope(plain.to_body()).client is None

    sent_by = dataclasses.replace(plain, client="acme")
    assert orjson.loads(sent_by.to_body())["emails"][0]["client"] == "acme"
    assert orjson.loads(sent_by.to_v1_body())["client"] == "acme"
    assert parse_envelope(sent_by.to_body()).client == "acme"
    stored = orjson.loads(sent_by.stored_object())
    assert stored == {**orjson.loads(plain.stored_object()), "client": "acme"}
    assert list(stored)[:3] == ["email_id", "received_at", "client"]


@pytest.mark.parametrize("client", ["", None, 7, "c" * 129, "tab\there"])
def test_a_malformed_client_is_refused(client: object) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(_document(client=client))
    assert caught.value.reason == "invalid_envelope"


def test_body_escapes_code_points_sqs_refuses() -> None:
    body = make_envelope(content="a\ufffeb\uffffc\x00d").to_body()
    assert "\ufffe" not in body
    assert "\uffff" not in body
    assert "\x00" not in body
    assert parse_envelope(body).email.content == "a\ufffeb\uffffc\x00d"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_envelope"),
        (b'{"v": 3}', "unsupported_version"),
        (b'{"v": true}', "unsupported_version"),
        (b'{"email": {}}', "unsupported_version"),
    ],
)
def test_rejects_what_is_not_an_envelope(body: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(body)
    assert caught.value.reason == reason


def _document(**overrides: Any) -> bytes:
    document = orjson.loads(make_envelope().to_v1_body())
    document.update(overrides)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    "overrides",
    [
        {"email_id": ""},
        {"email_id": "a/b"},
        {"email_id": ".."},
        {"email_id": " "},
        {"email_id": "..json"},
        {"email_id": "not-a-uuid"},
        {"email_id": "6F1C8A52-3F7E-4D2B-9A43-0E5B7C9D2A11"},  # upper case: str(uuid.UUID) never writes it
        {"email_id": "{6f1c8a52-3f7e-4d2b-9a43-0e5b7c9d2a11}"},
        {"email_id": 7},
        {"request_id": None},
        {"received_at": "yesterday"},
        {"received_at": "2026-11-22T18:51:11"},
        {"email": {"email_subject": "only"}},
        {"unexpected": 1},
    ],
)
def test_rejects_malformed_envelopes(overrides: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_envelope(_document(**overrides))
    assert caught.value.reason == "invalid_envelope"


# -- properties ---------------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=40).filter(lambda text: text.strip() != "")
emails = st.builds(
    Email,
    subject=texts.filter(lambda t: not any(ord(c) < 32 and c != "\t" for c in t) and "\x7f" not in t),
    sender=texts.filter(lambda t: not any(ord(c) < 32 and c != "\t" for c in t) and "\x7f" not in t),
    timestream=st.integers(TIMESTREAM_MIN, TIMESTREAM_MAX),
    content=texts,
).filter(lambda email: all(_encodable(text) for text in (email.subject, email.sender, email.content)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(emails, st.text(alphabet="abcdef0123456789-", min_size=1, max_size=64))
def test_every_valid_envelope_round_trips_and_is_sqs_safe(email: Email, request_id: str) -> None:
    envelope = Envelope(email_id=str(uuid.uuid4()), received_at=RECEIVED, request_id=request_id, email=email)
    body = envelope.to_body()
    # SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF only.
    assert all(
        char in "\t\n\r" or 0x20 <= ord(char) <= 0xD7FF or 0xE000 <= ord(char) <= 0xFFFD or ord(char) >= 0x10000
        for char in body
    )
    assert parse_envelope(body).email == email


# Values each envelope field must refuse (with its reason); the others come from a valid envelope.
_BAD_FIELDS: dict[str, tuple[list[object], str]] = {
    "v": ([3, "1", True, None], "unsupported_version"),
    "email_id": (["", 5, "a/b", "..", "x" * 129, "tab\there"], "invalid_envelope"),
    "received_at": (["yesterday", 1693561101, "2026-11-22T18:51:11.123"], "invalid_envelope"),
    "request_id": ([None, "", "r" * 129], "invalid_envelope"),
    "client": ([None, "", "c" * 129, 1], "invalid_envelope"),
    "email": ([{}, "x", {"email_subject": "s"}], "invalid_envelope"),
}


@settings(deadline=None)  # a loaded CI machine must not turn a slow example into a failure
@given(broken=st.sets(st.sampled_from(sorted(_BAD_FIELDS)), max_size=2), data=st.data())
def test_an_envelope_parses_exactly_when_every_field_is_valid(broken: set[str], data: st.DataObject) -> None:
    """Valid envelopes with zero or more fields spoilt: the valid ones decode to the same envelope, the others
    are refused with EnvelopeError (never anything else) and the reason of a spoilt field."""
    document = orjson.loads(make_envelope().to_v1_body())
    for field in broken:
        document[field] = data.draw(st.sampled_from(_BAD_FIELDS[field][0]), label=field)
    body = orjson.dumps(document)
    if not broken:
        parsed = parse_envelope(body)
        assert parsed.to_body() == make_envelope().to_body()
        return
    with pytest.raises(EnvelopeError) as refused:
        parse_envelope(body)
    assert refused.value.reason in {_BAD_FIELDS[field][1] for field in broken}


@settings(deadline=None)
@given(body=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=400))
def test_parse_never_raises_anything_but_envelope_error(body: bytes, cut: int) -> None:
    """Arbitrary bytes, and a valid body cut short or with bytes spliced in: an envelope or EnvelopeError."""
    valid = pack_body([_other(1).to_item(), _other(2).to_item()]).encode()
    for candidate in (body, valid[:cut], valid[:cut] + body + valid[cut:]):
        with contextlib.suppress(EnvelopeError):
            parsed = parse_message(candidate)  # a splice inside a string can leave valid emails: they round trip
            assert isinstance(parsed, ParsedMessage)
            for envelope in parsed.envelopes:
                assert parse_envelope(envelope.to_body()).to_body() == envelope.to_body()


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 22, 18, 51, 11, 123456, tzinfo=UTC),
        datetime(2026, 11, 22, 19, 51, 11, 123999, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 11, 22, 8, 51, 11, 123000, tzinfo=timezone(timedelta(hours=-10))),
    ],
)
def test_timestamps_are_utc_with_milliseconds_whatever_the_zone(moment: datetime) -> None:
    assert format_timestamp(moment) == "2026-11-22T18:51:11.123Z"


# Characters that grow most in an envelope, with plain ones; content's may hold no JSON-six-byte controls.
_GROWING = '"\\\t\n\r\x0c\ufffe\uffffé€😀a'


@settings(deadline=None)  # a 256 KiB email per example: a loaded machine must not turn slowness into a failure
@given(
    subject_char=st.sampled_from([c for c in _GROWING if c not in "\t\n\r\x0c"]),
    sender_char=st.sampled_from([c for c in _GROWING if c not in "\t\n\r\x0c"]),
    content_chars=st.text(alphabet=_GROWING, min_size=1, max_size=8),
)
def test_no_valid_email_makes_a_larger_message_than_the_bound(
    subject_char: str, sender_char: str, content_chars: str
) -> None:
    unit = len(content_chars.encode("utf-8"))
    content = "a" + content_chars * ((CONTENT_MAX_BYTES - 1) // unit)
    email, errors = parse_email(
        {
            "email_subject": subject_char * SUBJECT_MAX_CHARS,
            "email_sender": sender_char * SENDER_MAX_CHARS,
            "email_timestream": TIMESTREAM_MAX,
            "email_content": content,
        }
    )
    assert errors == [] and email is not None
    envelope = Envelope(
        email_id=str(uuid.uuid4()),
        received_at=RECEIVED,
        request_id="r" * 128,
        email=email,
        client="😀" * 128,
        traceparent=TRACEPARENT,
    )
    attributes = len(REQUEST_ID_ATTRIBUTE) + len("String") + 128
    attributes += len(TRACEPARENT_ATTRIBUTE) + len("String") + TRACEPARENT_CHARS
    for body in (envelope.to_body(), envelope.to_v1_body()):
        assert len(body.encode("utf-8")) + attributes <= largest_message_bytes()


def test_the_largest_message_needs_a_queue_above_the_old_256_kib_and_fits_sqs() -> None:
    assert 256 * 1024 < largest_message_bytes() <= MAX_MESSAGE_BYTES
