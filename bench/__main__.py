"""`make bench` (python -m bench): every figure of the performance goals, side by side with its baseline.

One run, one machine, the same load generator (wrk) for the API and its ceiling:
 1. the ceiling: a bare aiohttp handler parsing the same JSON;
 2. the API publishing to ElasticMQ: requests/s, p50/p99, CPU per accepted email, RSS;
 3. SQS requests per stored email (send + receive + delete + visibility), from the services' own metrics;
 4. the consumer against a bare receive -> put -> delete loop, same concurrency, same endpoints;
 5. end-to-end latency (API 200 -> object stored) at a fixed moderate rate;
 6. overload at several times what SQS can absorb: share shed with 503, RSS before and after;
 7. zero-loss accounting for the whole run;
 8. what it costs: AWS requests per email from both services' own counters at three loads (16 and 64 clients on
    moto, saturated on the fast stack), the publisher's new rule beside its old one, and the list-price cost per
    million 1 KiB emails beside simple designs and Firehose; the idle floor (one idle API and consumer a month).
 9. what tracing costs: the API's and the consumer's CPU per email with tracing off, at 1% and at 100% sampling.
SQS is ElasticMQ, S3 is gofakes3 when installed (moto otherwise), SSM is moto. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from api_service.memory_budget import MIB, default_budget_bytes
from bench.emails import CONTENT, envelope_body
from bench.wrk import LoadResult, lua_script, run_wrk
from devstack.accounting import BATCH_KEY_PREFIX, KEY_PREFIX, list_keys, queue_depths
from devstack.bootstrap import StackNames, emulator_client, ensure_queues
from devstack.elasticmq import ElasticMQServer
from devstack.emulator import MotoServer
from devstack.faultproxy import FaultProxy, Mode
from devstack.gofakes3 import GoFakeS3Server
from devstack.metrics_text import metric_value, scrape
from devstack.processes import LOOPBACK, ManagedProcess, free_port, http_status, python_module
from devstack.stack import DevStack, StackConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
SQS_OPERATIONS = (
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
)


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # section, figure, ours, baseline
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, figure: str, ours: str, baseline: str = "") -> None:
        self.rows.append((section, figure, ours, baseline))
        print(f"  {section:<12} {figure:<44} {ours:>16} {baseline:>16}", flush=True)

    def markdown(self) -> str:
        lines = ["| # | figure | email-ingest | baseline |", "|---|---|---:|---:|"]
        lines += [f"| {section} | {figure} | {ours} | {baseline} |" for section, figure, ours, baseline in self.rows]
        return "\n".join(lines)


def payload(token: str, content: str = CONTENT) -> str:
    return json.dumps(
        {
            "data": {
                "email_subject": "Happy new year!",
                "email_sender": "John doe",
                "email_timestream": "1693561101",
                "email_content": content,
            },
            "token": token,
        }
    )


def sqs_calls(text: str) -> float:
    return sum(metric_value(text, "email_ingest_aws_requests_total", {"operation": op}) for op in SQS_OPERATIONS)


def fill_queue(endpoint_url: str, queue_url: str, count: int, pack: int = 1) -> None:
    """`count` emails like the API's, `pack` to a message, sent in batches from a few threads."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    sqs = emulator_client("sqs", endpoint_url)
    now = datetime.now(UTC)
    messages = [list(range(start, min(start + pack, count))) for start in range(0, count, pack)]

    def send(first: int) -> None:
        entries = [
            {"Id": str(i), "MessageBody": envelope_body([f"bench-{n}" for n in numbers], now)}
            for i, numbers in enumerate(messages[first : first + 10])
        ]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(0, len(messages), 10)))


def queue_empty(endpoint_url: str, queue_url: str) -> bool:
    return queue_depths(emulator_client("sqs", endpoint_url), queue_url) == (0, 0)


def count_objects(endpoint_url: str, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, distinct email ids) under the prefix."""
    keys = [item["Key"] for item in list_keys(emulator_client("s3", endpoint_url), bucket, prefix)]
    return len(keys), len({key.rsplit("/", 1)[-1] for key in keys})


def wait(condition: Any, timeout: float, what: str, interval: float = 0.25) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if condition():
            return time.monotonic() - began
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def open_loop(url: str, token: str, rate: float, seconds: float) -> dict[str, float]:
    """Posts at a fixed rate (not closed-loop); returns email_id -> wall time of its 200."""
    acknowledged: dict[str, float] = {}
    body = payload(token).encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one() -> None:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                document = await response.json(content_type=None)
                if response.status == 200:
                    acknowledged[document["email_id"]] = time.time()

        tasks = []
        began = time.monotonic()
        for index in range(int(rate * seconds)):
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return acknowledged


def stored_times(log_text: str) -> dict[str, float]:
    times: dict[str, float] = {}
    for line in log_text.splitlines():
        if '"event":"emails_stored"' in line:
            record = json.loads(line)
            for email_id in record["email_ids"]:
                times.setdefault(email_id, datetime.fromisoformat(record["ts"]).timestamp())
    return times


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def overload_large(
    report: Report, *, seconds: float, api_env: dict[str, str], slow_sqs: str, sqs: str, token: str, work: Path
) -> None:
    """Overload with 250 kB emails, 600 clients, twice: the API's peak RSS with its memory budget, and with
    the budget lifted (the count-bounded pending queue alone, as before the budget) as the baseline."""
    large_queue, _ = ensure_queues(sqs, StackNames(queue="bench-large", dead_letter_queue="bench-large-dlq"))
    script = lua_script(payload(token, content="x" * 250_000))
    for label, extra in (
        (f"budget {default_budget_bytes(None) // MIB} MiB (default)", {}),
        ("budget lifted (baseline)", {"MEMORY_BUDGET_BYTES": str(1 << 40)}),
    ):
        port = free_port()
        env = {**api_env, "API_PORT": str(port), "AWS_ENDPOINT_URL_SQS": slow_sqs, "SQS_QUEUE_URL": large_queue,
               "LOG_LEVEL": "warning", **extra}  # fmt: skip
        api = ManagedProcess("api-large", python_module("api_service"), env=env, log_path=work / f"large-{port}.log")
        api.start()
        try:
            api.wait_until(f"http://{LOOPBACK}:{port}/readyz")
            url = f"http://{LOOPBACK}:{port}/api/email"
            baseline = psutil.Process(api.pid).memory_info().rss
            runs = [run_wrk(url, script, pid=api.pid, seconds=seconds, connections=600) for _ in range(2)]
            # Right after the load the API may still be reading and discarding the shed requests' bodies.
            health = functools.partial(answers, f"http://{LOOPBACK}:{port}/healthz")
            try:
                recovered = f"serving again after {wait(health, 30, 'healthz'):.1f} s"
            except RuntimeError:
                recovered = "NOT serving 30 s later"
        finally:
            api.stop()
            emulator_client("sqs", sqs).purge_queue(QueueUrl=large_queue)
        requests = max(1, sum(run.requests for run in runs))  # a run too short to finish a request
        report.add(
            "6 overload 250 kB",
            f"{label}: RSS start -> peak run 1 -> peak run 2 (MiB), 503 share",
            f"{baseline / MIB:.0f} -> {runs[0].peak_rss_bytes / MIB:.0f} -> {runs[1].peak_rss_bytes / MIB:.0f}",
            f"{sum(run.non_2xx for run in runs) / requests:.0%} of {requests}, {recovered}",
        )
    report.notes.append("overload 250 kB: the chart's API memory limit is 512 MiB (helm values api.resources)")


TOKEN = "bench-token"  # noqa: S105 - a local benchmark's placeholder
BUCKET = "bench-emails"


@dataclass
class Bench:
    """What the numbered sections share: the servers, the stack (API and consumer started per section) and the
    wrk script; `cleanup` stops everything in reverse order at the end of the run."""

    args: argparse.Namespace
    report: Report
    work: Path
    cleanup: ExitStack
    moto: MotoServer
    elasticmq: ElasticMQServer
    s3_url: str
    stack: DevStack
    script: Path

    @property
    def sqs_url(self) -> str:
        return self.elasticmq.endpoint_url

    @property
    def consumer_queue(self) -> str:
        assert self.stack.resources is not None
        return self.stack.resources.queue_url

    def bare_env(self) -> dict[str, str]:
        """The environment of the bare loops: the stack's AWS endpoints and credentials, S3 on `s3_url`."""
        return {**self.stack.aws_env(), "AWS_ENDPOINT_URL_S3": self.s3_url, "PATH": os.environ.get("PATH", "")}

    def drain(self, timeout: float, what: str, interval: float) -> float:
        return wait(lambda: queue_empty(self.sqs_url, self.consumer_queue), timeout, what, interval)


