#!/usr/bin/env python3
"""Soak: N emails through the whole local pipeline while faults are injected, with exact accounting.

The pipeline is the real one on 127.0.0.1: the API and the consumer as processes (devstack.DevStack), SQS on
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

With ``--layout batched`` the consumer writes gzip NDJSON batches (STORAGE_LAYOUT=batched, BATCH_MAX_SECONDS=2):
every acknowledged email must be a line of a batch under ``batches/dt=.../hour=.../`` (the hour of its
received_at) with the content sent, nothing unacknowledged may be there, and the queues must be empty. Delivery
is at least once in that layout, so an email written twice (a consumer killed after a batch's write, before its
deletes) is counted as a duplicate line, not a failure: the last line is
``acknowledged N, stored N, missing 0, duplicate lines D (in B batches)``.

    python scripts/soak.py                       # 100,000 emails (takes a while: moto's S3 stores ~200/s)
    python scripts/soak.py --emails 1500 --fault-seconds 2

The client is devstack.sender and the accounting devstack.accounting, which the reliability tests and the
benchmark share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.accounting import (
    BATCH_KEY_PREFIX,
    KEY_PREFIX,
    Ledger,
    Verdict,
    make_email,
    queue_depths,
    verify,
    verify_batched,
    wait_for_count,
    wait_for_empty_queue,
)
from devstack.bootstrap import StackNames, emulator_client
from devstack.faultproxy import FaultProxy, Mode
from devstack.gofakes3 import GoFakeS3Server
from devstack.sender import send_all
from devstack.stack import DevStack, StackConfig

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
    layout: str = "per-email"  # per-email | batched
    stack: DevStack | None = None
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
        stack = self.stack = DevStack(config)
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
                    "STORAGE_LAYOUT": self.layout,
                    "BATCH_MAX_SECONDS": "2",
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
        bucket = stack.resources.bucket
        sqs = emulator_client("sqs", stack.sqs_endpoint_url)
        # Every acknowledged email must arrive; allow for moto's pace (~150/s) and the faults' redeliveries.
        timeout = 120 + len(ledger.acknowledged) / 20
        verdict: Verdict
        if self.layout == "batched":
            # No key per email to count: wait for the queue to empty (held messages are in flight), then read.
            await asyncio.to_thread(wait_for_empty_queue, sqs, stack.resources.queue_url, timeout=timeout)
            self.log(f"queue empty after {time.monotonic() - started:.1f} s; verifying the batches")
            main_depth = queue_depths(sqs, stack.resources.queue_url)
            dlq_depth = queue_depths(sqs, stack.resources.dead_letter_queue_url)
            verdict = await asyncio.to_thread(
                verify_batched, s3, bucket, ledger, prefix=BATCH_KEY_PREFIX, check_content=self.verify_content
            )
        else:
            prefix = KEY_PREFIX + "2031/"
            count = await asyncio.to_thread(
                wait_for_count, s3, bucket, prefix, len(ledger.acknowledged), timeout=timeout, stable_seconds=3
            )
            self.log(f"{count} objects after {time.monotonic() - started:.1f} s; verifying")
            await asyncio.sleep(2)
            main_depth = queue_depths(sqs, stack.resources.queue_url)
            dlq_depth = queue_depths(sqs, stack.resources.dead_letter_queue_url)
            # gofakes3 lists one page of versions and cannot page further (it panics on a key marker): with it,
            # current objects are counted and overwrites are left to If-None-Match, which it honours.
            versioned = None if self._servers == [] else False
            verdict = await asyncio.to_thread(
                verify, s3, bucket, ledger, prefixes=(prefix,), check_content=self.verify_content, versioned=versioned
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
    parser.add_argument(
        "--layout", choices=("per-email", "batched"), default="per-email", help="the consumer's STORAGE_LAYOUT"
    )
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
            layout=args.layout,
        )
        return soak.run()


if __name__ == "__main__":
    sys.exit(main())
