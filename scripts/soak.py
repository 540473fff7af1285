#!/usr/bin/env python3
"""Soak: N emails through the whole local pipeline while faults are injected, with exact accounting.

The pipeline is the real one on 127.0.0.1: the API and the consumer as processes (devstack.LocalStack), SQS on
ElasticMQ when it is installed (moto's SQS serves ~450 msgs/s and slows as its backlog grows) or moto, S3 and
SSM on moto. Fault proxies (devstack.faultproxy) sit in front of SQS (the API's and the consumer's), of S3 (the
consumer's) and of SSM (the API's). While a client sends the emails, with an Idempotency-Key each and retrying
503s and connection errors as a well-behaved client does, the faults of the schedule are injected one after
another: SQS refused, blackholed and slowed, S3 refused and blackholed, SSM refused, and the consumer SIGKILLed
mid-batch and restarted.

Accounting, at the end: every acknowledged email (HTTP 200) must be in S3 exactly once under
``emails/YYYY/MM/DD/<email_id>.json`` with exactly the content sent (the bucket is versioned, so up to 20,000
emails an overwrite counts as a duplicate; past that moto lists versions too slowly and only current objects
are counted), nothing may be stored that was never acknowledged, the queues are empty and the
DLQ holds nothing. The last line is ``acknowledged N, stored N, missing 0, duplicates 0``; the exit code is 0
only when that holds for all N emails (1 otherwise, 2 for bad arguments).

    python scripts/soak.py                       # 100,000 emails (takes a while: moto's S3 stores ~200/s)
    python scripts/soak.py --emails 1500 --fault-seconds 2

This module is also the accounting library of tests/reliability (Ledger, send_all, verify).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in {None, ""}:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api_service.ids import email_id_for
from devstack.bootstrap import StackNames, emulator_client
from devstack.faultproxy import FaultProxy, Mode
from devstack.gofakes3 import GoFakeS3Server
from devstack.stack import LocalStack, StackConfig

KEY_PREFIX = "emails/"
CLIENT_RETRY_AFTER_CAP_SECONDS = 2.0  # honour Retry-After, capped so that a run keeps its pace
CLIENT_GIVE_UP_SECONDS = 120.0  # one email's retry budget in the client


# -- the emails ---------------------------------------------------------------------------------------------


def make_email(run_id: str, index: int, *, day: date, days: int = 1) -> dict[str, Any]:
    """A unique, recognisable email dated on `day` (+ index % days); some timestamps are digit strings."""
    rng = random.Random(f"{run_id}:{index}")  # noqa: S311 - test data
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        days=index % days, seconds=rng.randrange(86_400)
    )
    seconds = int(moment.timestamp())
    padding = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz\n") for _ in range(rng.randrange(0, 600)))
    return {
        "email_subject": f"soak {run_id} #{index} — Grüße",
        "email_sender": f"sender-{index}@example.com",
        "email_timestream": str(seconds) if index % 3 == 0 else seconds,
        "email_content": f"email {index} of run {run_id} ✉ 🚀\n{padding}",
    }


def expected_object(email_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the consumer must store for an email (received_at is checked for its format only)."""
    return {
        "email_id": email_id,
        "email_subject": data["email_subject"],
        "email_sender": data["email_sender"],
        "email_timestream": int(data["email_timestream"]),
        "email_content": data["email_content"],
    }


def object_key(email_id: str, data: dict[str, Any], prefix: str = KEY_PREFIX) -> str:
    day = datetime.fromtimestamp(int(data["email_timestream"]), tz=UTC)
    return f"{prefix}{day:%Y/%m/%d}/{email_id}.json"


# -- the client and its ledger ------------------------------------------------------------------------------


@dataclass
class Acknowledged:
    index: int
    email_id: str
    message_id: str
    data: dict[str, Any]