@dataclass
class Ceiling:
    """Section 1's bare handler, still running: section 2 paces it to the API's rate."""

    process: ManagedProcess
    url: str
    result: LoadResult


@dataclass
class ApiRun:
    url: str
    metrics_after: str  # the API's /metrics right after its measured run


def start(args: argparse.Namespace, report: Report, work: Path, cleanup: ExitStack) -> Bench:
    """moto (SSM, and S3 without gofakes3), ElasticMQ, gofakes3 when installed, and the stack's resources."""
    moto = MotoServer(log_path=work / "moto.log")
    moto.start()
    cleanup.callback(moto.stop)
    elasticmq = ElasticMQServer(queue_name="bench-api", dlq_name="bench-api-dlq")
    elasticmq.start()
    cleanup.callback(elasticmq.stop)
    s3_server = GoFakeS3Server(log_path=work / "gofakes3.log", quiet=True)
    if s3_server.installed():
        s3_server.start()
        cleanup.callback(s3_server.stop)
        s3_url = s3_server.endpoint_url
        report.notes.append("S3: gofakes3 (in memory)")
    else:
        s3_url = moto.endpoint_url
        report.notes.append("S3: moto (gofakes3 not installed: consumer figures are bound by moto)")
    names = StackNames(queue="bench-api", dead_letter_queue="bench-api-dlq", bucket=BUCKET)
    stack = DevStack(
        StackConfig(
            with_api=False,
            with_consumer=False,
            names=names,
            token=TOKEN,
            log_dir=work,
            emulator_endpoint_url=moto.endpoint_url,
            sqs_endpoint_url=elasticmq.endpoint_url,
            consumer_env={
                "AWS_ENDPOINT_URL_S3": s3_url,
                "CONSUMER_POLLERS": "4",
                "CONSUMER_MAX_IN_FLIGHT": "40",
                "SQS_WAIT_TIME_SECONDS": "1",
                "QUEUE_METRICS_INTERVAL_SECONDS": "60",
            },
        )
    )
    stack.start()
    cleanup.callback(stack.stop)
    assert stack.resources is not None
    if s3_url != moto.endpoint_url:
        emulator_client("s3", s3_url).create_bucket(Bucket=BUCKET)
    return Bench(args, report, work, cleanup, moto, elasticmq, s3_url, stack, lua_script(payload(TOKEN)))


def ceiling(bench: Bench) -> Ceiling:
    """1. the ceiling: a bare aiohttp handler parsing the same JSON, under the same wrk load."""
    print("1. ceiling: bare aiohttp handler", flush=True)
    args = bench.args
    port = free_port()
    bare = ManagedProcess("bare-api", python_module("bench.bare_api", str(port)), log_path=bench.work / "bare.log")
    bare.start()
    bench.cleanup.callback(bare.stop)
    url = f"http://{LOOPBACK}:{port}/api/email"
    wait(lambda: answers(url), 20, "the bare handler")
    run_wrk(url, bench.script, pid=bare.pid, seconds=3, connections=args.connections)  # warm-up
    result = run_wrk(url, bench.script, pid=bare.pid, seconds=args.seconds, connections=args.connections)
    return Ceiling(bare, url, result)


@dataclass
class Drain:
    """One run of our consumer over a backlog: wall time from its start, its CPU and its metrics at the end."""

    seconds: float
    cpu_seconds: float
    metrics: str


def drain_backlog(
    bench: Bench, count: int, what: str, consumer_env: dict[str, str] | None = None, *, pack: int = 1
) -> Drain:
    """Puts `count` emails (`pack` to a message) in the consumer's queue, runs our consumer (with `consumer_env` on
    top of the bench's) until the queue is empty, and stops it."""
    fill_queue(bench.sqs_url, bench.consumer_queue, count, pack)
    environment = bench.stack.config.consumer_env
    saved = dict(environment)
    environment.update(consumer_env or {})
    try:
        began = time.monotonic()
        consumer = bench.stack.start_consumer()
        cpu_start = cpu_seconds(consumer.pid)
        bench.drain(600, what, 0.1)
        drain = Drain(time.monotonic() - began, cpu_seconds(consumer.pid) - cpu_start, scrape(bench.stack.consumer_url))
    finally:
        environment.clear()
        environment.update(saved)
    consumer.stop()  # the next section measures alone
    return drain


