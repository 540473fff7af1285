"""SQS server throughput: SendMessageBatch x10, then ReceiveMessage(10) + DeleteMessageBatch, at a backlog.

Measures the queue server (and botocore's client cost), not the services. Starts its own ElasticMQ (default) or
moto server on 127.0.0.1, or uses an existing queue::

    python -m loadtest.sqs_bench --server elasticmq --backlog 10000 --threads 8
    python -m loadtest.sqs_bench --server moto --backlog 1000
    python -m loadtest.sqs_bench --endpoint-url http://127.0.0.1:9324 --queue-url http://.../q

Prints one JSON object with the rates. The client is boto3 in threads; on 2 cores the Python client may be the
bottleneck, so the figures are lower bounds for the server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import boto3
import psutil
from botocore.config import Config

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


@dataclass(frozen=True)
class BenchResult:
    server: str
    backlog: int
    body_bytes: int
    threads: int
    startup_seconds: float | None
    send_msgs_per_second: float
    receive_delete_msgs_per_second: float
    received: int
    server_cpu_seconds: float | None
    client_cpu_seconds: float


def _sqs_client(endpoint_url: str, threads: int) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(max_pool_connections=threads * 2, retries={"max_attempts": 3, "mode": "standard"}),
        **CREDENTIALS,
    )


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _run_parallel(threads: int, work: Callable[[], int], stop: Callable[[], bool]) -> int:
    total = 0
    lock = threading.Lock()

    def loop() -> None:
        nonlocal total
        while not stop():
            done = work()
            with lock:
                total += done

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(loop) for _ in range(threads)]:
            future.result()
    return total


def measure(
    endpoint_url: str, queue_url: str, *, backlog: int, body_bytes: int, threads: int
) -> tuple[float, float, int]:
    """Returns (send msgs/s, receive+delete msgs/s, messages received)."""
    client = _sqs_client(endpoint_url, threads)
    client.purge_queue(QueueUrl=queue_url)
    body = json.dumps({"v": 1, "email": {"email_content": "x" * body_bytes}})
    batches = (backlog + 9) // 10
    batch_counter = iter(range(batches))
    counter_lock = threading.Lock()
    remaining = [batches]

    def send_one_batch() -> int:
        with counter_lock:
            if next(batch_counter, None) is None:
                return 0
            remaining[0] -= 1
        entries = [{"Id": str(i), "MessageBody": body} for i in range(10)]
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed entries: {response['Failed']}")
        return len(response["Successful"])

    started = time.perf_counter()
    sent = _run_parallel(threads, send_one_batch, lambda: remaining[0] <= 0)
    send_rate = sent / (time.perf_counter() - started)

    received = [0]
    empty_polls = [0]

    def receive_and_delete() -> int:
        response = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120
        )
        messages = response.get("Messages", [])
        if not messages:
            with counter_lock:
                empty_polls[0] += 1
            return 0
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        with counter_lock:
            received[0] += len(messages)
        return len(messages)

    started = time.perf_counter()
    drained = _run_parallel(threads, receive_and_delete, lambda: received[0] >= sent or empty_polls[0] > threads)
    receive_rate = drained / (time.perf_counter() - started)
    return send_rate, receive_rate, drained


@contextlib.contextmanager
def _server(kind: str) -> Iterator[tuple[str, str, float | None, int | None]]:
    """Yields (endpoint URL, queue URL, start-up seconds, server pid when it is a separate process)."""
    if kind == "elasticmq":
        from devstack.elasticmq import ElasticMQServer  # noqa: PLC0415 - only when asked for

        with ElasticMQServer(queue_name="bench", dlq_name="bench-dlq") as server:
            yield server.endpoint_url, server.queue_url, server.startup_seconds, server.pid
        return
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only when asked for

    started = time.perf_counter()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        queue_url = _sqs_client(endpoint_url, 1).create_queue(QueueName="bench")["QueueUrl"]
        yield endpoint_url, queue_url, time.perf_counter() - started, None
    finally:
        moto.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["elasticmq", "moto"], default="elasticmq")
    parser.add_argument("--endpoint-url", help="use this SQS endpoint instead of starting a server")
    parser.add_argument("--queue-url", help="with --endpoint-url: the queue to use (it is purged)")
    parser.add_argument("--backlog", type=int, default=10_000, help="messages sent, then drained")
    parser.add_argument("--body-bytes", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1, help="repeat on the same server (later rounds: warm JIT)")
    parser.add_argument("--threads", type=int, default=min(8, 4 * (os.cpu_count() or 1)))
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    def run(endpoint_url: str, queue_url: str, startup: float | None, server: str, pid: int | None) -> BenchResult:
        server_process = psutil.Process(pid) if pid is not None else None
        server_cpu_before = _cpu_seconds(server_process)
        client_cpu_before = _cpu_seconds(psutil.Process())
        send_rate, receive_rate, received = measure(
            endpoint_url, queue_url, backlog=args.backlog, body_bytes=args.body_bytes, threads=args.threads
        )
        return BenchResult(
            server=server,
            backlog=args.backlog,
            body_bytes=args.body_bytes,
            threads=args.threads,
            startup_seconds=None if startup is None else round(startup, 2),
            send_msgs_per_second=round(send_rate, 1),
            receive_delete_msgs_per_second=round(receive_rate, 1),
            received=received,
            server_cpu_seconds=(
                None if server_process is None else round(_cpu_seconds(server_process) - server_cpu_before, 1)
            ),
            client_cpu_seconds=round(_cpu_seconds(psutil.Process()) - client_cpu_before, 1),
        )

    if args.endpoint_url:
        if not args.queue_url:
            parser.error("--endpoint-url needs --queue-url")
        results = [run(args.endpoint_url, args.queue_url, None, args.endpoint_url, None) for _ in range(args.rounds)]
    else:
        with _server(args.server) as (endpoint_url, queue_url, startup, pid):
            results = [run(endpoint_url, queue_url, startup, args.server, pid) for _ in range(args.rounds)]
    for result in results:
        print(json.dumps(asdict(result)))
    return 0 if all(result.received >= args.backlog for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
