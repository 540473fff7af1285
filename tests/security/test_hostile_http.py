"""Hostile HTTP against the API process: clear 4xx answers, bounded memory, and the service stays up.

Memory is the API process's RSS (psutil) before and after the whole barrage; each case also checks that
/healthz still answers 200 afterwards.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from collections.abc import Iterator

import psutil
import pytest

from api_service.config import DEFAULT_MAX_BODY_BYTES as MAX_BODY_BYTES
from devstack.metrics_text import metric_value
from devstack.processes import http_status
from tests.reliability.harness import FaultyPipeline, http_text

RSS_GROWTH_LIMIT = 64 * 1024 * 1024
GOOD = {"email_subject": "s", "email_sender": "a@example.com", "email_timestream": 1693561101, "email_content": "c"}


def _port(pipeline: FaultyPipeline) -> int:
    return int(pipeline.api_url.rsplit(":", 1)[1])


def _send(
    pipeline: FaultyPipeline,
    body: bytes | Iterator[bytes],
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """A POST with the token; the response (its headers) and its raw body."""
    connection = http.client.HTTPConnection("127.0.0.1", _port(pipeline), timeout=30)
    try:
        all_headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {pipeline.token}",
            **(headers or {}),
        }
        connection.request(
            "POST", "/api/email", body=body, headers=all_headers, encode_chunked=not isinstance(body, bytes)
        )
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def _post(
    pipeline: FaultyPipeline,
    body: bytes | Iterator[bytes],
    headers: dict[str, str] | None = None,
) -> tuple[int, str, dict[str, object]]:
    response, raw = _send(pipeline, body, headers)
    return response.status, response.getheader("Content-Type", ""), json.loads(raw)


def _rss(pipeline: FaultyPipeline) -> int:
    assert pipeline.stack.api is not None
    return int(psutil.Process(pipeline.stack.api.pid).memory_info().rss)


@pytest.fixture(scope="module")
def baseline_rss(secured: FaultyPipeline) -> int:
    """The API's RSS before the module's first case (the last test compares against it)."""
    return _rss(secured)


@pytest.fixture
def api(pipeline: FaultyPipeline, baseline_rss: int) -> FaultyPipeline:
    return pipeline


def assert_still_up(pipeline: FaultyPipeline) -> None:
    assert http_status(f"{pipeline.api_url}/healthz") == 200, "the API must answer /healthz after the case"


CASES: dict[str, tuple[bytes | None, int, str]] = {
    "deeply nested array": (b"[" * 100_000 + b"]" * 100_000, 400, "malformed-json"),
    "deeply nested in a field": (
        b'{"data": {"email_subject": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        400,
        "malformed-json",
    ),
    "number past double range": (
        b'{"data": {"email_subject": "s", "email_sender": "a", "email_content": "c", "email_timestream": 1e400}}',
        400,
        "malformed-json",
    ),
    "integer past 64 bits": (
        json.dumps({"data": {**GOOD, "email_timestream": 10**40}}).encode(),
        400,
        "invalid-payload",
    ),
    "huge digit string": (
        json.dumps({"data": {**GOOD, "email_timestream": "9" * 100_000}}).encode(),
        400,
        "invalid-payload",
    ),
    "invalid UTF-8": (b'{"data": {"email_subject": "\xff\xfe\xc3("}}', 400, "malformed-json"),
    "lone surrogate escape": (
        json.dumps({"data": {**GOOD, "email_subject": "x"}}).replace('"x"', '"\\ud800"').encode(),
        400,
        "malformed-json",
    ),
    "NUL and control characters": (
        json.dumps({"data": {**GOOD, "email_sender": "a\u0000b\u001b[31m"}}).encode(),
        400,
        "invalid-payload",
    ),
    "not an object": (b'"just a string"', 400, "invalid-payload"),
    "empty body": (b"", 400, "malformed-json"),
    "too large": (
        json.dumps({"data": {**GOOD, "email_content": "a" * (MAX_BODY_BYTES + 1)}}).encode(),
        413,
        "payload-too-large",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_bodies_get_clear_4xx(api: FaultyPipeline, name: str) -> None:
    body, status, slug = CASES[name]
    assert body is not None
    answer_status, content_type, document = _post(api, body)
    assert (answer_status, content_type) == (status, "application/problem+json")
    assert document["type"] == f"https://email-ingest.dev/problems/{slug}"
    assert document["status"] == status
    assert_still_up(api)


def test_body_limit_holds_for_chunked_uploads(api: FaultyPipeline) -> None:
    chunks = iter([b'{"data": {"email_content": "'] + [b"a" * 65_536] * 32 + [b'"}}'])  # ~2 MiB, no length
    assert MAX_BODY_BYTES < 32 * 65_536
    status, _, document = _post(api, chunks)
    assert status == 413
    assert str(document["type"]).endswith("/payload-too-large")
    assert_still_up(api)


def test_a_lying_content_length_is_refused_before_the_body(api: FaultyPipeline) -> None:
    with socket.create_connection(("127.0.0.1", _port(api)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000000\r\n\r\n{"
        )
        started = time.monotonic()
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:100]
    assert time.monotonic() - started < 2
    assert_still_up(api)


def test_slowloris_does_not_starve_the_api(api: FaultyPipeline) -> None:
    connections = [socket.create_connection(("127.0.0.1", _port(api)), timeout=10) for _ in range(300)]
    request = b"POST /api/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Padding: "
    try:
        for index in range(len(request)):  # every connection sends its headers one byte per round
            for sock in connections:
                sock.sendall(request[index : index + 1])
            if index % 20 == 0:
                started = time.monotonic()
                assert http_status(f"{api.api_url}/healthz", timeout=2) == 200
                assert time.monotonic() - started < 1.0
            time.sleep(0.02)
        assert psutil.Process(api.stack.api.pid).num_fds() >= 300  # type: ignore[union-attr]
    finally:
        for sock in connections:
            sock.close()
    assert_still_up(api)


def test_many_connections_and_concurrent_bad_requests(api: FaultyPipeline) -> None:
    idle = [socket.create_connection(("127.0.0.1", _port(api)), timeout=10) for _ in range(1000)]
    try:
        assert http_status(f"{api.api_url}/healthz") == 200
        statuses = [_post(api, b'{"data": {}}')[0] for _ in range(50)]
        assert statuses == [400] * 50
    finally:
        for sock in idle:
            sock.close()
    assert_still_up(api)


ANSWER_MAX_BYTES = 64 * 1024


def _many_unknown_keys(count: int) -> bytes:
    """A body just under the limit: `count` distinct unknown keys, half beside `data`, half inside it, and a few long
    ones of control characters (the worst for an answer that quoted them: six bytes of JSON each)."""
    long_key = "\u0001" * 1_000
    inside = {f"k{index}": 1 for index in range(count // 2)}
    beside = {f"x{index}": 1 for index in range(count - count // 2)}
    document = {"data": {**GOOD, **inside, long_key: 1}, **beside, long_key + "x": 1}
    return json.dumps(document, separators=(",", ":")).encode()


def test_many_unknown_fields_answer_stays_bounded(api: FaultyPipeline) -> None:
    """140,000 distinct unknown keys once got a 7.59 MB answer (an error each): now at most 64 KiB."""
    body = _many_unknown_keys(140_000)
    assert 1_500_000 < len(body) < MAX_BODY_BYTES
    response, raw = _send(api, body)
    assert response.status == 400
    assert len(raw) <= ANSWER_MAX_BYTES, f"a {len(raw)}-byte answer"
    errors = json.loads(raw)["errors"]
    details = {error["pointer"]: error["detail"] for error in errors}
    assert details["/data"] == "has 69981 more unknown fields, not listed"  # 70,001 unknown in data, 20 listed
    assert details[""] == "has 69981 more unknown fields, not listed"
    assert all(len(error["pointer"]) <= 2 * 128 for error in errors), "long keys are cut"
    assert_still_up(api)


def _reserved_bytes(api: FaultyPipeline) -> float:
    return metric_value(http_text(f"{api.api_url}/metrics"), "email_ingest_api_memory_reserved_bytes")


def test_answers_nobody_reads_hold_no_memory_outside_the_budget(api: FaultyPipeline) -> None:
    """40 clients send the 140,000-key body and never read their answers: the API's memory grew from 92 to 785
    MiB while the budget read 0. With bounded answers it stays within the budget, and the budget is released."""
    body = _many_unknown_keys(140_000)
    head = (
        b"POST /api/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    budget = metric_value(http_text(f"{api.api_url}/metrics"), "email_ingest_api_memory_budget_bytes")
    before = _rss(api)
    sockets = []
    try:
        for _ in range(40):
            sock = socket.create_connection(("127.0.0.1", _port(api)), timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that reads nothing
            sock.sendall(head + body)
            sockets.append(sock)
        deadline = time.monotonic() + 60
        while _reserved_bytes(api) > 0 or psutil.Process(api.stack.api.pid).num_fds() < 40:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the reservations are released once the answers are written"
            time.sleep(0.2)
        growth = _rss(api) - before
        assert growth < budget, (
            f"RSS grew {growth / 2**20:.0f} MiB with the answers unread (budget {budget / 2**20:.0f})"
        )
    finally:
        for sock in sockets:
            sock.close()
    assert_still_up(api)


def _requests_with_code(api: FaultyPipeline, code: str) -> float:
    metrics = http_text(f"{api.api_url}/metrics")
    return sum(
        metric_value(metrics, "email_ingest_api_requests_total", {"code": code, "client": client})
        for client in ("unauthenticated", "default")
    )


def test_a_hang_up_mid_upload_is_a_499_not_a_server_error(api: FaultyPipeline) -> None:
    """Content-Length 500, 28 bytes, then the client closes: counted as a 500 with a traceback at error level, so
    that anyone, without a token, could page on-call through the 5xx burn-rate alerts. Now a 499 and one line."""
    errors_before, hang_ups_before = _requests_with_code(api, "500"), _requests_with_code(api, "499")
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", _port(api)), timeout=10) as sock:
            sock.sendall(
                b"POST /api/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 500\r\n\r\n" + b'{"data": {"email_subject": "'
            )
    deadline = time.monotonic() + 10
    while _requests_with_code(api, "499") < hang_ups_before + 5:
        assert time.monotonic() < deadline, "every hang-up is counted as a 499"
        time.sleep(0.1)
    assert _requests_with_code(api, "500") == errors_before, "no 5xx"
    log = (api.log_dir / "api.log").read_text(errors="replace")
    assert '"event":"request_failed"' not in log and "Traceback" not in log
    assert_still_up(api)


@pytest.mark.parametrize(
    ("coding", "status", "slug"),
    [
        ("zstd", 415, "unsupported-content-encoding"),  # refused by the parser: no zstd module (as in the image)
        ("br", 415, "unsupported-content-encoding"),  # refused by the API, whether or not brotli is installed
        ("xyz", 415, "unsupported-content-encoding"),
        ("gzip", 400, "malformed-body"),  # a plain body labelled gzip: once a 500
        ("deflate", 400, "malformed-body"),
    ],
)
def test_a_body_that_does_not_match_its_content_encoding_is_a_4xx(
    api: FaultyPipeline, coding: str, status: int, slug: str
) -> None:
    errors_before = _requests_with_code(api, "500")
    response, raw = _send(api, json.dumps({"data": GOOD}).encode(), {"Content-Encoding": coding})
    document = json.loads(raw)
    assert (response.status, response.getheader("Content-Type")) == (status, "application/problem+json")
    assert document["type"] == f"https://email-ingest.dev/problems/{slug}"
    if status == 415:
        assert response.getheader("Accept-Encoding") == "gzip, deflate"
    assert _requests_with_code(api, "500") == errors_before
    assert_still_up(api)


def test_a_gzip_body_is_taken(api: FaultyPipeline) -> None:
    status, _, document = _post(api, gzip.compress(json.dumps({"data": GOOD}).encode()), {"Content-Encoding": "gzip"})
    assert status == 200, document


def test_memory_stays_bounded_through_the_barrage(api: FaultyPipeline, baseline_rss: int) -> None:
    """Last in the module: the API's RSS after every case above, against the baseline taken before them."""
    growth = _rss(api) - baseline_rss
    assert growth < RSS_GROWTH_LIMIT, f"API RSS grew by {growth / 2**20:.1f} MiB"