def consumers(bench: Bench) -> float:
    """4. the consumer against the bare receive -> put -> delete loop: same backlog, endpoints and concurrency.
    Returns the consumer's CPU seconds per stored email (section 4b's baseline)."""
    count = bench.args.consumer_messages
    print(f"4. consumers: {count} messages each", flush=True)
    bare_queue, _ = ensure_queues(bench.sqs_url, StackNames(queue="bench-bare", dead_letter_queue="bench-bare-dlq"))
    fill_queue(bench.sqs_url, bare_queue, count)
    began = time.monotonic()
    bare_loop = subprocess.Popen(
        python_module("bench.bare_consumer", bare_queue, BUCKET, "4", str(count)), env=bench.bare_env()
    )
    _, status, usage = os.wait4(bare_loop.pid, 0)
    bare_seconds = time.monotonic() - began
    bare_cpu = usage.ru_utime + usage.ru_stime
    if status != 0:
        raise RuntimeError(f"the bare consumer failed ({status})")
    ours = drain_backlog(bench, count, "the consumer to drain")
    consumer_seconds, consumer_cpu = ours.seconds, ours.cpu_seconds
    created = metric_value(ours.metrics, "email_ingest_consumer_emails_stored_total")
    report = bench.report
    report.add(
        "4 consumer",
        "stored emails/s (4 pollers, 40 in flight)",
        fmt(created / consumer_seconds),
        fmt(count / bare_seconds),
    )
    report.add(
        "4 consumer",
        "share of the bare loop's rate (goal >= 0.80)",
        f"{(created / consumer_seconds) / (count / bare_seconds):.2f}",
        "",
    )
    report.add(
        "4 consumer",
        "CPU per stored email (us)",
        fmt(consumer_cpu / created * 1e6, 1),
        fmt(bare_cpu / count * 1e6, 1),
    )
    report.notes.append(
        f"consumers: ours stored {int(created)} in {consumer_seconds:.1f} s (including start-up); "
        f"the bare loop {count} in {bare_seconds:.1f} s"
    )
    return consumer_cpu / created if created else float("nan")


BATCHED_ENV = {"STORAGE_LAYOUT": "batched", "BATCH_MAX_SECONDS": "5", "CONSUMER_MAX_IN_FLIGHT": "10000"}


def batched_consumer(bench: Bench, per_email_cpu: float, *, pack: int = 1) -> None:
    """4b. the consumer in the batched layout on the same backlog, beside section 4's per-email figures: CPU and
    S3 PUTs per stored email (goals: at most 0.25 ms and 0.001). 4c: the same with the emails packed `pack` to a
    message, as the API packs them at load."""
    count = bench.args.consumer_messages
    section = "4b batched" if pack == 1 else "4c batched"
    print(f"{section.split(maxsplit=1)[0]}. consumer, batched layout: {count} emails, {pack} to a message", flush=True)
    batched = drain_backlog(bench, count, "the batched consumer to drain", BATCHED_ENV, pack=pack)
    text, cpu, drained = batched.metrics, batched.cpu_seconds, batched.seconds
    stored = metric_value(text, "email_ingest_consumer_emails_stored_total")
    puts = metric_value(text, "email_ingest_aws_requests_total", {"service": "s3", "operation": "PutObject"})
    batches = metric_value(text, "email_ingest_consumer_batches_total", {"result": "written"})
    report = bench.report
    report.add(
        section,
        f"CPU per stored email, {pack} per message (us; goal <= 250)",
        fmt(cpu / stored * 1e6, 1) if stored else "-",
        f"{fmt(per_email_cpu * 1e6, 1)} per-email",
    )
    report.add(
        section,
        "S3 PUTs per stored email (goal <= 0.001)",
        f"{puts / stored:.5f}" if stored else "-",
        "1 per-email",
    )
    report.add(section, "emails per batch", fmt(stored / batches, 0) if batches else "-", "")
    report.notes.append(
        f"batched, {pack} per message: {int(stored)} emails in {int(batches)} batches ({int(puts)} PUTs) in "
        f"{drained:.1f} s, BATCH_MAX_SECONDS={BATCHED_ENV['BATCH_MAX_SECONDS']} (the drain includes the last "
        "batch's wait)"
    )


def api(bench: Bench, bare: Ceiling) -> ApiRun:
    """2. the API publishing to ElasticMQ, beside the ceiling: saturated, paced to the API's rate, and paced with
    ElasticMQ as busy as the API kept it. Stops the bare handler."""
    print("2. API publishing to ElasticMQ", flush=True)
    args, report, script, ceiling_run = bench.args, bench.report, bench.script, bare.result
    process = bench.stack.start_api()
    api_url = f"{bench.stack.api_url}/api/email"
    run_wrk(api_url, script, pid=process.pid, seconds=3, connections=args.connections)  # warm-up
    before = scrape(bench.stack.api_url)
    ours = run_wrk(api_url, script, pid=process.pid, seconds=args.seconds, connections=args.connections)
    after = scrape(bench.stack.api_url)
    accepted = metric_value(after, "email_ingest_api_emails_accepted_total") - metric_value(
        before, "email_ingest_api_emails_accepted_total"
    )
    sends = metric_value(after, "email_ingest_aws_requests_total", {"operation": "SendMessageBatch"}) - metric_value(
        before, "email_ingest_aws_requests_total", {"operation": "SendMessageBatch"}
    )
    report.add("1 ceiling", "requests/s (wrk -t1 -c64)", "", fmt(ceiling_run.rps))
    report.add(
        "2 API",
        "requests/s, all answered 200",
        fmt(ours.rps) + ("" if ours.non_2xx == 0 else f" ({ours.non_2xx} non-2xx)"),
        fmt(ceiling_run.rps),
    )
    report.add(
        "2 API",
        "latency p50 / p99 (ms)",
        f"{ours.p50_ms:.1f} / {ours.p99_ms:.1f}",
        f"{ceiling_run.p50_ms:.1f} / {ceiling_run.p99_ms:.1f}",
    )
    report.add(
        "2 API",
        "CPU per accepted email (us) vs per request",
        fmt(ours.cpu_us_per(int(accepted)), 1),
        fmt(ceiling_run.cpu_us_per(ceiling_run.requests), 1),
    )
    report.add(
        "2 API",
        "ratio to the saturated ceiling's CPU",
        f"{ours.cpu_us_per(int(accepted)) / ceiling_run.cpu_us_per(ceiling_run.requests):.2f}",
        "",
    )
    # The same handler paced to the API's rate: CPU per request depends on the rate (at a low rate each
    # response wakes an idle client and the loop amortises less), so compare at equal rates too.
    # Each connection waits `pace_ms` after every answer; paced, the handler answers in about 1 ms.
    pace_ms = max(1, round(args.connections / ours.rps * 1000 - 1))
    paced_script = lua_script(payload(TOKEN), delay_ms=pace_ms)
    paced = run_wrk(bare.url, paced_script, pid=bare.process.pid, seconds=args.seconds, connections=args.connections)
    # And with ElasticMQ as busy as the API kept it: on two cores its JVM slows every other process.
    load_queue, _ = ensure_queues(bench.sqs_url, StackNames(queue="bench-load", dead_letter_queue="bench-load-dlq"))
    loader = ManagedProcess(
        "sqs-load",
        python_module("bench.sqs_load", bench.sqs_url, load_queue, f"{sends / ours.seconds:.1f}"),
        env=bench.bare_env(),
        log_path=bench.work / "sqs-load.log",
    )
    loader.start()
    time.sleep(1)
    shared = run_wrk(bare.url, paced_script, pid=bare.process.pid, seconds=args.seconds, connections=args.connections)
    loader.stop()
    bare.process.stop()
    report.add(
        "2 API",
        "CPU per request, ceiling paced to the API's rate (us)",
        f"{fmt(paced.rps)}/s",
        fmt(paced.cpu_us_per(paced.requests), 1),
    )
    report.add(
        "2 API",
        "ratio to the paced ceiling's CPU",
        f"{ours.cpu_us_per(int(accepted)) / paced.cpu_us_per(paced.requests):.2f}",
        "",
    )
    report.add(
        "2 API",
        f"CPU per request, paced, ElasticMQ taking {sends / ours.seconds:.0f} batches/s (us)",
        f"{fmt(shared.rps)}/s",
        fmt(shared.cpu_us_per(shared.requests), 1),
    )
    report.add(
        "2 API",
        "ratio to it: same rate, same machine load (goal <= 2.0)",
        f"{ours.cpu_us_per(int(accepted)) / shared.cpu_us_per(shared.requests):.2f}",
        "",
    )
    report.add("2 API", "RSS (MiB)", fmt(ours.rss_bytes / 2**20, 1), fmt(ceiling_run.rss_bytes / 2**20, 1))
    report.add("2 API", "emails per SendMessageBatch", fmt(accepted / sends, 2) if sends else "-", "10 max")
    return ApiRun(api_url, after)


