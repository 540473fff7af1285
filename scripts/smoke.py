#!/usr/bin/env python3
"""End-to-end smoke test of an email-ingest deployment: the local stack or a deployed URL.

1. ``GET /healthz`` answers 200 (retried until the deadline, so it can follow a start-up);
2. ``POST /api/email`` with a unique email answers 200 ``{"status": "success", "email_id": ...}``;
3. the object ``<prefix>YYYY/MM/DD/<email_id>.json`` (UTC date of ``email_timestream``) appears in the
   bucket and holds that email.

Each step's duration is reported; any failure exits 1 with one line that says what went wrong (2 for bad
arguments). Standard library and boto3 only, so CI can run it with nothing but ``pip install boto3``.

    python scripts/smoke.py --api-url https://api.example.com --bucket my-emails --region eu-west-1
    SMOKE_TOKEN=... python scripts/smoke.py --api-url http://127.0.0.1:8080 --bucket emails \\
        --s3-endpoint-url http://127.0.0.1:5000

S3 credentials and endpoint follow boto3's usual chain (``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, ...); ``--s3-endpoint-url`` overrides the endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_KEY_PREFIX = "emails/"
POLL_INTERVAL_SECONDS = 0.5
MAX_HTTP_TIMEOUT_SECONDS = 10.0
BODY_EXCERPT_CHARS = 300
# S3 answers 403 instead of 404 for a missing key when the caller may not list the bucket: both mean
# "not yet".
MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound", "AccessDenied", "403"})


class SmokeError(Exception):
    """A failed check; its message is the one line the script prints."""


@dataclass(frozen=True)
class Options:
    api_url: str
    token: str
    bucket: str
    region: str | None
    timeout: float
    s3_endpoint_url: str | None
    key_prefix: str
    sender: str


@dataclass
class Report:
    timings: dict[str, float] = field(default_factory=dict)
    email_id: str = ""
    key: str = ""


def object_key(prefix: str, email_id: str, email_timestream: int) -> str:
    """The contract's S3 key ``<prefix>YYYY/MM/DD/<email_id>.json``, dated by the timestamp's UTC date."""
    day = datetime.fromtimestamp(email_timestream, tz=UTC)
    return f"{prefix}{day:%Y/%m/%d}/{email_id}.json"


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="smoke.py",
        description="Post one email through an email-ingest deployment and wait for it in S3.",
    )
    parser.add_argument("--api-url", required=True, help="base URL of the API, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help="API token (default: $SMOKE_TOKEN)")
    parser.add_argument("--bucket", required=True, help="bucket the consumer writes to")
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        help="AWS region of the bucket (default: $AWS_REGION / $AWS_DEFAULT_REGION)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"overall deadline in seconds (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        help="S3 endpoint for an emulator (default: boto3's own, which honours $AWS_ENDPOINT_URL[_S3])",
    )
    parser.add_argument(
        "--key-prefix", default=DEFAULT_KEY_PREFIX, help=f"S3 key prefix (default {DEFAULT_KEY_PREFIX})"
    )
    parser.add_argument(
        "--sender",
        default="smoke-test@example.com",
        help="email_sender of the test email (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    token = args.token if args.token is not None else os.environ.get("SMOKE_TOKEN", "")
    if not token:
        parser.error("an API token is required: pass --token or set SMOKE_TOKEN")
    api_url = str(args.api_url).rstrip("/")
    parsed = urllib.parse.urlsplit(api_url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        parser.error(f"--api-url must be an http(s) URL, got {args.api_url!r}")
    if not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    if not args.bucket.strip():
        parser.error("--bucket must not be empty")
    return Options(
        api_url=api_url,
        token=token,
        bucket=args.bucket,
        region=args.region or None,
        timeout=float(args.timeout),
        s3_endpoint_url=args.s3_endpoint_url or None,
        key_prefix=args.key_prefix,
        sender=args.sender,
    )


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= BODY_EXCERPT_CHARS else text[:BODY_EXCERPT_CHARS] + "..."


def _http(
    method: str, url: str, *, timeout: float, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """One request; returns (status, body) for any HTTP answer, raises SmokeError when there is none."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise SmokeError(f"{method} {url}: no answer ({reason})") from exc


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def _request_timeout(deadline: float) -> float:
    return min(MAX_HTTP_TIMEOUT_SECONDS, max(_remaining(deadline), 0.1))


def check_health(options: Options, deadline: float) -> None:
    url = f"{options.api_url}/healthz"
    last = ""
    while True:
        try:
            status, body = _http("GET", url, timeout=_request_timeout(deadline))
        except SmokeError as exc:
            last = str(exc)
        else:
            if status == 200:
                return
            last = f"GET {url} answered {status}: {_excerpt(body)}"
        if _remaining(deadline) <= POLL_INTERVAL_SECONDS:
            raise SmokeError(f"API not healthy within {options.timeout:g}s: {last}")
        time.sleep(POLL_INTERVAL_SECONDS)


