"""The API against real SQS and SSM servers (moto, ElasticMQ): the data path, outages, batching, rotation.

Validation and status codes that need no AWS are in test_api_handlers.py, against in-process fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api_service.app import create_app
from devstack.bootstrap import Resources, emulator_client
from devstack.metrics_text import metric_value
from devstack.processes import free_port
from tests.aws_helpers import receive_all, receive_emails, seed_payload
from tests.support.api import Api, api_settings_for, assert_problem, post_email

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def api(aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources) -> Api:
    return await aiohttp_client(create_app(api_settings_for(aws_resources)))


# -- the happy path -----------------------------------------------------------------------------------


async def test_seed_example_is_published_with_its_envelope(
    sqs_endpoint: str, api: Api, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    status, headers, body = await post_email(api, seed_payload(api_token), headers={"X-Request-ID": "trace-123"})
    assert status == 200, body
    assert body["status"] == "success"
    assert headers["X-Request-ID"] == "trace-123"
    [message] = receive_all(sqs_endpoint, aws_resources.queue_url, expected=1)
    assert message["MessageId"] == body["message_id"]
    assert message["MessageAttributes"]["request_id"]["StringValue"] == "trace-123"
    document = json.loads(message["Body"])
    assert document["v"] == 2 and set(document) == {"v", "emails"}
    [envelope] = document["emails"]
    assert envelope["email_id"] == body["email_id"]
    assert envelope["request_id"] == "trace-123"
    assert envelope["email"] == {
        "email_subject": "Happy new year!",
        "email_sender": "John doe",
        "email_timestream": 1693561101,
        "email_content": "Just want to say... Happy new year!!!",
    }
    assert api_token not in message["Body"]


async def test_no_token_from_ssm_means_503_not_401(
    aiohttp_client: ClientFactory,
    aws_env: str,
    aws_resources: Resources,
    api_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    api = await aiohttp_client(create_app(api_settings_for(aws_resources)))
    status, headers, body = await post_email(api, seed_payload(api_token))
    assert_problem(status, headers, body, 503, "service-unavailable")
    assert headers["Retry-After"] == "5"
    ready = await api.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"] == ["token_unavailable"]


async def test_sqs_failure_is_503_and_nothing_is_acknowledged(
    aiohttp_client: ClientFactory,
    aws_env: str,
    aws_resources: Resources,
    api_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    api = await aiohttp_client(create_app(api_settings_for(aws_resources, publish_deadline_seconds=0.5)))
    status, headers, body = await post_email(api, seed_payload(api_token))
    assert_problem(status, headers, body, 503, "service-unavailable")
    assert int(headers["Retry-After"]) >= 1
    metrics = await (await api.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_api_requests_shed_total", {"reason": "publish_failed"}) == 1
    assert metric_value(metrics, "email_ingest_api_emails_accepted_total") == 0


# -- batching, back-pressure, rotation, outage ---------------------------------------------------------


async def test_concurrent_requests_share_batches(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    api = await aiohttp_client(create_app(api_settings_for(aws_resources, publish_linger_seconds=0.02)))
    results = await asyncio.gather(
        *(post_email(api, seed_payload(api_token, email_content=f"n{i}")) for i in range(100))
    )
    assert [status for status, _, _ in results] == [200] * 100
    metrics = await (await api.get("/metrics")).text()
    calls = metric_value(metrics, "email_ingest_aws_requests_total", {"operation": "SendMessageBatch"})
    assert calls <= 15, f"{calls} SendMessageBatch calls for 100 emails"
    emails = receive_emails(sqs_endpoint, aws_resources.queue_url, expected=100)
    assert sorted(message_id for message_id, _ in emails) == sorted(body["message_id"] for _, _, body in results)
    assert sorted(item["email"]["email_content"] for _, item in emails) == sorted(f"n{i}" for i in range(100))
    assert len({message_id for message_id, _ in emails}) < 100, "concurrent requests share messages"


async def test_overload_sheds_with_503_and_every_200_is_in_sqs(
    sqs_endpoint: str, aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    settings = api_settings_for(aws_resources, publish_max_pending=5, publish_max_batches_in_flight=1)
    api = await aiohttp_client(create_app(settings))
    results = await asyncio.gather(*(post_email(api, seed_payload(api_token)) for _ in range(60)))
    accepted = [body["message_id"] for status, _, body in results if status == 200]
    shed = [headers for status, headers, _ in results if status == 503]
    assert len(accepted) + len(shed) == 60
    assert shed, "some requests must be shed"
    assert all(headers["Retry-After"] == "1" for headers in shed)
    emails = receive_emails(sqs_endpoint, aws_resources.queue_url, expected=len(accepted))
    assert sorted(message_id for message_id, _ in emails) == sorted(accepted)


async def test_token_rotation_without_restart(
    aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    settings = api_settings_for(aws_resources, token_refresh_seconds=0.2, token_rotation_grace_seconds=1.0)
    api = await aiohttp_client(create_app(settings))
    ssm = emulator_client("ssm", aws_env)
    ssm.put_parameter(Name=aws_resources.token_parameter, Value="rotated-token", Type="SecureString", Overwrite=True)
    for _ in range(50):
        if (await post_email(api, seed_payload("rotated-token")))[0] == 200:
            break
        await asyncio.sleep(0.1)
    assert (await post_email(api, seed_payload("rotated-token")))[0] == 200
    assert (await post_email(api, seed_payload(api_token)))[0] == 200, "the old token is valid during the grace"
    await asyncio.sleep(1.2)
    assert (await post_email(api, seed_payload(api_token)))[0] == 401
    assert (await post_email(api, seed_payload("rotated-token")))[0] == 200


async def test_ssm_outage_serves_cached_token_then_503_then_recovers(
    aiohttp_client: ClientFactory, aws_env: str, aws_resources: Resources, api_token: str
) -> None:
    settings = api_settings_for(aws_resources, token_refresh_seconds=0.2, token_max_staleness_seconds=1.5)
    api = await aiohttp_client(create_app(settings))
    ssm = emulator_client("ssm", aws_env)
    ssm.delete_parameter(Name=aws_resources.token_parameter)
    await asyncio.sleep(0.5)
    assert (await post_email(api, seed_payload(api_token)))[0] == 200, "the cached token still works"
    await asyncio.sleep(1.5)
    status, headers, _ = await post_email(api, seed_payload(api_token))
    assert status == 503
    assert headers["Retry-After"] == "5"
    metrics = await (await api.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_token_refreshes_total", {"outcome": "failure"}) >= 1
    assert metric_value(metrics, "email_ingest_token_loaded") == 0
    ssm.put_parameter(Name=aws_resources.token_parameter, Value=api_token, Type="SecureString", Overwrite=True)
    for _ in range(50):
        if (await post_email(api, seed_payload(api_token)))[0] == 200:
            break
        await asyncio.sleep(0.1)
    assert (await post_email(api, seed_payload(api_token)))[0] == 200


# -- probes and documents ----------------------------------------------------------------------------


async def test_probes_metrics_and_openapi(api: Api, api_token: str) -> None:
    for path in ("/healthz", "/health", "/readyz"):
        response = await api.get(path)
        assert response.status == 200, path
    await post_email(api, seed_payload(api_token))
    metrics = await api.get("/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = await metrics.text()
    assert metric_value(text, "email_ingest_api_requests_total", {"route": "/api/email", "code": "200"}) == 1
    assert metric_value(text, "email_ingest_api_emails_accepted_total") == 1
    assert metric_value(text, "email_ingest_token_loaded") == 1
    assert metric_value(text, "email_ingest_build_info", {"service": "api"}) == 1
    assert api_token not in text
    document = await (await api.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert "/api/email" in document["paths"]