def sqs_requests_per_email(bench: Bench, api_run: ApiRun) -> None:
    """3. SQS requests per stored email: the API's sends of section 2, then the consumer's calls to store them all.
    Leaves the consumer running for section 5."""
    after = api_run.metrics_after
    bench.stack.start_consumer()
    backlog = int(metric_value(after, "email_ingest_api_emails_accepted_total"))
    bench.drain(600, "the consumer to drain", 0.1)
    drain_metrics = scrape(bench.stack.consumer_url)
    stored = metric_value(drain_metrics, "email_ingest_consumer_emails_stored_total")
    all_sends = metric_value(after, "email_ingest_aws_requests_total", {"operation": "SendMessageBatch"})
    requests_per_email = (all_sends + sqs_calls(drain_metrics)) / stored
    bench.report.add(
        "3 SQS",
        "SQS requests per stored email (goal <= 0.35)",
        f"{requests_per_email:.3f}",
        "~2.1 (simple designs)",
    )
    bench.report.notes.append(
        f"SQS requests per email: {int(all_sends)} sends for {backlog} accepted emails, "
        f"{int(sqs_calls(drain_metrics))} consumer calls for {int(stored)} stored"
    )


def end_to_end(bench: Bench, api_run: ApiRun) -> None:
    """5. end-to-end latency (API 200 -> object stored) at a fixed rate, from the consumer's log."""
    rate, seconds = bench.args.rate, bench.args.seconds
    print(f"5. end-to-end latency at {rate:g} requests/s", flush=True)
    acknowledged = asyncio.run(open_loop(api_run.url, TOKEN, rate, seconds))
    bench.drain(120, "the pipeline to settle", 0.2)
    assert bench.stack.consumer is not None
    stored_at = stored_times(bench.stack.consumer.log_text())
    latencies = [(stored_at[i] - t) * 1000 for i, t in acknowledged.items() if i in stored_at]
    bench.report.add(
        "5 e2e",
        f"API 200 -> stored, p50 / p99 (ms) at {rate:g}/s",
        f"{percentile(latencies, 0.5):.0f} / {percentile(latencies, 0.99):.0f}",
        "goal p99 <= 1000",
    )
    bench.report.notes.append(
        f"end to end: {len(latencies)} of {len(acknowledged)} acknowledged emails timed; "
        f"mean {statistics.fmean(latencies):.0f} ms"
        if latencies
        else "end to end: no sample"
    )


def overload(bench: Bench) -> str:
    """6. overload: a second API whose SQS is slowed by a proxy (100 ms each way), so SQS sets the pace; then
    250 kB emails with and without the memory budget. Returns the second API's base URL (section 7 counts it)."""
    print("6. overload", flush=True)
    args, report, script = bench.args, bench.report, bench.script
    proxy = FaultProxy.for_url(bench.sqs_url, name="slow-sqs").start()
    bench.cleanup.callback(proxy.stop)
    proxy.set_mode(Mode.LATENCY, latency=0.1)
    slow_port = free_port()
    slow_env = {
        **bench.stack.api_environment(),
        "API_PORT": str(slow_port),
        "AWS_ENDPOINT_URL_SQS": proxy.endpoint_url,
        "PUBLISH_MAX_BATCHES_IN_FLIGHT": "4",
        "PUBLISH_MAX_PENDING": "200",
        "LOG_LEVEL": "warning",
    }
    slow_api = ManagedProcess(
        "api-overload", python_module("api_service"), env=slow_env, log_path=bench.work / "overload.log"
    )
    slow_api.start()
    bench.cleanup.callback(slow_api.stop)
    base_url = f"http://{LOOPBACK}:{slow_port}"
    slow_api.wait_until(f"{base_url}/readyz")
    slow_url = f"{base_url}/api/email"
    sustainable = run_wrk(slow_url, script, pid=slow_api.pid, seconds=args.seconds / 2, connections=40)
    rss_before = psutil.Process(slow_api.pid).memory_info().rss
    first = run_wrk(slow_url, script, pid=slow_api.pid, seconds=args.seconds, connections=args.overload_connections)
    # A second round: memory that only grows with the work done would grow again here; bounded buffers
    # (the connections', the capped pending queue) do not.
    again = run_wrk(slow_url, script, pid=slow_api.pid, seconds=args.seconds, connections=args.overload_connections)
    shed = metric_value(scrape(base_url), "email_ingest_api_requests_shed_total")
    healthy = answers(f"{base_url}/healthz")
    report.add(
        "6 overload",
        "offered vs sustainable requests/s",
        f"{fmt(first.rps)} vs {fmt(sustainable.rps)}",
        f"x{first.rps / sustainable.rps:.1f}",
    )
    report.add(
        "6 overload",
        "share answered 503 + Retry-After",
        f"{first.non_2xx / first.requests:.0%}",
        f"{int(shed)} shed",
    )
    report.add(
        "6 overload",
        "RSS before -> after one run -> after two (MiB), still serving",
        f"{rss_before / 2**20:.1f} -> {first.rss_bytes / 2**20:.1f} -> {again.rss_bytes / 2**20:.1f}",
        "yes" if healthy else "NO",
    )
    overload_large(
        report,
        seconds=args.seconds,
        api_env=bench.stack.api_environment(),
        slow_sqs=proxy.endpoint_url,
        sqs=bench.sqs_url,
        token=TOKEN,
        work=bench.work,
    )
    proxy.set_mode(Mode.PASS)
    return base_url


