"""The API's spans in-process on fakes: the server span, the publish span and the traceparent sent with the message;
the request histogram's exemplars on /metrics when the scraper asks for OpenMetrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from opentelemetry.trace import SpanKind, StatusCode

from api_service.app import create_app
from api_service.config import ApiSettings
from api_service.keys import TRACER
from ingest_common.envelope import TRACEPARENT_ATTRIBUTE, parse_message
from tests.aws_helpers import seed_payload
from tests.support.api import post_email
from tests.support.fakes import FakeSendQueue, FakeTokenSource
from tests.support.spans import RecordedSpans

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
SETTINGS = ApiSettings(
    region="us-east-1",
    queue_url="https://sqs.us-east-1.amazonaws.com/000000000000/emails",
    token_parameter_name="/email-ingest/test/api-token",
    publish_linger_seconds=0.001,
)


async def traced_api(
    aiohttp_client: ClientFactory, token: str, recorded: RecordedSpans | None, queue: FakeSendQueue
) -> TestClient[web.Request, web.Application]:
    app = create_app(SETTINGS, queue=queue, token_source=FakeTokenSource(token))
    if recorded is not None:  # what the tracing cleanup context sets when OTEL_* turns tracing on
        app[TRACER] = recorded.tracer
    return await aiohttp_client(app)


async def test_one_email_is_a_server_span_with_a_publish_span_whose_context_travels_with_the_message(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    recorded, queue = RecordedSpans(), FakeSendQueue()
    api = await traced_api(aiohttp_client, api_token, recorded, queue)
    status, headers, body = await post_email(api, seed_payload(api_token))
    assert status == 200, body

    [server] = recorded.named("POST /api/email")
    [publish] = recorded.named("send emails")
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/api/email"
    assert server.attributes["email_ingest.request_id"] == headers["X-Request-ID"]
    assert publish.kind is SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == server.context.span_id
    assert publish.attributes is not None
    assert publish.attributes["messaging.message.id"] == body["message_id"]
    assert publish.attributes["email_ingest.email_id"] == body["email_id"]

    [[entry]] = queue.batches
    traceparent = entry["MessageAttributes"][TRACEPARENT_ATTRIBUTE]["StringValue"]
    context = publish.context
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    assert context.trace_flags.sampled
    # Each email's context travels inside its envelope item too: a pack carries one per email.
    assert parse_message(entry["MessageBody"]).envelopes[0].traceparent == traceparent


async def test_a_callers_traceparent_is_continued(aiohttp_client: ClientFactory, api_token: str) -> None:
    recorded = RecordedSpans()
    api = await traced_api(aiohttp_client, api_token, recorded, FakeSendQueue())
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, _, _ = await post_email(api, seed_payload(api_token), headers={"traceparent": caller})
    assert status == 200
    [server] = recorded.named("POST /api/email")
    assert f"{server.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server.parent is not None and f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"


async def test_a_publish_that_fails_is_an_error_span_and_a_503(aiohttp_client: ClientFactory, api_token: str) -> None:
    recorded = RecordedSpans()
    api = await traced_api(aiohttp_client, api_token, recorded, FakeSendQueue(error=ValueError("refused")))
    status, _, _ = await post_email(api, seed_payload(api_token))
    assert status == 503
    [server] = recorded.named("POST /api/email")
    [publish] = recorded.named("send emails")
    assert publish.status.status_code is StatusCode.ERROR
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 503


async def test_the_request_histogram_has_the_trace_as_exemplar_in_openmetrics_only(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    recorded = RecordedSpans()
    api = await traced_api(aiohttp_client, api_token, recorded, FakeSendQueue())
    assert (await post_email(api, seed_payload(api_token)))[0] == 200
    [server] = recorded.named("POST /api/email")

    openmetrics = await api.get("/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await openmetrics.text()
    assert text.rstrip().endswith("# EOF")
    bucket_lines = [
        line
        for line in text.splitlines()
        if line.startswith("email_ingest_api_request_duration_seconds_bucket") and 'route="/api/email"' in line
    ]
    assert any(f'# {{trace_id="{server.context.trace_id:032x}"}}' in line for line in bucket_lines), bucket_lines

    plain = await api.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "trace_id" not in await plain.text()


async def test_off_nothing_is_traced_and_the_message_carries_no_traceparent(
    aiohttp_client: ClientFactory, api_token: str
) -> None:
    queue = FakeSendQueue()
    api = await traced_api(aiohttp_client, api_token, None, queue)
    assert (await post_email(api, seed_payload(api_token)))[0] == 200
    [[entry]] = queue.batches
    assert set(entry["MessageAttributes"]) == {"request_id"}
    assert "trace_id" not in await (await api.get("/metrics", headers={"Accept": OPENMETRICS})).text()