@dataclass
class Ledger:
    """What the API answered: every 200 with its email_id, and a count of every status."""

    acknowledged: dict[str, Acknowledged] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    problems: list[str] = field(default_factory=list)  # answers that break the contract
    gave_up: list[int] = field(default_factory=list)  # emails never acknowledged (client budget spent)
    slowest_503_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: int, elapsed: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            if status == 503:
                self.slowest_503_seconds = max(self.slowest_503_seconds, elapsed)

    def acknowledge(self, entry: Acknowledged) -> None:
        with self.lock:
            if entry.email_id in self.acknowledged:
                self.problems.append(f"email_id {entry.email_id} acknowledged twice")
            self.acknowledged[entry.email_id] = entry

    def problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 50:
                self.problems.append(text)


async def post_email(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    data: dict[str, Any],
    *,
    idempotency_key: str,
    ledger: Ledger,
) -> tuple[int, dict[str, Any], float]:
    """One POST, always with a key (its retries must map to one object); returns (status, JSON body or {},
    seconds). Connection errors come back as status 0."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key}
    started = time.monotonic()
    try:
        async with session.post(f"{api_url}/api/email", json={"data": data}, headers=headers) as response:
            body = await response.read()
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError):
        with ledger.lock:
            ledger.connection_errors += 1
        return 0, {}, time.monotonic() - started
    elapsed = time.monotonic() - started
    ledger.record(status, elapsed)
    try:
        document: dict[str, Any] = json.loads(body) if body else {}
    except ValueError:
        document = {}
    if status == 503 and not (retry_after and retry_after.isdigit()):
        ledger.problem(f"503 without a numeric Retry-After: {retry_after!r}")
    if status == 503:
        document["_retry_after"] = int(retry_after) if retry_after and retry_after.isdigit() else 1
    return status, document, elapsed


async def send_email(
    session: aiohttp.ClientSession,
    api_url: str,
    token: str,
    index: int,
    data: dict[str, Any],
    *,
    run_id: str,
    ledger: Ledger,
    retry: bool,
) -> int:
    """Sends one email; with `retry`, retries 503s and connection errors until acknowledged. Returns the status."""
    key = f"{run_id}-{index}"
    give_up_at = time.monotonic() + CLIENT_GIVE_UP_SECONDS
    while True:
        status, document, _ = await post_email(session, api_url, token, data, idempotency_key=key, ledger=ledger)
        if status == 200:
            email_id = str(document.get("email_id", ""))
            if email_id != email_id_for(key) or not document.get("message_id"):
                ledger.problem(f"200 with an unexpected body for #{index}: {document}")
            ledger.acknowledge(Acknowledged(index, email_id, str(document.get("message_id")), data))
            return status
        if status not in {0, 503}:
            ledger.problem(f"#{index}: unexpected status {status}: {document}")
            return status
        if not retry or time.monotonic() > give_up_at:
            if retry:
                ledger.gave_up.append(index)
            return status
        wait = min(float(document.get("_retry_after", 1)), CLIENT_RETRY_AFTER_CAP_SECONDS) if status else 0.2
        await asyncio.sleep(wait * random.uniform(0.5, 1.0))  # noqa: S311 - jitter


async def send_all(
    api_url: str,
    token: str,
    emails: Sequence[tuple[int, dict[str, Any]]],
    *,
    run_id: str,
    ledger: Ledger,
    concurrency: int = 16,
    retry: bool = True,
    on_progress: Callable[[int], None] | None = None,
    rate: float | None = None,
) -> Counter[int]:
    """Sends every email with `concurrency` requests in flight (at most `rate` new ones a second).

    Returns how many ended with each final status.
    """
    results: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    position = [0]
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in emails:
        queue.put_nowait(item)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                index, data = queue.get_nowait()
                if rate:
                    position[0] += 1
                    delay = started + position[0] / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                status = await send_email(
                    session, api_url, token, index, data, run_id=run_id, ledger=ledger, retry=retry
                )
                results[status] += 1
                if on_progress is not None:
                    on_progress(sum(results.values()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


# -- verification -------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    acknowledged: int
    stored: int  # acknowledged emails found exactly once with the right content
    missing: int  # acknowledged, not in S3
    duplicates: int  # extra object versions / extra keys for one email_id
    unexpected: int  # stored, never acknowledged
    mismatched: int  # stored with other content, or under another key
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.stored == self.acknowledged
            and self.missing == 0
            and self.duplicates == 0
            and self.unexpected == 0
            and self.mismatched == 0
        )

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, stored {self.stored}, "
            f"missing {self.missing}, duplicates {self.duplicates}"
        )


def list_versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object version under `prefix` (the bucket is versioned: an overwrite shows as two versions)."""
    versions: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        versions.extend(page.get("Versions", []))
        versions.extend({**marker, "DeleteMarker": True} for marker in page.get("DeleteMarkers", []))
    return versions


