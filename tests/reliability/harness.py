"""The faulty pipeline the reliability and security tests share, and helpers to drive and account for it.

The pipeline is the real one: moto as a server, the API and the consumer as processes (devstack.DevStack),
with a fault proxy (devstack.faultproxy) in front of SQS (the API's and the consumer's endpoint), S3 (the
consumer's) and SSM (the API's). The accounting (Ledger, verify) is devstack.accounting, so the soak and
these tests count the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from devstack import accounting
from devstack.bootstrap import StackNames, emulator_client
from devstack.faultproxy import FaultProxy, Mode
from devstack.metrics_text import metric_value
from devstack.stack import DevStack, StackConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
SOAK_PATH = REPO_ROOT / "scripts" / "soak.py"

# Small on purpose: a fault test must see the deadline, the staleness limit and redeliveries within seconds.
PUBLISH_DEADLINE_SECONDS = 2.0
TOKEN_REFRESH_SECONDS = 1.0
TOKEN_MAX_STALENESS_SECONDS = 3.0
VISIBILITY_TIMEOUT_SECONDS = 5


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FaultyPipeline:
    stack: DevStack
    proxies: dict[str, FaultProxy]
    log_dir: Path

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    @property
    def consumer_url(self) -> str:
        return self.stack.consumer_url

    @property
    def token(self) -> str:
        return self.stack.token

    @property
    def bucket(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.bucket

    @property
    def queue_url(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.queue_url

    @property
    def dlq_url(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.dead_letter_queue_url

    def s3(self) -> Any:
        return emulator_client("s3", self.stack.endpoint_url)

    def sqs(self) -> Any:
        return emulator_client("sqs", self.stack.sqs_endpoint_url)

    def reset_faults(self) -> None:
        for proxy in self.proxies.values():
            proxy.set_mode(Mode.PASS)

    def ensure_consumer(self) -> None:
        if self.stack.consumer is None or not self.stack.consumer.running():
            self.stack.start_consumer()

    def consumer_metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(http_text(f"{self.consumer_url}/metrics"), name, labels)

    def api_metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(http_text(f"{self.api_url}/metrics"), name, labels)

    def queue_depth(self) -> tuple[int, int]:
        return accounting.queue_depths(self.sqs(), self.queue_url)

    def wait_queue_empty(self, timeout: float = 30.0) -> tuple[int, int]:
        deadline = time.monotonic() + timeout
        depth = self.queue_depth()
        while depth != (0, 0) and time.monotonic() < deadline:
            time.sleep(0.5)
            depth = self.queue_depth()
        return depth


def start_pipeline(
    log_dir: Path,
    *,
    with_consumer: bool = True,
    token: str | None = None,
    api_env: dict[str, str] | None = None,
    consumer_env: dict[str, str] | None = None,
) -> FaultyPipeline:
    names = StackNames(
        visibility_timeout_seconds=VISIBILITY_TIMEOUT_SECONDS, max_receive_count=20, receive_wait_seconds=1
    )
    config = StackConfig(names=names, with_api=False, with_consumer=False, log_dir=log_dir, token=token)
    stack = DevStack(config)
    proxies: dict[str, FaultProxy] = {}
    try:
        stack.start()
        proxies = {
            "sqs": FaultProxy.for_url(stack.sqs_endpoint_url, name="sqs").start(),
            "s3": FaultProxy.for_url(stack.endpoint_url, name="s3").start(),
            "ssm": FaultProxy.for_url(stack.endpoint_url, name="ssm").start(),
        }
        assert stack.resources is not None
        emulator_client("s3", stack.endpoint_url).put_bucket_versioning(
            Bucket=stack.resources.bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        config.api_env.update(
            {
                "AWS_ENDPOINT_URL_SQS": proxies["sqs"].endpoint_url,
                "AWS_ENDPOINT_URL_SSM": proxies["ssm"].endpoint_url,
                "PUBLISH_DEADLINE_SECONDS": str(PUBLISH_DEADLINE_SECONDS),
                "TOKEN_REFRESH_SECONDS": str(TOKEN_REFRESH_SECONDS),
                "TOKEN_MAX_STALENESS_SECONDS": str(TOKEN_MAX_STALENESS_SECONDS),
                **(api_env or {}),
            }
        )
        config.consumer_env.update(
            {
                "AWS_ENDPOINT_URL_SQS": proxies["sqs"].endpoint_url,
                "AWS_ENDPOINT_URL_S3": proxies["s3"].endpoint_url,
                "SQS_WAIT_TIME_SECONDS": "1",
                "QUEUE_METRICS_INTERVAL_SECONDS": "1",
                **(consumer_env or {}),
            }
        )
        stack.start_api()
        if with_consumer:
            stack.start_consumer()
    except BaseException:
        for proxy in proxies.values():
            proxy.stop()
        stack.stop()
        raise
    return FaultyPipeline(stack=stack, proxies=proxies, log_dir=log_dir)


def stop_pipeline(pipeline: FaultyPipeline) -> None:
    for proxy in pipeline.proxies.values():
        proxy.stop()
    pipeline.stack.stop()


def pipeline_fixture(log_dir: Path, **kwargs: Any) -> Iterator[FaultyPipeline]:
    pipeline = start_pipeline(log_dir, **kwargs)
    try:
        yield pipeline
    finally:
        stop_pipeline(pipeline)


def http_text(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def emails_for(run_id: str, count: int, day: date, start: int = 0) -> list[tuple[int, dict[str, Any]]]:
    return [(index, accounting.make_email(run_id, index, day=day)) for index in range(start, start + count)]


async def _post_all(
    api_url: str, token: str, emails: Sequence[tuple[int, dict[str, Any]]], run_id: str, concurrency: int
) -> list[Reply]:
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(index: int, data: dict[str, Any]) -> Reply:
            async with semaphore:
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{run_id}-{index}"}
                started = time.monotonic()
                async with session.post(f"{api_url}/api/email", json={"data": data}, headers=headers) as response:
                    raw = await response.read()
                    return Reply(
                        response.status,
                        json.loads(raw) if raw else {},
                        time.monotonic() - started,
                        dict(response.headers),
                    )

        return await asyncio.gather(*(one(index, data) for index, data in emails))


def post_all(
    pipeline: FaultyPipeline,
    emails: Sequence[tuple[int, dict[str, Any]]],
    *,
    run_id: str,
    ledger: Any,
    concurrency: int = 8,
) -> list[Reply]:
    """Posts each email once (no retries); records every 200 in the ledger; returns every reply."""
    replies = asyncio.run(_post_all(pipeline.api_url, pipeline.token, emails, run_id, concurrency))
    for (index, data), reply in zip(emails, replies, strict=True):
        if reply.status == 200:
            ledger.acknowledge(accounting.Acknowledged(index, reply.body["email_id"], reply.body["message_id"], data))
    return replies


def statuses(replies: Sequence[Reply]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for reply in replies:
        counts[reply.status] = counts.get(reply.status, 0) + 1
    return counts


def day_prefix(day: date) -> str:
    return f"emails/{day:%Y/%m/%d}/"


def settle_and_verify(pipeline: FaultyPipeline, ledger: Any, day: date, *, timeout: float = 90.0) -> Any:
    """Waits until the day's object count reaches the acknowledged count (and holds), then verifies exactly."""
    s3 = pipeline.s3()
    accounting.wait_for_count(
        s3, pipeline.bucket, day_prefix(day), len(ledger.acknowledged), timeout=timeout, stable_seconds=1.5
    )
    return accounting.verify(s3, pipeline.bucket, ledger, prefixes=(day_prefix(day),))
