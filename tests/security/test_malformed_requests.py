"""Requests the HTTP parser refuses, and HTTP errors raised before any handler, against the API process.

Each carries the real (recognisable) token where a client could put it by mistake: a bearer token read from a file
with CRLF endings leaves a CR behind it; other control bytes, in Authorization, in another header and in the
request line; a header longer than the parser takes; an `Expect` it does not know. Every answer must be
problem+json without a byte of the token, and every line the API logged must be one JSON object without it.
Before, aiohttp answered text/plain quoting the header line (token included) and logged a multi-line traceback
quoting it again.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from devstack.metrics_text import metric_value
from tests.reliability.harness import FaultyPipeline, http_text

BODY = b'{"data": {}}'


def _raw(pipeline: FaultyPipeline, request: bytes) -> tuple[bytes, bytes]:
    """(status line and headers, body) of the answer to raw request bytes; the server closes after a refusal."""
    port = int(pipeline.api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def _post(target: bytes, headers: list[bytes]) -> bytes:
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    lines += headers
    lines.append(b"Content-Length: %d" % len(BODY))
    return b"\r\n".join(lines) + b"\r\n\r\n" + BODY


def _cases(token: bytes) -> dict[str, tuple[bytes, int]]:
    cases: dict[str, tuple[bytes, int]] = {}
    for name, byte in {"cr": b"\r", "nul": b"\x00", "soh": b"\x01", "esc": b"\x1b", "del": b"\x7f"}.items():
        cases[f"authorization-{name}"] = (_post(b"/api/email", [b"Authorization: Bearer " + token + byte]), 400)
        cases[f"other-header-{name}"] = (_post(b"/api/email", [b"X-Note: " + token + byte + b"x"]), 400)
        cases[f"request-line-{name}"] = (_post(b"/api/email?t=" + token + byte, []), 400)
    # A bare LF ends the header early; what follows (the token's second half) is read as a broken header line.
    half = len(token) // 2
    cases["authorization-lf"] = (
        _post(b"/api/email", [b"Authorization: Bearer " + token[:half] + b"\n" + token[half:]]),
        400,
    )
    cases["header-too-long"] = (_post(b"/api/email", [b"Authorization: Bearer " + token + b"x" * 9000]), 431)
    cases["request-line-too-long"] = (_post(b"/api/email?t=" + token + b"x" * 9000, []), 431)
    cases["unknown-expect"] = (_post(b"/api/email", [b"Expect: " + token]), 417)
    cases["unknown-expect-on-a-missing-route"] = (_post(b"/nowhere", [b"Expect: " + token]), 417)
    return cases


@pytest.mark.parametrize("name", sorted(_cases(b"t")))
def test_a_refused_request_is_answered_in_problem_json_without_echoing_it(
    pipeline: FaultyPipeline, canary_token: str, name: str
) -> None:
    token = canary_token.encode()
    request, expected = _cases(token)[name]
    head, body = _raw(pipeline, request)
    status_line, *header_lines = head.split(b"\r\n")
    assert int(status_line.split()[1]) == expected, (name, head, body)
    headers = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in header_lines}
    assert headers[b"content-type"] == b"application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == expected and problem["type"].startswith("https://email-ingest.dev/problems/")
    assert problem["request_id"] == headers[b"x-request-id"].decode()
    random_part = token.split(b"-", 1)[1]
    assert random_part[:8] not in head + body, "no part of the token is echoed"
    assert http_text(f"{pipeline.api_url}/healthz"), "the API still serves"


def test_refusals_are_counted_and_logged_as_json_lines_without_the_token(
    pipeline: FaultyPipeline, canary_token: str
) -> None:
    token = canary_token.encode()
    before = metric_value(
        http_text(f"{pipeline.api_url}/metrics"), "email_ingest_api_rejections_total", {"reason": "malformed_request"}
    )
    cases = _cases(token)
    for request, _ in cases.values():
        _raw(pipeline, request)
    refused_by_parser = sum(1 for _, status in cases.values() if status != 417)
    after = metric_value(
        http_text(f"{pipeline.api_url}/metrics"), "email_ingest_api_rejections_total", {"reason": "malformed_request"}
    )
    assert after - before >= refused_by_parser
    log_path = pipeline.log_dir / "api.log"
    deadline = time.monotonic() + 10
    while log_path.read_text(errors="replace").count('"event":"request_refused"') < len(cases):
        assert time.monotonic() < deadline, "every refusal is logged"
        time.sleep(0.1)
    text = log_path.read_bytes()
    random_part = token.split(b"-", 1)[1]
    assert random_part[:8] not in text, "the token is in the API's log"
    for line in text.decode(errors="replace").splitlines():
        if line.strip():
            assert isinstance(json.loads(line), dict), f"not one JSON object: {line[:200]!r}"
