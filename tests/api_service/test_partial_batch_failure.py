"""A real partial SendMessageBatch failure: moto never fails single entries, so a proxy on loopback removes one
entry from the request before moto sees it and reports it `Failed`, exactly as SQS does when it refuses one entry.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api_service.app import create_app
from devstack.bootstrap import Resources
from devstack.metrics_text import metric_value
from tests.aws_helpers import emails_of, receive_emails, seed_payload
from tests.support.api import api_settings_for

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@dataclasses.dataclass
class FailingProxy:
    upstream: str
    failures_left: int
    code: str
    sender_fault: bool
    refused_bodies: list[str] = dataclasses.field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        refused: dict[str, Any] | None = None
        if target.endswith(".SendMessageBatch") and self.failures_left > 0:
            document = orjson.loads(body)
            if len(document["Entries"]) > 1:
                refused = document["Entries"].pop(0)
                self.failures_left -= 1
                self.refused_bodies.append(refused["MessageBody"])
                body = orjson.dumps(document)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        async with aiohttp.ClientSession() as session, session.post(self.upstream, data=body, headers=headers) as up:
            answer = await up.read()
            status = up.status
        if refused is not None and status == 200:
            document = orjson.loads(answer)
            document.setdefault("Failed", []).append(
                {"Id": refused["Id"], "Code": self.code, "SenderFault": self.sender_fault, "Message": "injected"}
            )
            answer = orjson.dumps(document)
        return web.Response(body=answer, status=status, content_type="application/x-amz-json-1.0")


@pytest.fixture
async def failing_proxy(moto_server: Any) -> AsyncIterator[tuple[FailingProxy, str]]:
    proxy = FailingProxy(moto_server.endpoint_url + "/", failures_left=3, code="InternalError", sender_fault=False)
    app = web.Application()
    app.router.add_post("/{tail:.*}", proxy.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield proxy, str(server.make_url("/")).rstrip("/")
    await server.close()


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
@pytest.mark.parametrize(
    ("code", "sender_fault"),
    [
        ("InternalError", False),
        # An SSE-KMS queue whose key throttles: SQS marks it the sender's fault, yet it passes.
        ("KmsThrottled", True),
    ],
)
async def test_failed_entries_are_retried_and_only_accepted_emails_are_acknowledged(
    code: str,
    sender_fault: bool,
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    aws_resources: Resources,
    api_token: str,
    failing_proxy: tuple[FailingProxy, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, proxy_url = failing_proxy
    proxy.code, proxy.sender_fault = code, sender_fault
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy_url)
    # Small packs, so that a call holds several messages and the proxy has one to refuse.
    settings = api_settings_for(aws_resources, publish_linger_seconds=0.02, publish_max_message_bytes=1024)
    api = await aiohttp_client(create_app(settings))

    async def post(index: int) -> tuple[int, dict[str, Any]]:
        response = await api.post("/api/email", json=seed_payload(api_token, email_content=f"m{index}"))
        return response.status, await response.json()

    results = await asyncio.gather(*(post(index) for index in range(30)))
    assert [status for status, _ in results] == [200] * 30
    assert proxy.refused_bodies, "the proxy must have refused a message for the test to mean anything"
    emails = receive_emails(sqs_endpoint, aws_resources.queue_url, expected=30)
    assert sorted(message_id for message_id, _ in emails) == sorted(body["message_id"] for _, body in results)
    assert sorted(item["email"]["email_content"] for _, item in emails) == sorted(f"m{index}" for index in range(30))
    refused_emails = sum(len(emails_of(body)) for body in proxy.refused_bodies)
    metrics = await (await api.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_publisher_retries_total") == refused_emails, "each refused email"


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_a_permanently_refused_entry_is_a_503_and_is_not_in_sqs(
    sqs_endpoint: str,
    aiohttp_client: ClientFactory,
    aws_env: str,
    aws_resources: Resources,
    api_token: str,
    failing_proxy: tuple[FailingProxy, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, proxy_url = failing_proxy
    proxy.failures_left, proxy.code, proxy.sender_fault = 1, "InvalidMessageContents", True
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy_url)
    settings = api_settings_for(aws_resources, publish_linger_seconds=0.05, publish_max_message_bytes=1024)
    api = await aiohttp_client(create_app(settings))
    responses = await asyncio.gather(
        *(api.post("/api/email", json=seed_payload(api_token, email_content=f"p{i}")) for i in range(5))
    )
    [refused_body] = proxy.refused_bodies
    refused_contents = {item["email"]["email_content"] for item in emails_of(refused_body)}
    # A refused message fails every email in it, and only those.
    statuses = sorted(response.status for response in responses)
    assert statuses == [200] * (5 - len(refused_contents)) + [503] * len(refused_contents)
    assert 0 < len(refused_contents) < 5
    refused = next(r for r in responses if r.status == 503)
    assert refused.headers["Retry-After"]
    emails = receive_emails(sqs_endpoint, aws_resources.queue_url, expected=5 - len(refused_contents))
    stored_contents = {item["email"]["email_content"] for _, item in emails}
    assert stored_contents == {f"p{i}" for i in range(5)} - refused_contents
