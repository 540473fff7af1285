"""The API's memory budget against real SQS servers, over real sockets: bodies being read and emails waiting
for SQS are bounded in bytes, what is over the budget is shed with 503 + Retry-After, and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api_service.app import create_app
from api_service.memory_budget import MIB
from devstack.bootstrap import Resources
from devstack.faultproxy import FaultProxy, Mode
from devstack.metrics_text import metric_value
from tests.aws_helpers import receive_emails, seed_payload
from tests.support.api import api_settings_for, post_email

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
Api = TestClient[web.Request, web.Application]
BUDGET = 16 * MIB
LARGE_CONTENT = "x" * 250_000


@pytest.fixture
def slow_sqs(sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """SQS behind a proxy, so that emails can be held waiting for it."""
    with FaultProxy.for_url(sqs_endpoint, name="sqs") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.endpoint_url)
        yield proxy


async def reserved(api: Api) -> float:
    return metric_value(await (await api.get("/metrics")).text(), "email_ingest_api_memory_reserved_bytes")


async def wait_reserved(api: Api, predicate: Callable[[float], bool], what: str) -> float:
    for _ in range(200):
        value = await reserved(api)
        if predicate(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"reserved bytes never {what}: {await reserved(api)}")


async def test_emails_waiting_for_sqs_are_bounded_in_bytes_and_every_200_is_in_sqs(
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    aws_resources: Resources,
    api_token: str,
    slow_sqs: FaultProxy,
) -> None:
    settings = api_settings_for(aws_resources, memory_budget_bytes=BUDGET, publish_deadline_seconds=30)
    api = await aiohttp_client(create_app(settings))
    assert (await post_email(api, seed_payload(api_token)))[0] == 200  # connections are open before the stall
    slow_sqs.set_mode(Mode.LATENCY, latency=1.5)
    posts = [
        asyncio.ensure_future(post_email(api, seed_payload(api_token, email_content=f"{i} {LARGE_CONTENT}")))
        for i in range(40)
    ]
    peak = await wait_reserved(api, lambda value: value > BUDGET / 2, "rose")
    for _ in range(20):  # while SQS is slow, what is held never exceeds the budget
        peak = max(peak, await reserved(api))
        await asyncio.sleep(0.05)
    slow_sqs.set_mode(Mode.PASS)
    results = await asyncio.gather(*posts)
    assert BUDGET / 2 < peak <= BUDGET
    accepted = [body["message_id"] for status, _, body in results if status == 200]
    shed = [(headers, body) for status, headers, body in results if status == 503]
    assert len(accepted) + len(shed) == 40
    assert 0 < len(accepted) < 40 and shed, "the budget must have shed some, and taken some"
    assert all(headers["Retry-After"] == "1" for headers, _ in shed)
    metrics = await (await api.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_api_requests_shed_total", {"reason": "memory_budget"}) == len(shed)
    assert metric_value(metrics, "email_ingest_api_memory_budget_bytes") == BUDGET
    assert await wait_reserved(api, lambda value: value == 0, "returned to 0") == 0
    emails = receive_emails(sqs_endpoint, aws_resources.queue_url, expected=len(accepted) + 1)
    assert set(accepted) <= {message_id for message_id, _ in emails}
    assert sum(item["email"]["email_content"].endswith(LARGE_CONTENT) for _, item in emails) == len(accepted)


async def _open_upload(port: int, length: int, sent: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that announced a large body, sent part of it and went quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + sent
    )
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_bodies_still_being_read_count_against_the_budget(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    """An unauthenticated client cannot make the API buffer more than the budget, however many connect."""
    api = await aiohttp_client(create_app(api_settings_for(aws_resources, memory_budget_bytes=BUDGET)))
    port = api.server.port
    assert port is not None
    length = 1_600_000
    # A body is reserved twice over while it is read (a buffer, then its bytes).
    uploads = [await _open_upload(port, length, b'{"data": {"email_content": "') for _ in range(BUDGET // (2 * length))]
    await wait_reserved(api, lambda value: value >= len(uploads) * 2 * length, "reached the uploads' size")

    # One more large body is refused before it is read; a small email still fits beside them.
    reader, writer = await _open_upload(port, length, b"{")
    head = await asyncio.wait_for(reader.read(4096), timeout=5)
    assert head.startswith(b"HTTP/1.1 503"), head[:200]
    assert b"Retry-After: 1" in head
    writer.close()
    status, _, body = await post_email(api, seed_payload(api_token))
    assert status == 200, body

    # Clients that give up release what they held.
    for _, upload in uploads:
        upload.close()
    assert await wait_reserved(api, lambda value: value == 0, "returned to 0") == 0
    status, _, _ = await post_email(api, seed_payload(api_token, email_content=LARGE_CONTENT))
    assert status == 200


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_a_chunked_body_is_reserved_as_it_arrives(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    api = await aiohttp_client(create_app(api_settings_for(aws_resources, memory_budget_bytes=BUDGET)))
    port = api.server.port
    assert port is not None
    holders = [await _open_upload(port, 1_620_000, b"{") for _ in range(5)]
    await wait_reserved(api, lambda value: value >= 5 * 2 * 1_620_000, "reached the uploads' size")
    # 750 kB as json.dumps writes it (every "é" as \\u00e9): more than the 577 kB the holders left.
    body = json.dumps(seed_payload(api_token, email_content="é" * 125_000)).encode()
    assert 2 * len(body) > BUDGET - 5 * 2 * 1_620_000

    async def chunks() -> Any:  # no Content-Length: the budget is taken chunk by chunk and refuses midway
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    response = await api.post("/api/email", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    for _, holder in holders:
        holder.close()
    assert await wait_reserved(api, lambda value: value == 0, "returned to 0") == 0
    metrics = await (await api.get("/metrics")).text()
    closed = {"route": "/api/email", "method": "POST", "code": "499"}
    assert metric_value(metrics, "email_ingest_api_requests_total", closed) == 5, "hang-ups are no server errors"
    response = await api.post("/api/email", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 200, (await response.text())[:500]