def accounting(bench: Bench, api_urls: tuple[str, ...]) -> tuple[str, bool]:
    """7. zero-loss accounting: every email the APIs acknowledged in the run is stored once (the backlogs section
    4 put in the queue directly are subtracted). Returns the summary line and whether it holds."""
    print("7. accounting", flush=True)

    def settled() -> bool:  # every request the APIs took is answered, so their counters are final
        return all(
            metric_value(text, "email_ingest_publisher_pending_entries") == 0
            and metric_value(text, "email_ingest_api_requests_in_flight") <= 1
            for text in (scrape(url) for url in api_urls)
        )

    wait(settled, 120, "the APIs to answer everything", 0.2)
    acknowledged_total = sum(metric_value(scrape(url), "email_ingest_api_emails_accepted_total") for url in api_urls)
    prefilled = bench.args.consumer_messages
    bench.drain(300, "the last emails", 0.5)
    objects, distinct = count_objects(bench.s3_url, BUCKET, "emails/")
    stored_from_api = objects - prefilled
    missing = int(acknowledged_total) - stored_from_api
    bench.report.add(
        "7 accounting",
        "acknowledged, stored, missing, duplicates",
        f"{int(acknowledged_total)}, {stored_from_api}, {missing}, {objects - distinct}",
        "",
    )
    line = (
        f"acknowledged {int(acknowledged_total)}, stored {stored_from_api}, missing {missing}, "
        f"duplicates {objects - distinct}"
    )
    print(line, flush=True)
    return line, missing == 0 and objects == distinct


# List prices, us-east-1, as stated on the AWS pricing pages on 2026-11-27 (the issue quotes the S3 and Firehose ones):
PRICE_SQS_REQUEST = 0.40 / 1e6  # standard queue, per request (each 64 KiB chunk of a payload is one)
PRICE_S3_PUT = 0.005 / 1000  # S3 Standard PUT, COPY, POST, LIST
PRICE_KMS_REQUEST = 0.03 / 10_000
PRICE_SSM_GET = 0.0  # standard parameters, standard throughput: GetParameter* are free
PRICE_FIREHOSE_GB = 0.029  # Direct PUT ingestion, first 500 TB/month, each record rounded up to 5 KB
COST_EMAIL_CONTENT = "x" * 1024  # a 1 KiB email


# Section 8's loads: (name, SQS backend, wrk connections; None: --connections). The moto loads are the light ones
# where SQS answers slower than the linger (the 16 and 64 clients); the fast stack is driven to saturation.
COST_LOADS: tuple[tuple[str, str, int | None], ...] = (
    ("16 clients", "moto", 16),
    ("64 clients", "moto", 64),
    ("saturated", "fast", None),
)
# The publisher's rules, measured side by side at each load: the old one (every partial call at the linger) is the
# baseline of the same run.
COST_RULES: tuple[tuple[str, dict[str, str]], ...] = (("new", {}), ("old", {"PUBLISH_MAX_HOLD_MS": "0"}))
# The consumer's production intervals (its defaults), not the bench's short ones: what the long polls and queue-depth
# reads cost is part of the figure.
PRODUCTION_CONSUMER_ENV = {"SQS_WAIT_TIME_SECONDS": "20", "QUEUE_METRICS_INTERVAL_SECONDS": "15"}
COST_GOAL_DOLLARS = 0.03
SECONDS_PER_MONTH = 30 * 24 * 3600


@dataclass
class CostRun:
    accepted: float
    stored: float
    sends: float  # billed SendMessageBatch requests
    consumer_sqs: float  # billed consumer SQS requests
    per_call: float  # emails per SendMessageBatch call
    packed: float  # emails per message
    cost: float  # $ per million emails
    load: LoadResult
    consumer_calls: dict[str, float]  # billed consumer SQS requests by operation
    stored_ids: int  # distinct email ids in the objects this run wrote
    stored_lines: int  # emails in those objects, a redelivered one each time it was written

    @property
    def sqs_per_email(self) -> float:
        return (self.sends + self.consumer_sqs) / self.stored

    @property
    def duplicates(self) -> int:
        return self.stored_lines - self.stored_ids

    @property
    def all_stored(self) -> bool:
        """Every accepted email is stored: at least once by email id (docs/contract.md: the batched layout delivers at
        least once, a redelivered message's emails can be written twice; the per-email layout once by key)."""
        return self.stored_ids >= self.accepted


