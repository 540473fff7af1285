"""STORAGE_LAYOUT=batched end to end: API -> SQS -> consumer -> gzip NDJSON batches in S3, read back with DuckDB.

The stack runs as real processes (moto, both services); DuckDB reads the objects the run wrote with Hive
partitioning, with the column names and types of the Glue table in terraform/modules/catalog.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from devstack.bootstrap import StackNames, emulator_client
from devstack.emulator import MotoServer
from devstack.metrics_text import metric_value, scrape
from devstack.stack import DevStack, StackConfig
from tests.aws_helpers import queue_depth, seed_payload, stored_keys, wait_for
from tests.support.api import post_many
from tests.terraform.hcl import MODULES_DIR, load_dir

BATCH_KEY = re.compile(r"batches/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/\d{8}T\d{6}Z-[0-9a-f]{32}\.ndjson\.gz")
GLUE_TO_DUCKDB = {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "date": "DATE"}


def batched_stack_on(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer, **consumer_env: str) -> DevStack:
    return DevStack(
        StackConfig(
            names=stack_names,
            log_dir=tmp_path,
            emulator_endpoint_url=moto_server.endpoint_url,
            consumer_env={"SQS_WAIT_TIME_SECONDS": "1", "STORAGE_LAYOUT": "batched", **consumer_env},
        )
    )


@pytest.fixture
def batched_stack(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer) -> Iterator[DevStack]:
    with batched_stack_on(tmp_path, stack_names, moto_server, BATCH_MAX_SECONDS="1", BATCH_MAX_EMAILS="40") as running:
        yield running


def glue_columns() -> tuple[dict[str, str], dict[str, str]]:
    """(columns, partitions) of the Glue table, as DuckDB types."""
    catalog = load_dir(MODULES_DIR / "catalog")
    columns = {column["name"]: GLUE_TO_DUCKDB[column["type"]] for column in catalog.locals["columns"]}
    table = next(r for r in catalog.resources if r.type == "aws_glue_catalog_table")
    partitions = {key["name"]: GLUE_TO_DUCKDB[key["type"]] for key in table.body["partition_keys"]}
    return columns, partitions


def download(endpoint_url: str, bucket: str, prefix: str, into: Path) -> list[str]:
    s3 = emulator_client("s3", endpoint_url)
    keys = sorted(stored_keys(endpoint_url, bucket, prefix))
    for key in keys:
        target = into / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return keys


def query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    columns, partitions = glue_columns()
    source = (
        f"read_json('{root}/batches/*/*/*.ndjson.gz', format = 'newline_delimited', compression = 'gzip', "
        f"hive_partitioning = true, hive_types = {partitions!r}, columns = {columns!r})"
    )
    with duckdb.connect() as connection:
        return connection.execute(sql.replace("emails", source)).fetchall()


def test_batched_run_is_read_back_by_duckdb_deduplicated_by_email_id(batched_stack: DevStack, tmp_path: Path) -> None:
    resources = batched_stack.resources
    assert resources is not None
    count = 120

    # Every tenth request repeats the one before with the same Idempotency-Key: one email_id.
    def original(i: int) -> int:
        return i - 1 if i % 10 == 0 and i > 0 else i

    payloads = [
        seed_payload(batched_stack.token, email_subject=f"subject {original(i)}",
                     email_content=f"line one\nline \"two\" {original(i)} ✓",
                     email_timestream=str(1693561101 + original(i)))
        for i in range(count)
    ]  # fmt: skip
    headers = [{"Idempotency-Key": f"batched-{original(i)}"} for i in range(count)]
    results = asyncio.run(post_many(batched_stack.api_url, payloads, headers, connections=16))
    assert [status for status, _ in results] == [200] * count
    acknowledged = {body["email_id"]: payload["data"] for (_, body), payload in zip(results, payloads, strict=True)}

    # A redelivery after its batch was written: the same envelope again (as when a delete is lost).
    sqs = emulator_client("sqs", batched_stack.endpoint_url)
    wait_for(lambda: queue_depth(batched_stack.endpoint_url, resources.queue_url) == (0, 0), timeout=120,
             interval=0.5, message="every message stored and deleted")  # fmt: skip
    first_keys = stored_keys(batched_stack.endpoint_url, resources.bucket, "batches/")
    redelivered_id = next(iter(acknowledged))
    redelivered = acknowledged[redelivered_id]
    envelope = {
        "v": 1,
        "email_id": redelivered_id,
        "received_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": uuid.uuid4().hex,
        "email": {**redelivered, "email_timestream": int(redelivered["email_timestream"])},
    }
    sqs.send_message(QueueUrl=resources.queue_url, MessageBody=json.dumps(envelope))
    wait_for(lambda: len(stored_keys(batched_stack.endpoint_url, resources.bucket, "batches/")) > len(first_keys)
             and queue_depth(batched_stack.endpoint_url, resources.queue_url) == (0, 0),
             timeout=60, interval=0.5, message="the redelivered email's batch")  # fmt: skip

    keys = download(batched_stack.endpoint_url, resources.bucket, "batches/", tmp_path)
    assert keys and all(BATCH_KEY.fullmatch(key) for key in keys), keys
    assert stored_keys(batched_stack.endpoint_url, resources.bucket, "emails/") == set(), "no per-email objects"
    assert len(keys) >= 3, "BATCH_MAX_EMAILS=40 splits 109 emails"

    # Each line is the per-email document, in the partition of its received_at hour; every line names its client
    # but the one this test sent itself, as an API before clients would have.
    without_client = 0
    for key in keys:
        dt, hour = BATCH_KEY.fullmatch(key).groups()  # type: ignore[union-attr]
        for line in gzip.decompress((tmp_path / key).read_bytes()).splitlines():
            document = json.loads(line)
            without_client += "client" not in document
            assert [name for name in document if name != "client"] == ["email_id", "received_at", "email_subject",
                                                                        "email_sender", "email_timestream",
                                                                        "email_content"]  # fmt: skip
            assert document.get("client", "default") == "default"
            assert document["received_at"].startswith(f"{dt}T{hour}:")

    assert without_client == 1
    rows = query(tmp_path, "SELECT email_id, count(*) FROM emails GROUP BY email_id")
    copies = dict(rows)
    assert set(copies) == set(acknowledged), "every acknowledged email, nothing else"
    assert copies[redelivered_id] >= 2, "the redelivery is another line, in a later batch"

    deduplicated = query(
        tmp_path,
        "SELECT email_id, email_subject, email_sender, email_timestream, email_content, dt, hour FROM ("
        " SELECT *, row_number() OVER (PARTITION BY email_id ORDER BY received_at) AS copy FROM emails"
        ") WHERE copy = 1",
    )
    assert len(deduplicated) == len(acknowledged)
    for email_id, subject, sender, timestream, content, dt, hour in deduplicated:
        data = acknowledged[email_id]
        assert (subject, sender, content) == (data["email_subject"], data["email_sender"], data["email_content"])
        assert timestream == int(data["email_timestream"])
        assert isinstance(dt, type(datetime.now(UTC).date())) and isinstance(hour, int)

    # Every receive was accounted for: a line written, or a duplicate of a line in the same batch. (moto, like
    # SQS, sometimes delivers one message twice at once: that is why a receive, not a message, is the unit.)
    metrics = scrape(batched_stack.consumer_url)
    received = metric_value(metrics, "email_ingest_consumer_message_emails_sum")  # emails in received messages
    created = metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "created"})
    in_batch = metric_value(metrics, "email_ingest_consumer_emails_stored_total", {"result": "already_stored"})
    assert received >= count + 1
    assert (created, created + in_batch) == (sum(copies.values()), received)
    assert in_batch == metric_value(metrics, "email_ingest_consumer_batch_duplicates_total")
    assert metric_value(metrics, "email_ingest_consumer_batches_total", {"result": "written"}) == len(keys)


@pytest.fixture
def slow_batches_stack(tmp_path: Path, stack_names: StackNames, moto_server: MotoServer) -> Iterator[DevStack]:
    """Batches that would stay open for 10 minutes: only the drain writes them."""
    with batched_stack_on(
        tmp_path, stack_names, moto_server, BATCH_MAX_SECONDS="600", SHUTDOWN_GRACE_SECONDS="20"
    ) as running:
        yield running


def test_sigterm_writes_the_open_batch_and_deletes_its_messages(slow_batches_stack: DevStack) -> None:
    stack = slow_batches_stack
    resources = stack.resources
    assert resources is not None and stack.consumer is not None
    count = 30
    payloads = [seed_payload(stack.token, email_subject=f"held {i}") for i in range(count)]
    results = asyncio.run(post_many(stack.api_url, payloads, [{} for _ in payloads], connections=16))
    assert [status for status, _ in results] == [200] * count

    def held() -> float:
        return metric_value(scrape(stack.consumer_url), "email_ingest_consumer_batch_emails_held")

    wait_for(lambda: held() >= count, timeout=60, interval=0.5, message="the consumer to hold every email")
    assert stored_keys(stack.endpoint_url, resources.bucket, "batches/") == set(), "nothing written before SIGTERM"
    messages = len({body["message_id"] for _, body in results})  # concurrent requests may share packed messages
    assert queue_depth(stack.endpoint_url, resources.queue_url) == (0, messages), "held messages stay in flight"

    stack.consumer.signal(signal.SIGTERM)
    wait_for(lambda: not stack.consumer.running(), timeout=30, message="the consumer to drain and exit")
    assert stack.consumer.returncode() == 0
    keys = stored_keys(stack.endpoint_url, resources.bucket, "batches/")
    assert len(keys) == 1
    s3 = emulator_client("s3", stack.endpoint_url)
    (key,) = keys
    lines = gzip.decompress(s3.get_object(Bucket=resources.bucket, Key=key)["Body"].read()).splitlines()
    assert {json.loads(line)["email_id"] for line in lines} == {body["email_id"] for _, body in results}
    assert queue_depth(stack.endpoint_url, resources.queue_url) == (0, 0), "deleted within the grace period"
    assert '"reason":"drain"' in stack.consumer.log_text()
