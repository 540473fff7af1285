"""Unit and property tests of the email rules shared by the API and the consumer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
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

SEED_EXAMPLE: dict[str, Any] = {
    "email_subject": "Happy new year!",
    "email_sender": "John doe",
    "email_timestream": "1693561101",
    "email_content": "Just want to say... Happy new year!!!",
}


def pointers(data: object) -> set[str]:
    email, errors = parse_email(data)
    assert email is None
    return {error.pointer for error in errors}


def test_seed_example_is_valid() -> None:
    email, errors = parse_email(SEED_EXAMPLE)
    assert errors == []
    assert email == Email("Happy new year!", "John doe", 1693561101, "Just want to say... Happy new year!!!")


def test_integer_timestream_is_accepted() -> None:
    email, _ = parse_email({**SEED_EXAMPLE, "email_timestream": 1693561101})
    assert email is not None
    assert email.timestream == 1693561101


def test_every_problem_is_listed_at_once() -> None:
    assert pointers({"email_subject": " ", "email_timestream": True, "extra": 1}) == {
        "/data/email_subject",
        "/data/email_sender",
        "/data/email_timestream",
        "/data/email_content",
        "/data/extra",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email_subject", ""),
        ("email_subject", "   \t "),
        ("email_subject", 5),
        ("email_subject", None),
        ("email_subject", "line\nbreak"),
        ("email_subject", "x" * (SUBJECT_MAX_CHARS + 1)),
        ("email_sender", ["John"]),
        ("email_sender", "nul\x00"),
        ("email_subject", "next\x85line"),  # U+0085 NEXT LINE
        ("email_subject", "line\u2028separator"),
        ("email_sender", "paragraph\u2029separator"),
        ("email_sender", "c1\x9bcontrol"),
        ("email_content", "nul \x00 in text"),
        ("email_content", "bell \x07"),
        ("email_content", "escape \x1b[31m"),
        ("email_content", "vertical tab \x0b"),
        ("email_sender", "y" * (SENDER_MAX_CHARS + 1)),
        ("email_content", ""),
        ("email_content", {"text": "hi"}),
        ("email_content", "é" * (CONTENT_MAX_BYTES // 2 + 1)),
        ("email_content", "lone surrogate \ud800"),
        ("email_timestream", "169356110a"),
        ("email_timestream", " 1693561101"),
        ("email_timestream", "-1693561101"),
        ("email_timestream", "1693561101.5"),
        ("email_timestream", 1693561101.5),  # a number that is not integral
        ("email_timestream", True),
        ("email_timestream", "١٦٩٣٥٦١١٠١"),  # Arabic-Indic digits: str.isdigit() says yes, we say no
        ("email_timestream", TIMESTREAM_MIN - 1),
        ("email_timestream", TIMESTREAM_MAX + 1),
        ("email_timestream", str(TIMESTREAM_MAX + 1)),
        ("email_timestream", "9" * 13),
    ],
)
def test_bad_field_is_named(field: str, value: object) -> None:
    assert pointers({**SEED_EXAMPLE, field: value}) == {f"/data/{field}"}


def test_an_integral_number_is_an_integer_as_in_json_schema() -> None:
    """1693561101.0 and 1.693561101e9 are integers in JSON Schema 2020-12, the OpenAPI document's dialect."""
    for value in (1693561101.0, 1.693561101e9):
        email, errors = parse_email({**SEED_EXAMPLE, "email_timestream": value})
        assert errors == [] and email is not None
        assert email.timestream == 1693561101 and isinstance(email.timestream, int)


def test_limits_are_inclusive() -> None:
    email, errors = parse_email(
        {
            "email_subject": "s" * SUBJECT_MAX_CHARS,
            "email_sender": "s" * SENDER_MAX_CHARS,
            "email_timestream": TIMESTREAM_MAX,
            "email_content": "c" * CONTENT_MAX_BYTES,
        }
    )
    assert errors == []
    assert email is not None


def test_content_may_span_lines_and_tabs_are_allowed_in_subject() -> None:
    email, errors = parse_email({**SEED_EXAMPLE, "email_subject": "a\tb", "email_content": "line 1\r\nline 2"})
    assert errors == []
    assert email is not None


def test_content_keeps_the_controls_json_writes_in_two_bytes() -> None:
    content = "tab\there\nline feed\x0cform feed\r\ncarriage return and \u2028 \x85 are text in content"
    email, errors = parse_email({**SEED_EXAMPLE, "email_content": content})
    assert errors == []
    assert email is not None
    assert email.content == content


def test_character_rules_can_be_left_to_the_edge() -> None:
    """Envelopes written under older character rules stay readable (the consumer passes False)."""
    legacy = {**SEED_EXAMPLE, "email_subject": "old\u2028subject", "email_content": "old \x01 content"}
    assert parse_email(legacy)[0] is None
    email, errors = parse_email(legacy, check_characters=False)
    assert errors == []
    assert email is not None


def test_unknown_field_pointer_is_escaped() -> None:
    assert pointers({**SEED_EXAMPLE, "a/b~c": 1}) == {"/data/a~1b~0c"}


@pytest.mark.parametrize("data", [None, [], "text", 3, [SEED_EXAMPLE]])
def test_data_must_be_an_object(data: object) -> None:
    assert pointers(data) == {"/data"}


# -- properties ---------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)
single_line = st.text(min_size=1, max_size=50).filter(
    lambda text: (
        text.strip() != ""
        and not any((ord(c) < 32 and c != "\t") or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text)
    )
)
CONTENT_CONTROLS_ALLOWED = "\t\n\x0c\r"
valid_emails = st.fixed_dictionaries(
    {
        "email_subject": single_line,
        "email_sender": single_line,
        "email_timestream": st.integers(TIMESTREAM_MIN, TIMESTREAM_MAX)
        | st.integers(TIMESTREAM_MIN, TIMESTREAM_MAX).map(str),
        "email_content": st.text(min_size=1, max_size=200).filter(
            lambda text: text.strip() != "" and not any(ord(c) < 32 and c not in CONTENT_CONTROLS_ALLOWED for c in text)
        ),
    }
).filter(lambda data: all(_encodable(value) for value in data.values() if isinstance(value, str)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@given(json_values)
def test_never_raises_on_any_json(data: object) -> None:
    email, errors = parse_email(data)
    assert (email is None) == bool(errors)


@given(st.dictionaries(st.sampled_from([*SEED_EXAMPLE, "other"]), json_values))
def test_accepts_only_complete_well_typed_emails(data: dict[str, object]) -> None:
    email, errors = parse_email(data)
    if email is not None:
        assert set(data) == set(SEED_EXAMPLE)
        assert all(isinstance(data[key], str) for key in ("email_subject", "email_sender", "email_content"))
    else:
        assert errors


@given(valid_emails)
def test_accepts_every_valid_email(data: dict[str, Any]) -> None:
    email, errors = parse_email(data)
    assert errors == []
    assert email is not None
    assert email.timestream == int(data["email_timestream"])
    assert email.content == data["email_content"]
