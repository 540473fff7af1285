"""The token never shows up in logs, error bodies, headers, metrics, SQS messages or S3 objects.

Every error path is driven with the real (recognisable) token in the request: in the body, as a bearer token,
in a query string, and inside wrong tokens (a wrong token that contains the real one would leak it just as
well). Both services log at debug level. Then everything they produced is searched for the token.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from api_service.config import DEFAULT_MAX_BODY_BYTES as MAX_BODY_BYTES
from devstack import accounting
from devstack.faultproxy import Mode
from devstack.processes import http_status
from tests.reliability.harness import FaultyPipeline, http_text
from tests.security.conftest import TOKEN_MAX_STALENESS_SECONDS

DAY = date(2030, 2, 1)


@dataclass
class Answer:
    name: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _request(
    pipeline: FaultyPipeline,
    name: str,
    method: str,
    path: str,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    port = int(pipeline.api_url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=not isinstance(body, bytes))
        response = connection.getresponse()
        return Answer(name, response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def _email(index: int) -> dict[str, object]:
    return accounting.make_email("leak", index, day=DAY)


def _drive(pipeline: FaultyPipeline, token: str) -> list[Answer]:
    json_type = {"Content-Type": "application/json"}
    bearer = {"Authorization": f"Bearer {token}"}
    answers = [
        _request(
            pipeline,
            "ok-body",
            "POST",
            "/api/email",
            json.dumps({"data": _email(1), "token": token}).encode(),
            json_type,
        ),
        _request(
            pipeline,
            "ok-bearer",
            "POST",
            "/api/email",
            json.dumps({"data": _email(2)}).encode(),
            {**json_type, **bearer},
        ),
        _request(pipeline, "malformed", "POST", "/api/email", f'{{"token": "{token}", "data": {{'.encode(), json_type),
        _request(
            pipeline,
            "invalid",
            "POST",
            "/api/email",
            json.dumps({"token": token, "data": {"email_subject": "", "email_timestream": token}}).encode(),
            {**json_type, **bearer},
        ),
        _request(
            pipeline,
            "wrong-body",
            "POST",
            "/api/email",
            json.dumps({"data": _email(3), "token": token + "-no"}).encode(),
            json_type,
        ),
        _request(
            pipeline,
            "wrong-bearer",
            "POST",
            "/api/email",
            json.dumps({"data": _email(4)}).encode(),
            {**json_type, "Authorization": f"Bearer x{token}"},
        ),
        _request(
            pipeline,
            "too-large",
            "POST",
            "/api/email",
            json.dumps({"token": token, "data": {**_email(5), "email_content": "a" * MAX_BODY_BYTES}}).encode(),
            {**json_type, **bearer},
        ),
        _request(
            pipeline,
            "too-large-chunked",
            "POST",
            "/api/email",
            iter([json.dumps({"token": token}).encode(), b" " * MAX_BODY_BYTES, b" " * 1024]),
            {**json_type, **bearer},
        ),
        _request(
            pipeline,
            "media-type",
            "POST",
            "/api/email",
            f"token={token}".encode(),
            {"Content-Type": "text/plain", **bearer},
        ),
        _request(pipeline, "method", "GET", f"/api/email?token={token}", None, bearer),
        _request(pipeline, "not-found", "GET", f"/nothing-here?token={token}", None, bearer),
    ]
    proxies = pipeline.proxies
    proxies["sqs"].set_mode(Mode.REFUSE)
    try:
        answers.append(
            _request(
                pipeline,
                "publish-failed",
                "POST",
                "/api/email",
                json.dumps({"data": _email(6), "token": token}).encode(),
                json_type,
            )
        )
    finally:
        proxies["sqs"].set_mode(Mode.PASS)
    proxies["ssm"].set_mode(Mode.BLACKHOLE)
    try:
        time.sleep(TOKEN_MAX_STALENESS_SECONDS + 1.5)
        answers.append(
            _request(
                pipeline,
                "token-unavailable",
                "POST",
                "/api/email",
                json.dumps({"data": _email(7), "token": token}).encode(),
                json_type,
            )
        )
    finally:
        proxies["ssm"].set_mode(Mode.PASS)
    deadline = time.monotonic() + 10
    while http_status(f"{pipeline.api_url}/readyz") != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    return answers


EXPECTED = {
    "ok-body": 200,
    "ok-bearer": 200,
    "malformed": 400,
    "invalid": 400,
    "wrong-body": 401,
    "wrong-bearer": 401,
    "too-large": 413,
    "too-large-chunked": 413,
    "media-type": 415,
    "method": 405,
    "not-found": 404,
    "publish-failed": 503,
    "token-unavailable": 503,
}


def test_the_token_appears_nowhere(pipeline: FaultyPipeline, canary_token: str) -> None:
    token = canary_token
    assert pipeline.token == token
    assert pipeline.stack.consumer is not None
    pipeline.stack.consumer.stop()  # keep the messages in SQS to read them there
    answers = _drive(pipeline, token)
    assert {answer.name: answer.status for answer in answers} == EXPECTED
    for answer in answers:
        assert token not in answer.body.decode(errors="replace"), answer
        assert all(token not in f"{name}: {value}" for name, value in answer.headers), answer

    sqs = pipeline.sqs()
    messages = sqs.receive_message(
        QueueUrl=pipeline.queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        VisibilityTimeout=0,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    ).get("Messages", [])
    assert len(messages) == 2, messages  # the two 200s, nothing else
    assert token not in json.dumps(messages)

    pipeline.stack.start_consumer()
    s3 = pipeline.s3()
    assert accounting.wait_for_count(s3, pipeline.bucket, f"emails/{DAY:%Y/%m/%d}/", 2, timeout=60) == 2
    for version in accounting.list_versions(s3, pipeline.bucket, "emails/"):
        body = s3.get_object(Bucket=pipeline.bucket, Key=version["Key"])["Body"].read().decode()
        assert token not in body

    for url in (pipeline.api_url, pipeline.consumer_url):
        metrics = http_text(f"{url}/metrics")
        assert "email_ingest_" in metrics
        assert token not in metrics

    # Stop both (their log lines are flushed on exit), then search every log file of the run.
    assert pipeline.stack.api is not None
    pipeline.stack.api.stop()
    pipeline.stack.consumer.stop()
    logs = {path.name: path.read_text(errors="replace") for path in pipeline.log_dir.glob("*.log")}
    assert {"api.log", "consumer.log"} <= set(logs)
    assert logs["api.log"].count('"event":"request"') >= len(EXPECTED), "the API log lacks its access lines"
    assert '"level":"debug"' in logs["api.log"] + logs["consumer.log"] or "emails_stored" in logs["consumer.log"]
    for name, text in logs.items():
        assert token not in text, f"the token is in {name}"
        assert token.split("-", 1)[1] not in text, f"the token's random part is in {name}"
