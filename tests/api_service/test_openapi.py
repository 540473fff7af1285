"""The committed OpenAPI document is the generated one, and it is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from api_service.openapi import build_document, render
from ingest_common.email import TIMESTREAM_MAX, TIMESTREAM_MIN, WHITESPACE_CLASS, parse_email


def test_committed_document_matches_the_generator() -> None:
    committed = resources.files("api_service").joinpath("openapi.json").read_bytes()
    assert committed == render(), "run: python -m api_service.openapi > api_service/openapi.json"


def test_request_schema_agrees_with_the_validator_on_the_seed_example() -> None:
    document = build_document()
    schema = document["paths"]["/api/email"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    example = document["paths"]["/api/email"]["post"]["requestBody"]["content"]["application/json"]["example"]
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(example)) == []
    bad = orjson.loads(orjson.dumps(example))
    bad["data"]["email_timestream"] = TIMESTREAM_MAX + 1
    assert list(validator.iter_errors(bad))
    bad = orjson.loads(orjson.dumps(example))
    bad["data"]["extra"] = "field"
    assert list(validator.iter_errors(bad))


def test_every_error_status_is_documented() -> None:
    responses = build_document()["paths"]["/api/email"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "413", "415", "417", "429", "431", "503"}
    assert "Retry-After" in responses["503"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]


# -- the document says what the server does (schemathesis's positive and negative data checks, here exhaustive) --

_EMAIL_SCHEMA = build_document()["paths"]["/api/email"]["post"]["requestBody"]["content"]["application/json"]["schema"][
    "properties"
]["data"]
_EMAILS = Draft202012Validator(_EMAIL_SCHEMA)
GOOD: dict[str, Any] = {
    "email_subject": "s",
    "email_sender": "a@example.com",
    "email_timestream": 1693561101,
    "email_content": "c",
}


def _agree(data: dict[str, Any]) -> None:
    by_schema = _EMAILS.is_valid(data)
    email, errors = parse_email(data)
    assert by_schema == (email is not None), (data, errors)


def test_the_whitespace_the_server_strips_is_exactly_the_class_the_document_names() -> None:
    spelled_out = re.compile(f"[{WHITESPACE_CLASS}]")
    differing = [hex(code) for code in range(0x110000) if chr(code).isspace() != bool(spelled_out.fullmatch(chr(code)))]
    assert differing == []


@pytest.mark.parametrize("field", ["email_subject", "email_sender", "email_content"])
@pytest.mark.parametrize(
    "text",
    [
        "\u0085",  # valid by ECMA's \S, whitespace to the server: refused by both now
        "\ufeff",  # whitespace by ECMA's \s, text to the server: accepted by both now
        " \u2003\t",
        "a\u0000b",
        "a\u001bb",
        "a\u007fb",
        "line\nbreak",
        "tab\tinside",
        "a\u2028b",
        "form\u000cfeed",
        "cr\rlf",
        "\u00e9t\u00e9",
        "\U0001f600",
    ],
)
def test_text_rules_agree_on_the_edge_characters(field: str, text: str) -> None:
    _agree({**GOOD, field: text})


@given(field=st.sampled_from(["email_subject", "email_sender", "email_content"]), text=st.text(max_size=12))
@settings(max_examples=3000, deadline=None)
def test_text_rules_agree_on_any_short_text(field: str, text: str) -> None:
    _agree({**GOOD, field: text})


@given(value=st.integers(min_value=0, max_value=10**13))
@example(value=TIMESTREAM_MIN)
@example(value=TIMESTREAM_MIN - 1)
@example(value=TIMESTREAM_MAX)
@example(value=TIMESTREAM_MAX + 1)
@settings(max_examples=3000, deadline=None)
def test_timestamp_rules_agree_for_integers_and_digit_strings(value: int) -> None:
    _agree({**GOOD, "email_timestream": value})
    _agree({**GOOD, "email_timestream": str(value)})
    for zeros in (1, 2, 3):
        _agree({**GOOD, "email_timestream": "0" * zeros + str(value)})


@pytest.mark.parametrize(
    "value", ["1693561101.0", 1693561101.0, 1693561101.5, "0", "", "1693561101 ", "+1693561101", 4102444800.0]
)
def test_timestamp_rules_agree_on_the_odd_forms(value: object) -> None:
    _agree({**GOOD, "email_timestream": value})


@given(st.integers(min_value=TIMESTREAM_MIN - 10**6, max_value=TIMESTREAM_MAX + 10**6))
@settings(max_examples=2000, deadline=None)
def test_timestamp_rules_agree_near_the_bounds(value: int) -> None:
    _agree({**GOOD, "email_timestream": str(value)})
    _agree({**GOOD, "email_timestream": float(value)})


def test_idempotency_key_rule_agrees_with_the_server() -> None:
    from api_service.handlers import _IDEMPOTENCY_KEY_MAX

    parameter = next(
        p for p in build_document()["paths"]["/api/email"]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    )
    keys = Draft202012Validator(parameter["schema"])
    for key in ["a", " a", "a b", "~", "x" * _IDEMPOTENCY_KEY_MAX, "x" * (_IDEMPOTENCY_KEY_MAX + 1), " ", "é", "a\tb"]:
        server = 0 < len(key.strip(" \t")) <= _IDEMPOTENCY_KEY_MAX and key.isascii() and key.isprintable()
        assert keys.is_valid(key) == server, key
