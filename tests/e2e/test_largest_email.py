"""The largest valid email, in the worst escapings a client can choose, is taken and stored intact.

The API and the consumer run in this process against real SQS servers (moto and ElasticMQ) and moto's S3,
over real sockets; each body is posted as the exact bytes a client would send.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api_service.app import create_app as create_api
from api_service.config import DEFAULT_MAX_BODY_BYTES
from consumer_service.app import create_app as create_consumer
from devstack.bootstrap import Resources
from ingest_common.email import CONTENT_MAX_BYTES, SENDER_MAX_CHARS, SUBJECT_MAX_CHARS, TIMESTREAM_MAX
from tests.aws_helpers import queue_depth, stored_objects
from tests.support.api import api_settings_for
from tests.support.consumer import consumer_settings_for, wait_until

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def _fill(pattern: str, max_bytes: int) -> str:
    """`pattern` repeated to exactly `max_bytes` of UTF-8 (ASCII padding for the remainder)."""
    unit = len(pattern.encode("utf-8"))
    text = pattern * (max_bytes // unit)
    return text + "x" * (max_bytes - len(text.encode("utf-8")))


def _escape_every_character(text: str) -> str:
    units = text.encode("utf-16-be")
    return '"' + "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)) + '"'


def _largest_emails() -> dict[str, dict[str, Any]]:
    return {
        # What Python's json.dumps and requests' json= send: every non-ASCII character as \uXXXX.
        "non-ascii": {
            "email_subject": "é😀" * (SUBJECT_MAX_CHARS // 2),
            "email_sender": "ü" * SENDER_MAX_CHARS,
            "email_timestream": str(TIMESTREAM_MAX),
            "email_content": _fill("é", CONTENT_MAX_BYTES),
        },
        # Quotes, backslashes, line breaks and tabs: two bytes of JSON each, and twice their size in SQS.
        "quotes-backslashes-newlines": {
            "email_subject": '"\\' * (SUBJECT_MAX_CHARS // 2),
            "email_sender": '"' * SENDER_MAX_CHARS,
            "email_timestream": TIMESTREAM_MAX,
            "email_content": _fill('"\\\n\r\t\x0c', CONTENT_MAX_BYTES),
        },
        # Code points SQS refuses raw: the envelope carries them escaped.
        "sqs-forbidden": {
            "email_subject": "\ufffe" * SUBJECT_MAX_CHARS,
            "email_sender": "\uffff" * SENDER_MAX_CHARS,
            "email_timestream": TIMESTREAM_MAX,
            "email_content": _fill("\ufffe😀", CONTENT_MAX_BYTES),
        },
    }


def _bodies(token: str) -> list[tuple[str, dict[str, Any], bytes]]:
    bodies = []
    for name, data in _largest_emails().items():
        bodies.append((f"{name}/json.dumps", data, json.dumps({"data": data, "token": token}).encode()))
    # The longest a client may write: every character, ASCII included, as \uXXXX (six bytes for one).
    data = {**_largest_emails()["non-ascii"], "email_content": _fill("a", CONTENT_MAX_BYTES)}
    fields = ", ".join(f"{_escape_every_character(k)}: {_escape_every_character(str(v))}" for k, v in data.items())
    body = f'{{"data": {{{fields}}}, "token": {_escape_every_character(token)}}}'.encode()
    bodies.append(("every-character-escaped", data, body))
    return bodies


async def test_the_largest_valid_email_in_the_worst_escaping_is_stored_intact(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    api = await aiohttp_client(create_api(api_settings_for(aws_resources)))
    bodies = _bodies(api_token)
    assert max(len(body) for _, _, body in bodies) > 1_500_000, "the worst escaping must be in the set"
    assert all(len(body) <= DEFAULT_MAX_BODY_BYTES for _, _, body in bodies)
    expected: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, data, body in bodies:
        response = await api.post("/api/email", data=body, headers={"Content-Type": "application/json"})
        answer = await response.json(content_type=None)
        assert response.status == 200, (name, len(body), answer)
        expected[answer["email_id"]] = (name, data)

    consumer = await aiohttp_client(create_consumer(consumer_settings_for(aws_resources)))
    await wait_until(
        lambda: len(stored_objects(aws_env, aws_resources.bucket)) == len(expected),
        timeout=60,
        what="every email stored",
    )
    await wait_until(
        lambda: queue_depth(sqs_endpoint, aws_resources.queue_url) == (0, 0), timeout=30, what="an empty queue"
    )
    stored = {document["email_id"]: document for document in stored_objects(aws_env, aws_resources.bucket).values()}
    for email_id, (name, data) in expected.items():
        document = stored[email_id]
        for field in ("email_subject", "email_sender", "email_content"):
            assert document[field] == data[field], (name, field)
        assert document["email_timestream"] == int(data["email_timestream"]), name
    assert queue_depth(sqs_endpoint, aws_resources.dead_letter_queue_url) == (0, 0)
    assert (await consumer.get("/healthz")).status == 200


@pytest.mark.parametrize("extra", [1, 4096])
async def test_one_byte_more_content_is_a_400_naming_the_field_not_a_413(
    aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str, extra: int
) -> None:
    api = await aiohttp_client(create_api(api_settings_for(aws_resources)))
    data = {**_largest_emails()["non-ascii"], "email_content": _fill("é", CONTENT_MAX_BYTES) + "x" * extra}
    response = await api.post("/api/email", data=json.dumps({"data": data, "token": api_token}).encode(),
                              headers={"Content-Type": "application/json"})  # fmt: skip
    answer = await response.json(content_type=None)
    assert response.status == 400
    assert [error["pointer"] for error in answer["errors"]] == ["/data/email_content"]