def post_email(options: Options, email: dict[str, str], deadline: float) -> str:
    url = f"{options.api_url}/api/email"
    payload = json.dumps({"data": email, "token": options.token}).encode()
    # A key, as every client that may retry should send: a rerun after a lost answer stores no duplicate.
    headers = {"Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    status, body = _http("POST", url, body=payload, headers=headers, timeout=_request_timeout(deadline))
    if status != 200:
        raise SmokeError(f"POST {url} answered {status} (expected 200): {_excerpt(body)}")
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise SmokeError(f"POST {url} answered 200 with a body that is not JSON: {_excerpt(body)}") from exc
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise SmokeError(f"POST {url} answered 200 without status=success: {_excerpt(body)}")
    email_id = answer.get("email_id")
    if not isinstance(email_id, str) or not email_id or "/" in email_id:
        raise SmokeError(f"POST {url} answered 200 without a usable email_id: {_excerpt(body)}")
    return email_id


def _s3_client(options: Options) -> Any:
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10)
    return boto3.client("s3", region_name=options.region, endpoint_url=options.s3_endpoint_url, config=config)


def wait_for_object(options: Options, key: str, deadline: float) -> dict[str, Any]:
    s3 = _s3_client(options)
    where = f"s3://{options.bucket}/{key}"
    last = "not found"
    while True:
        try:
            response = s3.get_object(Bucket=options.bucket, Key=key)
            body = response["Body"].read()
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in MISSING_KEY_CODES:
                raise SmokeError(f"reading {where} failed: {code or exc}") from exc
            last = f"last answer {code}"
        except botocore.exceptions.NoCredentialsError as exc:
            raise SmokeError(f"no AWS credentials to read {where}: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            last = f"last error: {exc}"
        else:
            try:
                stored = json.loads(body)
            except ValueError as exc:
                raise SmokeError(f"{where} is not JSON: {_excerpt(body)}") from exc
            if not isinstance(stored, dict):
                raise SmokeError(f"{where} is not a JSON object: {_excerpt(body)}")
            return stored
        if _remaining(deadline) <= POLL_INTERVAL_SECONDS:
            raise SmokeError(f"{where} did not appear within {options.timeout:g}s ({last})")
        time.sleep(POLL_INTERVAL_SECONDS)


def verify_object(stored: dict[str, Any], email_id: str, email: dict[str, str], key: str) -> None:
    expected = {"email_id": email_id, **email}
    # email_timestream is posted as a string and may be stored as a number: compare the text.
    wrong = [
        f"{name}={stored.get(name)!r} (expected {value!r})"
        for name, value in expected.items()
        if str(stored.get(name)) != value
    ]
    if wrong:
        raise SmokeError(f"{key} does not hold the posted email: " + "; ".join(wrong))


def run(options: Options, report: Report) -> None:
    deadline = time.monotonic() + options.timeout
    started = time.monotonic()

    check_health(options, deadline)
    report.timings["healthz"] = time.monotonic() - started

    now = int(time.time())
    nonce = uuid.uuid4().hex
    email = {
        "email_subject": f"email-ingest smoke test {nonce}",
        "email_sender": options.sender,
        "email_timestream": str(now),
        "email_content": f"Smoke test {nonce} at {datetime.fromtimestamp(now, tz=UTC).isoformat()}.",
    }
    posted = time.monotonic()
    report.email_id = post_email(options, email, deadline)
    report.timings["post"] = time.monotonic() - posted

    report.key = object_key(options.key_prefix, report.email_id, now)
    stored = wait_for_object(options, report.key, deadline)
    report.timings["stored_after_post"] = time.monotonic() - posted
    verify_object(stored, report.email_id, email, report.key)
    report.timings["total"] = time.monotonic() - started


def _format_timings(timings: dict[str, float]) -> str:
    return " ".join(f"{name}={seconds * 1000:.0f}ms" for name, seconds in timings.items())


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    report = Report()
    target = f"s3://{options.bucket}/{options.key_prefix}"
    print(f"smoke: {options.api_url} -> {target} (timeout {options.timeout:g}s)")
    try:
        run(options, report)
    except SmokeError as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        if report.timings:
            print(f"smoke: timings before the failure: {_format_timings(report.timings)}", file=sys.stderr)
        return 1
    print(f"smoke: OK email_id={report.email_id} key={report.key}")
    print(f"smoke: timings {_format_timings(report.timings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