def costs(bench: Bench) -> bool:
    """8. what it costs: an API at three loads with 1 KiB emails (16 and 64 clients on moto, saturated on the fast
    stack), each under the publisher's new rule and its old one (PUBLISH_MAX_HOLD_MS=0) in the same run, drained by a
    fresh batched consumer; AWS requests per stored email from both services' own counters, the list-price cost
    per million emails beside simple designs and Firehose, the latencies beside the old rule's; then the per-email
    layout at saturation, and the idle floor (one idle API and consumer a month). Returns whether every accepted
    email was stored."""
    print("8. costs", flush=True)
    report = bench.report
    report.add("8 costs", "anchor: simple design, $ per million 1 KiB emails", "", _simple_design_cost())
    report.add("8 costs", "anchor: Amazon Data Firehose, $ per million", "", _firehose_cost())
    ok = True
    moto_stack = _moto_stack(bench)
    for load_name, backend, connections in COST_LOADS:
        stack = moto_stack if backend == "moto" else bench.stack
        runs: dict[str, CostRun] = {}
        for rule, env in COST_RULES:
            run = _cost_run(bench, stack, "batched", connections or bench.args.connections, env)
            ok = ok and run.all_stored
            runs[rule] = run
            report.notes.append(
                f"costs, {load_name} ({backend}), {rule} rule: {int(run.accepted)} accepted, {run.stored_ids} "
                f"stored (distinct email ids), {run.duplicates} duplicate lines; {int(run.sends)} billed sends, "
                f"{int(run.consumer_sqs)} billed consumer SQS requests ("
                + ", ".join(f"{operation} {int(calls)}" for operation, calls in run.consumer_calls.items())
                + ")"
            )
        _report_load(report, f"8 {load_name}", runs["new"], runs["old"])
    per_email = _cost_run(bench, bench.stack, "per-email", bench.args.connections, {})
    ok = ok and per_email.all_stored
    report.add("8 per-email", "$ per million 1 KiB emails (its PUTs: 5.00)", f"{per_email.cost:.4f}",
               f"SQS {per_email.sqs_per_email:.4f} per email")  # fmt: skip
    idle_floor(bench)
    report.notes.append(
        "costs: list prices us-east-1 on 2026-11-27: SQS $0.40 per million requests (each 64 KiB of payload one), "
        "S3 PUT $0.005 per 1,000, KMS $0.03 per 10,000, SSM standard GetParameter* free, Firehose $0.029 per GB "
        "with records rounded up to 5 KB; storage (GB-month) and data transfer left out, the same for every design; "
        "SQS with SSE-SQS (no KMS), S3 with SSE-KMS and a bucket key (KMS calls per bucket key, not per object); "
        f"the consumers use their production intervals ({PRODUCTION_CONSUMER_ENV}); ours: the new publisher rule "
        "(PUBLISH_MAX_HOLD_MS default), baseline: the old one (PUBLISH_MAX_HOLD_MS=0), same load, same run"
    )
    return ok


def _report_load(report: Report, section: str, new: CostRun, old: CostRun) -> None:
    def ratio(ours: float, base: float) -> str:
        return f"{ours / base:.2f}x" if base else "-"

    report.add(section, "requests/s; emails per message; per SendMessageBatch",
               f"{fmt(new.load.rps)}; {new.packed:.1f}; {new.per_call:.1f}",
               f"{fmt(old.load.rps)}; {old.packed:.1f}; {old.per_call:.1f}")  # fmt: skip
    report.add(section, "SQS billed calls per email, both services (~0.067)", f"{new.sqs_per_email:.4f}",
               f"{old.sqs_per_email:.4f}")  # fmt: skip
    report.add(section, "  of which SendMessageBatch; consumer",
               f"{new.sends / new.stored:.4f}; {new.consumer_sqs / new.stored:.4f}",
               f"{old.sends / old.stored:.4f}; {old.consumer_sqs / old.stored:.4f}")  # fmt: skip
    verdict = "met" if new.cost <= COST_GOAL_DOLLARS else "NOT met"
    report.add(section, f"$ per million 1 KiB emails (goal <= 0.03: {verdict})", f"{new.cost:.4f}",
               f"{old.cost:.4f}")  # fmt: skip
    for name, ours, base in (("p50", new.load.p50_ms, old.load.p50_ms), ("p99", new.load.p99_ms, old.load.p99_ms)):
        within = "met" if ours <= 1.2 * base else "NOT met"
        report.add(section, f"{name} latency, ms (goal <= 1.2x baseline: {ratio(ours, base)}, {within})",
                   f"{ours:.1f}", f"{base:.1f}")  # fmt: skip


def _moto_stack(bench: Bench) -> DevStack:
    """A second stack on the run's moto, for SQS and S3 alike (as `make run`): the light loads' backend."""
    (bench.work / "moto-stack").mkdir(exist_ok=True)
    stack = DevStack(
        StackConfig(
            with_api=False,
            with_consumer=False,
            names=StackNames(queue="bench-cost", dead_letter_queue="bench-cost-dlq", bucket="bench-cost"),
            token=TOKEN,
            log_dir=bench.work / "moto-stack",
            emulator_endpoint_url=bench.moto.endpoint_url,
            consumer_env={"CONSUMER_POLLERS": "4", "CONSUMER_MAX_IN_FLIGHT": "40"},
        )
    )
    stack.start()
    bench.cleanup.callback(stack.stop)
    return stack


def _cost_run(bench: Bench, stack: DevStack, layout: str, connections: int, api_env: dict[str, str]) -> CostRun:
    args = bench.args
    _stop_services(stack)  # fresh processes: their counters are this run's alone
    # The bucket outlives a run: what this one stored is what was not there before it.
    s3_endpoint = stack.config.consumer_env.get("AWS_ENDPOINT_URL_S3", stack.s3_endpoint_url)
    prefix = BATCH_KEY_PREFIX if layout == "batched" else KEY_PREFIX
    earlier = {item["Key"] for item in list_keys(emulator_client("s3", s3_endpoint), stack.config.names.bucket, prefix)}
    saved_api, saved_consumer = dict(stack.config.api_env), dict(stack.config.consumer_env)
    stack.config.api_env.update(api_env)
    stack.config.consumer_env.update(PRODUCTION_CONSUMER_ENV)
    stack.config.consumer_env.update(BATCHED_ENV if layout == "batched" else {})
    try:
        api_process = stack.start_api()
        stack.start_consumer()
    finally:
        stack.config.api_env.clear()
        stack.config.api_env.update(saved_api)
        stack.config.consumer_env.clear()
        stack.config.consumer_env.update(saved_consumer)
    script = lua_script(payload(TOKEN, COST_EMAIL_CONTENT))
    load = run_wrk(f"{stack.api_url}/api/email", script, pid=api_process.pid, seconds=args.seconds,
                   connections=connections)  # fmt: skip

    def api_settled() -> bool:  # the requests wrk left in flight are answered: the counters are final
        text = scrape(stack.api_url)
        return (
            metric_value(text, "email_ingest_publisher_pending_entries") == 0
            and metric_value(text, "email_ingest_api_requests_in_flight") <= 1
        )

    wait(api_settled, 60, "the API to answer every request", 0.1)
    api_text = scrape(stack.api_url)
    accepted = metric_value(api_text, "email_ingest_api_emails_accepted_total")

    def stored_all() -> bool:
        return metric_value(scrape(stack.consumer_url), "email_ingest_consumer_emails_stored_total") >= accepted

    wait(stored_all, 300, f"the {layout} consumer to store every accepted email", 0.5)
    assert stack.resources is not None
    queue_url = stack.resources.queue_url
    wait(lambda: queue_empty(stack.sqs_endpoint_url, queue_url), 60, "the queue to empty", 0.2)
    text = scrape(stack.consumer_url)
    stored_lines, stored_ids = _stored_emails(s3_endpoint, stack.config.names.bucket, prefix, earlier)
    # Per distinct email stored, not per line: a redelivered email is one email (as the cost is per email).
    stored = float(stored_ids)
    sends = metric_value(api_text, "email_ingest_aws_billed_requests_total", {"operation": "SendMessageBatch"})
    consumer_sqs = metric_value(text, "email_ingest_aws_billed_requests_total", {"service": "sqs"})
    ssm = metric_value(api_text, "email_ingest_aws_requests_total", {"service": "ssm"})
    puts = metric_value(text, "email_ingest_aws_requests_total", {"service": "s3", "operation": "PutObject"})
    packed = metric_value(api_text, "email_ingest_publisher_message_emails_sum") / max(
        1.0, metric_value(api_text, "email_ingest_publisher_message_emails_count")
    )
    per_call = accepted / max(1.0, metric_value(api_text, "email_ingest_publisher_batch_emails_count"))
    # KMS: S3 with a bucket key asks KMS for a data key per bucket key, not per object: about zero per email at load
    # (the emulators have no KMS to count it).
    kms_per_email = 0.0
    cost = (
        (sends + consumer_sqs) / stored * PRICE_SQS_REQUEST
        + puts / stored * PRICE_S3_PUT
        + ssm / stored * PRICE_SSM_GET
        + kms_per_email * PRICE_KMS_REQUEST
    ) * 1e6
    _stop_services(stack)  # the next run starts its own on the same ports
    by_operation = {
        operation: metric_value(
            text, "email_ingest_aws_billed_requests_total", {"service": "sqs", "operation": operation}
        )
        for service, operation in sorted(_aws_operations(text))
        if service == "sqs"
    }
    return CostRun(
        accepted, stored, sends, consumer_sqs, per_call, packed, cost, load, by_operation, stored_ids, stored_lines
    )


