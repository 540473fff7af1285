"""Unit tests of scripts/smoke.py: its arguments, its happy path and each way it reports a failure.

The API is a tiny http.server stub on 127.0.0.1; S3 is a moto server on 127.0.0.1 that the stub writes to the
way the consumer would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_PATH = REPO_ROOT / "scripts" / "smoke.py"
TOKEN = "s3cr3t-smoke-token"


def _load_smoke() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smoke_under_test", SMOKE_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


# --- stub API -------------------------------------------------------------------------------------


@dataclass
class StubApi:
    """What the stub answers; `on_post` gets the parsed request body and returns (status, body bytes)."""

    health_status: int = 200
    on_post: Callable[[dict[str, Any]], tuple[int, bytes]] = lambda _body: (500, b"no handler")
    requests: list[tuple[str, str]] = field(default_factory=list)
    idempotency_keys: list[str | None] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    state = StubApi()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if self.path == "/healthz":
                self._answer(state.health_status, b'{"status": "ok"}')
            else:
                self._answer(404, b"{}")

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            state.idempotency_keys.append(self.headers.get("Idempotency-Key"))
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path != "/api/email" or self.headers.get("Content-Type") != "application/json":
                self._answer(404, b"{}")
                return
            self._answer(*state.on_post(json.loads(raw)))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- S3 (moto) ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "SMOKE_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def consumer_like(
    s3_endpoint: str,
    bucket: str,
    *,
    delay: float = 0.0,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    store: bool = True,
) -> Callable[[dict[str, Any]], tuple[int, bytes]]:
    """A POST handler that checks the token, answers 200 and (after `delay`) stores the object as the consumer
    would."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def handle(body: dict[str, Any]) -> tuple[int, bytes]:
        if body.get("token") != TOKEN:
            return 401, b'{"status": "error", "message": "unauthorized"}'
        email = body["data"]
        email_id = uuid.uuid4().hex
        stored = {
            "email_id": email_id,
            "received_at": datetime.now(tz=UTC).isoformat(),
            "email_subject": email["email_subject"],
            "email_sender": email["email_sender"],
            "email_timestream": int(email["email_timestream"]),
            "email_content": email["email_content"],
        }
        if mutate:
            mutate(stored)
        key = smoke.object_key("emails/", email_id, int(email["email_timestream"]))

        def put() -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(stored).encode())

        if store:
            threading.Timer(delay, put).start() if delay else put()
        answer = {"status": "success", "message_id": "m-1", "email_id": email_id}
        return 200, json.dumps(answer).encode()

    return handle


def run_main(*args: str) -> int:
    result = smoke.main(list(args))
    assert isinstance(result, int)
    return result


def base_args(api_url: str, bucket: str, s3_endpoint: str, timeout: float = 3) -> list[str]:
    return [
        "--api-url",
        api_url,
        "--token",
        TOKEN,
        "--bucket",
        bucket,
        "--s3-endpoint-url",
        s3_endpoint,
        "--timeout",
        str(timeout),
    ]


# --- pure functions and arguments -----------------------------------------------------------------


def test_object_key_uses_the_utc_date_of_the_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2023-11-14T23:59:59Z is already the 15th in Tokyo: the key must still say the 14th.
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert smoke.object_key("emails/", "abc", 1700006399) == "emails/2023/11/14/abc.json"
        assert smoke.object_key("emails/", "abc", 1700006400) == "emails/2023/11/15/abc.json"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_token_comes_from_smoke_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOKE_TOKEN", "from-env")
    options = smoke.parse_args(["--api-url", "http://127.0.0.1:1/", "--bucket", "b"])
    assert options.token == "from-env"
    assert options.api_url == "http://127.0.0.1:1"  # trailing slash dropped
    assert options.region == "us-east-1"  # from AWS_REGION
    assert options.timeout == smoke.DEFAULT_TIMEOUT_SECONDS
    assert options.s3_endpoint_url is None


