"""The committed OpenAPI document is the generated one, and it is a valid OpenAPI 3.1 document."""

from __future__ import annotations

from importlib import resources

import orjson
from jsonschema import Draft202012Validator

from api_service.openapi import build_document, render
from ingest_common.email import TIMESTREAM_MAX


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
    assert set(responses) == {"200", "400", "401", "413", "415", "429", "503"}
    assert "Retry-After" in responses["503"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]