def _stored_emails(endpoint_url: str, bucket: str, prefix: str, earlier: set[str]) -> tuple[int, int]:
    """(emails, distinct email ids) in the objects under `prefix` not in `earlier`: the batched layout's gzip NDJSON
    batches read line by line, the per-email layout's objects by key (one email each, named by its id)."""
    s3 = emulator_client("s3", endpoint_url)
    keys = [item["Key"] for item in list_keys(s3, bucket, prefix) if item["Key"] not in earlier]
    if prefix != BATCH_KEY_PREFIX:
        return len(keys), len({key.rsplit("/", 1)[-1].split(".", 1)[0] for key in keys})
    ids: list[str] = []
    for key in keys:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        ids.extend(str(json.loads(line)["email_id"]) for line in body.splitlines() if line)
    return len(ids), len(set(ids))


def idle_floor(bench: Bench) -> None:
    """8 idle: one API and one consumer (batched, production intervals) with no traffic: their AWS calls counted over
    a measured window beside what the configured intervals predict, as SQS requests and dollars a month."""
    stack, seconds = bench.stack, bench.args.idle_seconds
    print(f"8 idle: one idle API and consumer for {seconds:.0f} s", flush=True)
    _stop_services(stack)
    saved = dict(stack.config.consumer_env)
    stack.config.consumer_env.update({**PRODUCTION_CONSUMER_ENV, **BATCHED_ENV})
    try:
        stack.start_api()
        stack.start_consumer()
    finally:
        stack.config.consumer_env.clear()
        stack.config.consumer_env.update(saved)
    urls = {"API": stack.api_url, "consumer": stack.consumer_url}
    before = {name: scrape(url) for name, url in urls.items()}
    began = time.monotonic()
    time.sleep(seconds)  # the window itself: nothing to wait for, only time to pass
    after = {name: scrape(url) for name, url in urls.items()}
    window = time.monotonic() - began
    counted: dict[tuple[str, str], float] = {}
    for name in urls:
        for service, operation in _aws_operations(after[name]):
            labels = {"service": service, "operation": operation}
            calls = metric_value(after[name], "email_ingest_aws_requests_total", labels) - metric_value(
                before[name], "email_ingest_aws_requests_total", labels
            )
            if calls:
                counted[(name, f"{service} {operation}")] = calls
    sqs_calls = sum(calls for (_, operation), calls in counted.items() if operation.startswith("sqs "))
    measured_month = sqs_calls / window * SECONDS_PER_MONTH
    # The prediction from the configured intervals: an idle consumer has one long poll out (the pollers share the
    # receive fill: while the queue is thin one receive at a time, consumer_service/receive_fill.py), and an empty
    # long poll returns after the wait time; the queue-depth reads cover the queue and its DLQ once an interval; no
    # message, so no heartbeat and no delete; the API calls SQS only to send.
    pollers, wait_seconds = 1, int(PRODUCTION_CONSUMER_ENV["SQS_WAIT_TIME_SECONDS"])
    depth_interval = float(PRODUCTION_CONSUMER_ENV["QUEUE_METRICS_INTERVAL_SECONDS"])
    predicted_month = (pollers / wait_seconds + 2 / depth_interval) * SECONDS_PER_MONTH
    report = bench.report
    report.add("8 idle", f"SQS requests per month, measured over {window:.0f} s", fmt(measured_month),
               f"predicted {fmt(predicted_month)}")  # fmt: skip
    report.add("8 idle", "$ per month, one idle API + one idle consumer", f"{measured_month * PRICE_SQS_REQUEST:.2f}",
               f"predicted {predicted_month * PRICE_SQS_REQUEST:.2f}")  # fmt: skip
    report.notes.append(
        f"idle floor: {pollers} long poll of {wait_seconds} s at a time, queue depth (queue + DLQ) every "
        f"{depth_interval:.0f} s, heartbeat only for messages held (none); calls in the {window:.0f} s window: "
        + ", ".join(f"{name} {operation} {int(calls)}" for (name, operation), calls in sorted(counted.items()))
        + f"; a month is {SECONDS_PER_MONTH} s"
    )
    _stop_services(stack)