def list_keys(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every current object under `prefix` (no versions)."""
    objects: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


# moto's ListObjectVersions rescans the whole bucket for every page (~20 s a page at 100k objects): past this
# many emails the soak lists current objects instead, and overwrites are left to If-None-Match alone.
VERSIONED_CHECK_MAX = 20_000


def count_objects(s3: Any, bucket: str, prefix: str) -> int:
    return sum(
        page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )


def verify(
    s3: Any,
    bucket: str,
    ledger: Ledger,
    *,
    prefixes: Iterable[str] = (KEY_PREFIX,),
    check_content: bool = True,
    workers: int = 8,
    versioned: bool | None = None,
) -> Verdict:
    """Compares the bucket under `prefixes` with the ledger: exact counts, keys and contents.

    With `versioned` (the default up to VERSIONED_CHECK_MAX emails) every object version counts, so an
    overwritten object shows as a duplicate; without, only current objects (one email under two keys still does).
    """
    if versioned is None:
        versioned = len(ledger.acknowledged) <= VERSIONED_CHECK_MAX
    versions: list[dict[str, Any]] = []
    for prefix in prefixes:
        versions.extend(list_versions(s3, bucket, prefix) if versioned else list_keys(s3, bucket, prefix))
    per_id: dict[str, list[dict[str, Any]]] = {}
    for version in versions:
        email_id = version["Key"].rsplit("/", 1)[-1].removesuffix(".json")
        per_id.setdefault(email_id, []).append(version)
    details: list[str] = []
    duplicates = sum(len(found) - 1 for found in per_id.values())
    if duplicates:
        details.extend(
            f"{email_id}: {len(found)} versions/keys" for email_id, found in per_id.items() if len(found) > 1
        )
    unexpected = [email_id for email_id in per_id if email_id not in ledger.acknowledged]
    details.extend(f"stored, never acknowledged: {email_id}" for email_id in unexpected[:20])
    missing = [email_id for email_id in ledger.acknowledged if email_id not in per_id]
    details.extend(f"acknowledged, not stored: {email_id}" for email_id in missing[:20])

    def check(entry: Acknowledged) -> str | None:
        found = per_id.get(entry.email_id)
        if not found:
            return None
        key = object_key(entry.email_id, entry.data)
        if found[0]["Key"] != key:
            return f"{entry.email_id}: stored as {found[0]['Key']}, expected {key}"
        if not check_content:
            return ""
        stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        received_at = stored.pop("received_at", None)
        if stored != expected_object(entry.email_id, entry.data):
            return f"{entry.email_id}: content differs: {stored!r}"
        if not isinstance(received_at, str) or not received_at.endswith("Z"):
            return f"{entry.email_id}: bad received_at {received_at!r}"
        return ""

    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(check, ledger.acknowledged.values()))
    mismatched = [outcome for outcome in outcomes if outcome]
    details.extend(mismatched[:20])
    stored = sum(1 for outcome in outcomes if outcome == "")
    return Verdict(
        acknowledged=len(ledger.acknowledged),
        stored=stored,
        missing=len(missing),
        duplicates=duplicates,
        unexpected=len(unexpected),
        mismatched=len(mismatched),
        details=details,
    )


def wait_for_count(
    s3: Any, bucket: str, prefix: str, expected: int, *, timeout: float, stable_seconds: float = 0.0
) -> int:
    """Polls the object count under `prefix` until it reaches `expected` (and stays there) or time runs out."""
    deadline = time.monotonic() + timeout
    count = count_objects(s3, bucket, prefix)
    while time.monotonic() < deadline:
        if count >= expected:
            if stable_seconds:
                time.sleep(stable_seconds)
                count = count_objects(s3, bucket, prefix)
            return count
        time.sleep(0.5)
        count = count_objects(s3, bucket, prefix)
    return count


def queue_depths(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def metric_value(text: str, name: str, labels: str = "") -> float:
    """The sum of a metric's samples whose label set contains `labels` (exposition text)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{" if labels else name) and labels in line:
            head, _, value = line.rpartition(" ")
            if head.split("{", 1)[0] == name:
                total += float(value)
    return total


# -- the soak -----------------------------------------------------------------------------------------------


FAULTS = (
    "consumer-kill",
    "sqs-refuse",
    "s3-refuse",
    "ssm-refuse",
    "sqs-blackhole",
    "consumer-kill",
    "sqs-latency",
    "s3-blackhole",
)


@dataclass
class Soak:
    emails: int
    concurrency: int
    fault_seconds: float
    rounds: int
    sqs: str  # auto | elasticmq | moto
    log_dir: Path
    s3: str = "auto"  # auto | gofakes3 | moto
    verify_content: bool = True
    rate: float | None = None
    stack: LocalStack | None = None
    proxies: dict[str, FaultProxy] = field(default_factory=dict)
    injected: list[str] = field(default_factory=list)
    kills: int = 0

    def log(self, text: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)

    def _elasticmq(self, names: StackNames) -> Any:
        if self.sqs == "moto":
            return None
        try:
            from devstack.elasticmq import ElasticMQServer  # noqa: PLC0415 - optional
        except ImportError:
            if self.sqs == "elasticmq":
                raise
            return None
        server = ElasticMQServer(
            queue_name=names.queue,
            dlq_name=names.dead_letter_queue,
            max_receive_count=names.max_receive_count,
            visibility_timeout_seconds=names.visibility_timeout_seconds,
            receive_wait_seconds=0,
            work_dir=self.log_dir / "elasticmq",
        )
        if self.sqs == "auto" and not (server.install_dir / "lib").is_dir():
            self.log("ElasticMQ is not installed (scripts/tools/install-elasticmq.sh): SQS on moto")
            return None
        server.start()
        return server

    async def _inject(self, fault: str) -> None:
        assert self.stack is not None
        self.injected.append(fault)
        self.log(f"fault: {fault} for {self.fault_seconds:g} s")
        if fault == "consumer-kill":
            assert self.stack.consumer is not None
            self.stack.consumer.kill()
            self.kills += 1
            await asyncio.sleep(self.fault_seconds / 2)
            await asyncio.to_thread(self.stack.start_consumer)
            return
        target, mode = fault.split("-")
        proxy = self.proxies[target]
        proxy.set_mode(Mode.LATENCY if mode == "latency" else Mode(mode), latency=0.2 if mode == "latency" else 0)
        try:
            await asyncio.sleep(self.fault_seconds)
        finally:
            proxy.set_mode(Mode.PASS)

    async def _faults(self, progress: Callable[[], int]) -> None:
        schedule = list(FAULTS) * self.rounds
        for number, fault in enumerate(schedule, start=1):
            threshold = self.emails * number // (len(schedule) + 1)
            while progress() < threshold:  # noqa: ASYNC110 - a counter the sender updates
                await asyncio.sleep(0.1)
            await self._inject(fault)

    def _gofakes3(self) -> str | None:
        """gofakes3 as S3 when installed: moto keeps every object in one Python process and grew to ~21 GB
        at 100k emails here, swapping the machine; gofakes3 is a Go server with an in-memory backend."""
        if self.s3 == "moto":
            return None
        server = GoFakeS3Server(log_path=self.log_dir / "gofakes3.log", quiet=True)
        if not server.installed():
            if self.s3 == "gofakes3":
                raise SystemExit(f"gofakes3 is not installed at {server.binary} (scripts/tools/install-gofakes3.sh)")
            return None
        self._servers.append(server)
        server.start()
        return server.endpoint_url

    def run(self) -> int:
        run_id = uuid.uuid4().hex[:8]
        names = StackNames(max_receive_count=50, visibility_timeout_seconds=10, receive_wait_seconds=20)
        mq = self._elasticmq(names)
        self.log(f"run {run_id}: {self.emails} emails, SQS on {'ElasticMQ' if mq else 'moto'}")
        config = StackConfig(names=names, with_api=False, with_consumer=False, log_dir=self.log_dir)
        if mq is not None:
            config.sqs_endpoint_url = mq.endpoint_url
        stack = self.stack = LocalStack(config)
        self._servers: list[GoFakeS3Server] = []
        try:
            stack.start()
            assert stack.resources is not None
            s3_url = self._gofakes3() or stack.endpoint_url
            self.log(f"S3 on {'gofakes3' if s3_url != stack.endpoint_url else 'moto'}")
            s3 = emulator_client("s3", s3_url)
            if s3_url != stack.endpoint_url:
                s3.create_bucket(Bucket=stack.resources.bucket)
            try:
                s3.put_bucket_versioning(Bucket=stack.resources.bucket, VersioningConfiguration={"Status": "Enabled"})
            except Exception as exc:  # then overwrites are caught by the key and count checks only
                self.log(f"bucket versioning unavailable ({exc}); duplicates are checked by keys and counts")
            self.proxies = {
                "sqs": FaultProxy.for_url(stack.sqs_endpoint_url, name="sqs").start(),
                "s3": FaultProxy.for_url(s3_url, name="s3").start(),
                "ssm": FaultProxy.for_url(stack.endpoint_url, name="ssm").start(),
            }
            config.api_env.update(
                {
                    "AWS_ENDPOINT_URL_SQS": self.proxies["sqs"].endpoint_url,
                    "AWS_ENDPOINT_URL_SSM": self.proxies["ssm"].endpoint_url,
                    "PUBLISH_DEADLINE_SECONDS": "2",
                    "TOKEN_REFRESH_SECONDS": "1",
                    "TOKEN_MAX_STALENESS_SECONDS": "2",
                    "LOG_LEVEL": "warning",
                }
            )
            config.consumer_env.update(
                {
                    "AWS_ENDPOINT_URL_SQS": self.proxies["sqs"].endpoint_url,
                    "AWS_ENDPOINT_URL_S3": self.proxies["s3"].endpoint_url,
                    "SQS_WAIT_TIME_SECONDS": "2",
                    "QUEUE_METRICS_INTERVAL_SECONDS": "2",
                    "LOG_LEVEL": "warning",
                }
            )
            stack.start_api()
            stack.start_consumer()
            return asyncio.run(self._drive(run_id, s3))
        finally:
            for proxy in self.proxies.values():
                proxy.stop()
            stack.stop()
            for server in self._servers:
                server.stop()
            if mq is not None:
                mq.stop()

    async def _drive(self, run_id: str, s3: Any) -> int:
        stack = self.stack
        assert stack is not None
        assert stack.resources is not None
        ledger = Ledger()
        started = time.monotonic()
        day = date(2031, 1, 1)
        emails = [(index, make_email(run_id, index, day=day, days=28)) for index in range(self.emails)]
        answered = [0]

        def progress(count: int) -> None:
            answered[0] = count
            if count % max(1, self.emails // 10) == 0:
                self.log(f"answered {count}/{self.emails} ({count / (time.monotonic() - started):.0f}/s)")

        faults = asyncio.create_task(self._faults(lambda: len(ledger.acknowledged)))
        await send_all(
            stack.api_url,
            stack.token,
            emails,
            run_id=run_id,
            ledger=ledger,
            concurrency=self.concurrency,
            on_progress=progress,
            rate=self.rate,
        )
        sent_seconds = time.monotonic() - started
        if not faults.done():  # the schedule is spread over the acknowledgements: it ends with them
            await asyncio.wait_for(faults, timeout=120)
        self.log(
            f"sent in {sent_seconds:.1f} s: statuses {dict(ledger.statuses)}, "
            f"connection errors {ledger.connection_errors}, slowest 503 {ledger.slowest_503_seconds:.2f} s"
        )
        prefix = KEY_PREFIX + "2031/"
        bucket = stack.resources.bucket
        # Every acknowledged email must arrive; allow for moto's pace (~150/s) and the faults' redeliveries.
        timeout = 120 + len(ledger.acknowledged) / 20
        count = await asyncio.to_thread(
            wait_for_count, s3, bucket, prefix, len(ledger.acknowledged), timeout=timeout, stable_seconds=3
        )
        self.log(f"{count} objects after {time.monotonic() - started:.1f} s; verifying")
        sqs = emulator_client("sqs", stack.sqs_endpoint_url)
        await asyncio.sleep(2)
        main_depth = queue_depths(sqs, stack.resources.queue_url)
        dlq_depth = queue_depths(sqs, stack.resources.dead_letter_queue_url)
        verdict = await asyncio.to_thread(
            verify, s3, bucket, ledger, prefixes=(prefix,), check_content=self.verify_content
        )
        total = time.monotonic() - started
        for problem in [*ledger.problems, *verdict.details][:40]:
            self.log(f"problem: {problem}")
        self.log(
            f"faults injected: {len(self.injected)} ({', '.join(self.injected)}); consumer kills: {self.kills}; "
            f"queue (visible, in flight) {main_depth}, DLQ {dlq_depth}; unexpected {verdict.unexpected}, "
            f"mismatched {verdict.mismatched}, gave up {len(ledger.gave_up)}; "
            f"{total:.1f} s, {len(ledger.acknowledged) / total:.0f} emails/s end to end"
        )
        ok = (
            verdict.ok
            and verdict.acknowledged == self.emails
            and not ledger.problems
            and not ledger.gave_up
            and dlq_depth == (0, 0)
        )
        print(verdict.line(), flush=True)
        return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=100_000, help="emails to send (default 100000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--fault-seconds", type=float, default=3.0, help="how long each fault lasts (default 3)")
    parser.add_argument("--rounds", type=int, default=0, help="passes over the fault list (0: 1 per 5,000 emails)")
    parser.add_argument("--rate", type=float, default=0, help="emails/s to send (0: spread over the faults)")
    parser.add_argument("--sqs", choices=("auto", "elasticmq", "moto"), default="auto", help="SQS server")
    parser.add_argument("--s3", choices=("auto", "gofakes3", "moto"), default="auto", help="S3 server")
    parser.add_argument("--log-dir", type=Path, default=None, help="service logs (default: a temporary folder)")
    parser.add_argument("--no-content-check", action="store_true", help="check keys and counts, not contents")
    args = parser.parse_args(argv)
    if args.emails < 1 or args.concurrency < 1 or args.fault_seconds <= 0 or args.rounds < 0 or args.rate < 0:
        parser.error("--emails, --concurrency and --fault-seconds must be positive, --rounds and --rate not negative")
    rounds = args.rounds or max(1, min(10, args.emails // 5000))
    # Pace the client so that sending lasts as long as the fault schedule (plus room for recoveries):
    # the faults on the API's side need traffic while they last.
    rate = args.rate or args.emails / (len(FAULTS) * rounds * args.fault_seconds * 1.5)
    with contextlib.ExitStack() as cleanup:
        log_dir = args.log_dir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        soak = Soak(
            emails=args.emails,
            concurrency=args.concurrency,
            fault_seconds=args.fault_seconds,
            rounds=rounds,
            sqs=args.sqs,
            s3=args.s3,
            log_dir=log_dir,
            verify_content=not args.no_content_check,
            rate=rate,
        )
        return soak.run()


if __name__ == "__main__":
    sys.exit(main())