def test_token_flag_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOKE_TOKEN", "from-env")
    options = smoke.parse_args(["--api-url", "https://api.example.com", "--bucket", "b", "--token", "flag"])
    assert options.token == "flag"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--api-url", "http://127.0.0.1:1", "--bucket", "b"], "API token is required", id="no-token"),
        pytest.param(["--api-url", "ftp://127.0.0.1", "--bucket", "b", "--token", "t"], "http(s) URL", id="bad-scheme"),
        pytest.param(["--api-url", "127.0.0.1:8080", "--bucket", "b", "--token", "t"], "http(s) URL", id="no-scheme"),
        pytest.param(
            ["--api-url", "http://x", "--bucket", "b", "--token", "t", "--timeout", "0"],
            "positive",
            id="timeout-0",
        ),
        pytest.param(
            ["--api-url", "http://x", "--bucket", "b", "--token", "t", "--timeout", "soon"],
            "invalid float",
            id="timeout-nan",
        ),
        pytest.param(["--api-url", "http://x", "--token", "t"], "--bucket", id="no-bucket"),
        pytest.param(["--bucket", "b", "--token", "t"], "--api-url", id="no-api-url"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        smoke.parse_args(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_script_runs_as_a_command_and_rejects_a_missing_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "SMOKE_TOKEN"}
    completed = subprocess.run(
        [sys.executable, str(SMOKE_PATH), "--api-url", "http://127.0.0.1:1", "--bucket", "b"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "SMOKE_TOKEN" in completed.stderr


# --- end to end against the stubs -----------------------------------------------------------------


def test_happy_path_reports_ok_and_timings(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.on_post = consumer_like(s3_endpoint, bucket)
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint)) == 0
    out = capsys.readouterr().out
    assert "smoke: OK email_id=" in out
    assert "key=emails/" in out
    for timing in ("healthz=", "post=", "stored_after_post=", "total="):
        assert timing in out
    assert stub_api.requests == [("GET", "/healthz"), ("POST", "/api/email")]
    [key] = stub_api.idempotency_keys
    assert key, "the smoke test posts with an Idempotency-Key, so a rerun after a lost answer stores no duplicate"
    assert TOKEN not in out


def test_waits_for_an_object_that_arrives_late(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.on_post = consumer_like(s3_endpoint, bucket, delay=1.2)
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint, timeout=10)) == 0
    assert "smoke: OK" in capsys.readouterr().out


def test_unhealthy_api_fails_after_the_deadline(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.health_status = 503
    started = time.monotonic()
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint, timeout=1.5)) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "FAILED: API not healthy within 1.5s" in err
    assert "answered 503" in err
    assert ("POST", "/api/email") not in stub_api.requests
    assert len(stub_api.requests) >= 2  # it retried


def test_unreachable_api_fails_with_no_answer(
    s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A port that was just free: nothing listens on it.
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()
    assert run_main(*base_args(f"http://127.0.0.1:{port}", bucket, s3_endpoint, timeout=1)) == 1
    err = capsys.readouterr().err
    assert "API not healthy" in err
    assert "no answer" in err


def test_rejected_token_fails_without_printing_the_token(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.on_post = consumer_like(s3_endpoint, bucket)
    args = base_args(stub_api.url, bucket, s3_endpoint)
    args[args.index("--token") + 1] = "wrong-token"
    assert run_main(*args) == 1
    captured = capsys.readouterr()
    assert "answered 401 (expected 200)" in captured.err
    assert "unauthorized" in captured.err
    assert "wrong-token" not in captured.out + captured.err
    assert "timings before the failure: healthz=" in captured.err


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(b"<html>oops</html>", "not JSON", id="not-json"),
        pytest.param(b'{"status": "error", "email_id": "x"}', "without status=success", id="not-success"),
        pytest.param(b'{"status": "success", "message_id": "m"}', "without a usable email_id", id="no-email-id"),
        pytest.param(b'{"status": "success", "email_id": "../x"}', "without a usable email_id", id="bad-email-id"),
        pytest.param(b"[]", "without status=success", id="not-an-object"),
    ],
)
def test_bad_200_answers_fail(
    answer: bytes,
    message: str,
    stub_api: StubApi,
    s3_endpoint: str,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stub_api.on_post = lambda _body: (200, answer)
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint)) == 1
    assert message in capsys.readouterr().err


def test_missing_object_fails_after_the_deadline(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.on_post = consumer_like(s3_endpoint, bucket, store=False)
    started = time.monotonic()
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint, timeout=2)) == 1
    assert time.monotonic() - started < 6
    err = capsys.readouterr().err
    assert f"s3://{bucket}/emails/" in err
    assert "did not appear within 2s" in err
    assert "NoSuchKey" in err


def test_wrong_object_content_fails_and_names_the_field(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def corrupt(stored: dict[str, Any]) -> None:
        stored["email_subject"] = "something else"

    stub_api.on_post = consumer_like(s3_endpoint, bucket, mutate=corrupt)
    assert run_main(*base_args(stub_api.url, bucket, s3_endpoint)) == 1
    err = capsys.readouterr().err
    assert "does not hold the posted email" in err
    assert "email_subject='something else'" in err
    assert "email_content" not in err  # only the wrong field is named


def test_missing_bucket_fails_at_once(
    stub_api: StubApi, s3_endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stub_api.on_post = consumer_like(s3_endpoint, bucket, store=False)
    started = time.monotonic()
    assert run_main(*base_args(stub_api.url, "no-such-bucket-here", s3_endpoint, timeout=20)) == 1
    assert time.monotonic() - started < 10  # not a wait for the deadline
    assert "NoSuchBucket" in capsys.readouterr().err