def _aws_operations(text: str) -> set[tuple[str, str]]:
    """The (service, operation) pairs of email_ingest_aws_requests_total in a /metrics text."""
    pairs = set()
    for line in text.splitlines():
        if line.startswith("email_ingest_aws_requests_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
            pairs.add((labels["service"].strip('"'), labels["operation"].strip('"')))
    return pairs


def _stop_services(stack: DevStack) -> None:
    for process in (stack.api, stack.consumer):
        if process is not None:
            process.stop()


def _simple_design_cost() -> str:
    """One SendMessage, one ReceiveMessage, one DeleteMessage and one PutObject per email."""
    return f"{(3 * PRICE_SQS_REQUEST + PRICE_S3_PUT) * 1e6:.2f}"


def _firehose_cost() -> str:
    return f"{1e6 * 5_000 / 1e9 * PRICE_FIREHOSE_GB:.3f}"


# OTEL_* of section 9's modes (None: tracing off). Parent-based, as the chart's default: the consumer follows the
# API's decision for the emails the API traced, and samples the backlog's (untraced) messages at the same ratio.
TRACING_MODES: dict[str, dict[str, str] | None] = {
    "off": None,
    "1%": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    "100%": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


def tracing_cost(bench: Bench) -> None:
    """9. the API's CPU per accepted email (wrk, as section 2) and the consumer's CPU per stored email (a backlog, as
    section 4) with tracing off, at 1% and at 100%; spans are exported over OTLP/HTTP to a sink that keeps nothing
    (bench/otlp_sink.py), so the figures are the services' own cost of tracing."""
    print("9. tracing cost: off, 1%, 100%", flush=True)
    args, report = bench.args, bench.report
    port = free_port()
    sink = ManagedProcess("otlp-sink", python_module("bench.otlp_sink", str(port)), log_path=bench.work / "sink.log")
    sink.start()
    bench.cleanup.callback(sink.stop)
    wait(lambda: answers(f"http://{LOOPBACK}:{port}/exports"), 20, "the OTLP sink")
    api_cpu: dict[str, float] = {}
    consumer_cpu: dict[str, float] = {}
    saved_api_env = dict(bench.stack.config.api_env)
    for mode, sampler in TRACING_MODES.items():
        otel = (
            {}
            if sampler is None
            else {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{LOOPBACK}:{port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                **sampler,
            }
        )
        bench.stack.config.api_env = {**saved_api_env, **otel}
        process = bench.stack.start_api()
        api_url = f"{bench.stack.api_url}/api/email"
        run_wrk(api_url, bench.script, pid=process.pid, seconds=3, connections=args.connections)  # warm-up
        before = metric_value(scrape(bench.stack.api_url), "email_ingest_api_emails_accepted_total")
        run = run_wrk(api_url, bench.script, pid=process.pid, seconds=args.seconds, connections=args.connections)
        accepted = metric_value(scrape(bench.stack.api_url), "email_ingest_api_emails_accepted_total") - before
        process.stop()
        api_cpu[mode] = run.cpu_us_per(int(accepted))
        # The backlog holds the emails the API just accepted (carrying its sampling decision) and as many more.
        drained = drain_backlog(bench, args.consumer_messages, f"the consumer ({mode}) to drain", otel)
        stored = metric_value(drained.metrics, "email_ingest_consumer_emails_stored_total")
        consumer_cpu[mode] = drained.cpu_seconds / stored * 1e6 if stored else float("nan")
    bench.stack.config.api_env = saved_api_env
    for mode in TRACING_MODES:
        report.add(
            "9 tracing", f"API CPU per accepted email, {mode} (us)", fmt(api_cpu[mode], 1), fmt(api_cpu["off"], 1)
        )
    for mode in TRACING_MODES:
        report.add(
            "9 tracing",
            f"consumer CPU per stored email, {mode} (us)",
            fmt(consumer_cpu[mode], 1),
            fmt(consumer_cpu["off"], 1),
        )
    report.notes.append(
        "tracing: baseline = the same service with tracing off, in the same run; spans exported over OTLP/HTTP to "
        "a sink that keeps nothing (its CPU not counted)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--consumer-messages", type=int, default=5000, help="backlog drained by each consumer")
    parser.add_argument("--rate", type=float, default=200, help="requests/s of the end-to-end latency run")
    parser.add_argument("--pack", type=int, default=50, help="emails per message in section 4c's backlog")
    parser.add_argument("--only-costs", action="store_true", help="run section 8 (what it costs) alone")
    parser.add_argument("--idle-seconds", type=float, default=60, help="section 8's idle window")
    parser.add_argument("--overload-connections", type=int, default=1024)
    parser.add_argument("--write", type=Path, help="append the table to this markdown file")
    parser.add_argument("--only-tracing", action="store_true", help="run section 9 (tracing cost) alone")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian package wrk; scripts/tools/install-bench.sh)")

    report = Report()
    work = Path(tempfile.mkdtemp(prefix="email-ingest-bench-"))
    load_average = os.getloadavg()
    print(f"logs in {work}", flush=True)
    with ExitStack() as cleanup:
        bench = start(args, report, work, cleanup)
        if args.only_costs:
            line, ok = "section 8 alone (--only-costs)", costs(bench)
        elif args.only_tracing:
            tracing_cost(bench)
            line, ok = "section 9 alone (--only-tracing)", True
        else:
            line, ok = all_sections(bench)
    return _finish(args, report, load_average, f"- {line}", ok=ok)


def _finish(
    args: argparse.Namespace, report: Report, load_average: tuple[float, float, float], last: str, *, ok: bool
) -> int:
    header = (
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {platform.node()}, {psutil.cpu_count()} cores, "
        f"{_cpu_model()}, Python {platform.python_version()}; load average at start "
        f"{load_average[0]:.1f}"
    )
    text = f"{header}\n\n{report.markdown()}\n\n" + "".join(f"- {note}\n" for note in report.notes) + f"{last}\n"
    print("\n" + text)
    if args.write:
        with args.write.open("a") as out:
            out.write("\n" + text)
    return 0 if ok else 1


def all_sections(bench: Bench) -> tuple[str, bool]:
    # The sections run in this order, not in their numbers': the consumers are measured before the API fills
    # the queue, and section 3 counts the SQS calls of section 2's emails; section 8 restarts both services.
    bare = ceiling(bench)
    per_email_cpu = consumers(bench)
    batched_consumer(bench, per_email_cpu)
    batched_consumer(bench, per_email_cpu, pack=bench.args.pack)
    api_run = api(bench, bare)
    sqs_requests_per_email(bench, api_run)
    end_to_end(bench, api_run)
    overload_url = overload(bench)
    line, ok = accounting(bench, (bench.stack.api_url, overload_url))
    ok = costs(bench) and ok  # after the accounting: its runs restart both services on fresh counters
    tracing_cost(bench)  # likewise: its emails are drained by its own consumer runs
    return line, ok


def answers(url: str) -> bool:
    return http_status(url) is not None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
