"""The API's validation and status codes, in-process against fakes of its SQS and SSM adapters: no AWS server.

The data path against real servers is in test_api_integration.py.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from api_service.app import begin_drain, create_app
from api_service.clients import RateLimit
from api_service.config import ApiSettings
from devstack.metrics_text import metric_value
from tests.aws_helpers import seed_payload
from tests.support.api import Api, assert_problem, post_email
from tests.support.fakes import FakeSendQueue, FakeTokenSource

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def app_with_fakes(
    token: str, *, clients: dict[str, str] | None = None, queue: FakeSendQueue | None = None, **overrides: Any
) -> web.Application:
    settings = ApiSettings(
        region="us-east-1",
        queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/emails",
        token_parameter_name="/email-ingest/test/api-token",
        token_parameter_path="/email-ingest/test/clients" if clients else None,
        publish_linger_seconds=0.005,
        **overrides,
    )
    return create_app(settings, queue=queue or FakeSendQueue(), token_source=FakeTokenSource(token, clients))


@pytest.fixture
async def api(aiohttp_client: ClientFactory, api_token: str) -> Api:
    return await aiohttp_client(app_with_fakes(api_token))


async def test_bearer_token_is_accepted(api: Api, api_token: str) -> None:
    status, _, body = await post_email(api, seed_payload(None), headers={"Authorization": f"Bearer {api_token}"})
    assert status == 200, body


async def test_unsafe_request_id_is_replaced(api: Api, api_token: str) -> None:
    status, headers, _ = await post_email(api, seed_payload(api_token), headers={"X-Request-ID": "evil\tvalue"})
    assert status == 200
    assert headers["X-Request-ID"] != "evil\tvalue"
    assert len(headers["X-Request-ID"]) == 32


async def test_idempotency_key_maps_to_one_email_id(api: Api, api_token: str) -> None:
    first = await post_email(api, seed_payload(api_token), headers={"Idempotency-Key": "order-42"})
    second = await post_email(api, seed_payload(api_token), headers={"Idempotency-Key": "order-42"})
    other = await post_email(api, seed_payload(api_token), headers={"Idempotency-Key": "order-43"})
    assert first[0] == second[0] == other[0] == 200
    assert first[2]["email_id"] == second[2]["email_id"] != other[2]["email_id"]
    assert first[2]["message_id"] != second[2]["message_id"]


# -- every error status ------------------------------------------------------------------------------


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.post("/api/email", data=b'{"data": ', headers={"Content-Type": "application/json"})
    assert_problem(
        response.status, dict(response.headers), await response.json(content_type=None), 400, "malformed-json"
    )


async def test_invalid_payload_lists_every_bad_field(api: Api, api_token: str) -> None:
    payload = seed_payload(api_token, email_subject="", email_timestream="yesterday", extra="x")
    del payload["data"]["email_content"]
    payload["unexpected"] = True
    status, headers, body = await post_email(api, payload)
    assert_problem(status, headers, body, 400, "invalid-payload")
    assert {error["pointer"] for error in body["errors"]} == {
        "/data/email_subject",
        "/data/email_timestream",
        "/data/email_content",
        "/data/extra",
        "/unexpected",
    }


async def test_bad_idempotency_key_is_400(api: Api, api_token: str) -> None:
    status, headers, body = await post_email(api, seed_payload(api_token), headers={"Idempotency-Key": "x" * 256})
    assert_problem(status, headers, body, 400, "invalid-payload")
    assert body["errors"] == [{"pointer": "/headers/Idempotency-Key", "detail": body["errors"][0]["detail"]}]


@pytest.mark.parametrize("token", [None, "wrong", ""])
async def test_missing_or_wrong_token_is_401_and_looks_the_same(api: Api, token: str | None) -> None:
    status, headers, body = await post_email(api, seed_payload(token))
    assert_problem(status, headers, body, 401, "unauthorized")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert body["detail"] == "Send a valid token in the 'token' field or as 'Authorization: Bearer <token>'."


async def test_wrong_bearer_token_is_401_even_with_a_good_body_token(api: Api, api_token: str) -> None:
    status, _, _ = await post_email(api, seed_payload(api_token), headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_body_over_the_limit_is_413(aiohttp_client: ClientFactory, api_token: str) -> None:
    api = await aiohttp_client(app_with_fakes(api_token, max_body_bytes=4096))
    status, headers, body = await post_email(api, seed_payload(api_token, email_content="x" * 5000))
    assert_problem(status, headers, body, 413, "payload-too-large")

    async def chunks() -> Any:  # no Content-Length: the limit must hold for chunked bodies too
        for _ in range(10):
            yield b"x" * 1000

    response = await api.post("/api/email", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status == 413


async def test_not_json_is_415(api: Api, api_token: str) -> None:
    response = await api.post("/api/email", data=f"token={api_token}", headers={"Content-Type": "text/plain"})
    body = await response.json(content_type=None)
    assert_problem(response.status, dict(response.headers), body, 415, "unsupported-media-type")


async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    response = await api.get("/api/email")
    assert_problem(
        response.status, dict(response.headers), await response.json(content_type=None), 405, "method-not-allowed"
    )
    assert response.headers["Allow"] == "POST"


async def test_unknown_path_is_a_404_problem(api: Api) -> None:
    response = await api.get("/nope")
    assert_problem(response.status, dict(response.headers), await response.json(content_type=None), 404, "not-found")


async def test_draining_fails_readiness_and_refuses_new_emails(api: Api, api_token: str) -> None:
    begin_drain(api.app)
    ready = await api.get("/readyz")
    assert ready.status == 503
    assert "draining" in (await ready.json())["checks"]
    status, headers, body = await post_email(api, seed_payload(api_token))
    assert_problem(status, headers, body, 503, "service-unavailable")
    assert headers["Retry-After"] == "1"
    assert (await api.get("/healthz")).status == 200, "liveness stays up while draining"


# -- clients and their rate limits ---------------------------------------------------------------------


async def test_the_client_is_named_in_the_message_the_log_line_and_the_metrics(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    queue = FakeSendQueue()
    api = await aiohttp_client(app_with_fakes(api_token, clients={"acme": "acme-token"}, queue=queue))
    with capture_logs() as logs:
        assert (await post_email(api, seed_payload("acme-token")))[0] == 200
        assert (await post_email(api, seed_payload(api_token)))[0] == 200
        assert (await post_email(api, seed_payload("wrong")))[0] == 401
    bodies = [orjson.loads(entry["MessageBody"]) for batch in queue.batches for entry in batch]
    assert sorted(item["client"] for body in bodies for item in body["emails"]) == ["acme", "default"]
    requests = [log for log in logs if log["event"] == "request"]
    assert [log["client"] for log in requests] == ["acme", "default", "unauthenticated"]
    metrics = (await (await api.get("/metrics")).read()).decode()
    email = {"route": "/api/email", "method": "POST"}
    assert metric_value(metrics, "email_ingest_api_requests_total", {**email, "code": "200", "client": "acme"}) == 1
    assert metric_value(metrics, "email_ingest_api_requests_total", {**email, "client": "unauthenticated"}) == 1
    assert metric_value(metrics, "email_ingest_api_emails_accepted_total", {"client": "default"}) == 1
    rejected = {"reason": "unauthorized", "client": "unauthenticated"}
    assert metric_value(metrics, "email_ingest_api_rejections_total", rejected) == 1
    assert metric_value(metrics, "email_ingest_token_clients") == 2


async def test_a_client_over_its_limit_gets_429_while_another_is_served(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    limited = '{"token": "acme-token", "rate_limit_rps": 0.01, "rate_limit_burst": 2}'
    api = await aiohttp_client(app_with_fakes(api_token, clients={"acme": limited, "globex": "globex-token"}))
    assert [(await post_email(api, seed_payload("acme-token")))[0] for _ in range(2)] == [200, 200]
    status, headers, body = await post_email(api, seed_payload("acme-token"))
    assert_problem(status, headers, body, 429, "too-many-requests")
    assert 1 <= int(headers["Retry-After"]) <= 100, "a token every 100 s"
    assert "acme" in body["detail"] and "acme-token" not in body["detail"]
    assert [(await post_email(api, seed_payload("globex-token")))[0] for _ in range(20)] == [200] * 20
    assert (await post_email(api, seed_payload(api_token)))[0] == 200
    metrics = (await (await api.get("/metrics")).read()).decode()
    rate_limited = {"reason": "rate_limited", "client": "acme"}
    assert metric_value(metrics, "email_ingest_api_rejections_total", rate_limited) == 1
    assert metric_value(metrics, "email_ingest_api_requests_total", {"code": "429", "client": "acme"}) == 1
    assert metric_value(metrics, "email_ingest_api_emails_accepted_total", {"client": "acme"}) == 2


async def test_the_pods_default_limit_applies_to_every_client_without_one(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    api = await aiohttp_client(app_with_fakes(api_token, clients={"acme": "acme-token"}, rate_limit=RateLimit(0.01, 1)))
    for token in (api_token, "acme-token"):
        assert (await post_email(api, seed_payload(token)))[0] == 200
        assert (await post_email(api, seed_payload(token)))[0] == 429
    assert (await post_email(api, seed_payload("wrong")))[0] == 401, "no bucket before authentication"


# -- content codings ---------------------------------------------------------------------------------


def _encoded(payload: dict[str, Any], coding: str) -> bytes:
    raw = orjson.dumps(payload)
    return gzip.compress(raw) if coding == "gzip" else zlib.compress(raw)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "GZIP"])
async def test_a_compressed_body_is_taken(api: Api, api_token: str, coding: str) -> None:
    response = await api.post(
        "/api/email",
        data=_encoded(seed_payload(api_token), coding.lower()),
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert response.status == 200, await response.text()


async def test_a_plain_body_labelled_gzip_is_a_400_not_a_500(api: Api, api_token: str) -> None:
    response = await api.post(
        "/api/email",
        data=orjson.dumps(seed_payload(api_token)),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_problem(
        response.status, dict(response.headers), await response.json(content_type=None), 400, "malformed-body"
    )
    metrics = await (await api.get("/metrics")).text()
    assert metric_value(metrics, "email_ingest_api_rejections_total", {"reason": "invalid_encoding"}) == 1
    assert metric_value(metrics, "email_ingest_api_requests_total", {"code": "500"}) == 0


@pytest.mark.parametrize("coding", ["br", "xyz", "gzip, gzip", "x-gzip", "compress"])
async def test_a_coding_the_api_does_not_take_is_a_415_naming_those_it_does(
    api: Api, api_token: str, coding: str
) -> None:
    response = await api.post(
        "/api/email",
        data=orjson.dumps(seed_payload(api_token)),
        headers={"Content-Type": "application/json", "Content-Encoding": coding},
    )
    headers = dict(response.headers)
    assert_problem(
        response.status, headers, await response.json(content_type=None), 415, "unsupported-content-encoding"
    )
    assert headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_compressed_body_is_reserved_and_limited_by_its_decoded_size(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    """1.6 KB of gzip unpacks to 1.6 MB: the Content-Length says nothing of what the API will hold."""
    api = await aiohttp_client(app_with_fakes(api_token, memory_budget_bytes=1024 * 1024))
    fits_the_limit_not_the_budget = seed_payload(api_token, email_content="a" * 100_000)
    response = await api.post(
        "/api/email",
        data=_encoded(fits_the_limit_not_the_budget, "gzip"),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert len(_encoded(fits_the_limit_not_the_budget, "gzip")) < 2_000
    assert response.status == 200, "100 KB decoded: what it holds is within a 1 MiB budget"
    over_the_budget = seed_payload(api_token, email_content="a" * 600_000)
    response = await api.post(
        "/api/email",
        data=_encoded(over_the_budget, "gzip"),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status == 503 and response.headers["Retry-After"] == "1"
    over_the_limit = {"data": {"email_content": "a" * 2_000_000}}
    response = await api.post(
        "/api/email",
        data=_encoded(over_the_limit, "gzip"),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status in {413, 503}
    api2 = await aiohttp_client(app_with_fakes(api_token))
    response = await api2.post(
        "/api/email",
        data=_encoded(over_the_limit, "gzip"),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status == 413, "the body limit counts decoded bytes"
