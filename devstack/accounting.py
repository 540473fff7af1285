"""The accounting of a run through the pipeline: which emails the API acknowledged (the Ledger) and whether S3
holds each of them exactly once with the content sent (verify).

The soak (scripts/soak.py), the reliability and security tests and the benchmark count the same way with it;
devstack.sender is the client that fills a Ledger.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from api_service.clients import DEFAULT_CLIENT

KEY_PREFIX = "emails/"
BATCH_KEY_PREFIX = "batches/"
_BATCH_KEY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.ndjson\.gz$")


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


def expected_object(email_id: str, data: dict[str, Any], client: str = DEFAULT_CLIENT) -> dict[str, Any]:
    """What the consumer must store for an email (received_at is checked for its format only); `client` is the
    name of the client whose token sent it (the soak and the bench send with the single token: `default`)."""
    return {
        "email_id": email_id,
        "client": client,
        "email_subject": data["email_subject"],
        "email_sender": data["email_sender"],
        "email_timestream": int(data["email_timestream"]),
        "email_content": data["email_content"],
    }


def object_key(email_id: str, data: dict[str, Any], prefix: str = KEY_PREFIX) -> str:
    day = datetime.fromtimestamp(int(data["email_timestream"]), tz=UTC)
    return f"{prefix}{day:%Y/%m/%d}/{email_id}.json"


# -- the ledger ---------------------------------------------------------------------------------------------


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
        if page.get("IsTruncated") and not page.get("NextKeyMarker"):
            # botocore's paginator stops here without a word (gofakes3 does this): never count short.
            raise RuntimeError(f"the S3 server truncated ListObjectVersions under {prefix!r} without a NextKeyMarker")
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


@dataclass
class BatchedVerdict(Verdict):
    """The batched layout delivers at least once: an email in two batches is a duplicate line, counted, not a
    failure (readers deduplicate by email_id)."""

    duplicate_lines: int = 0
    batches: int = 0

    def line(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, stored {self.stored}, missing {self.missing}, "
            f"duplicate lines {self.duplicate_lines} (in {self.batches} batches)"
        )


def verify_batched(
    s3: Any,
    bucket: str,
    ledger: Ledger,
    *,
    prefix: str = BATCH_KEY_PREFIX,
    check_content: bool = True,
    workers: int = 8,
) -> BatchedVerdict:
    """Reads every batch under `prefix` and compares its lines with the ledger: each acknowledged email at least
    once, with the content sent, in the partition of its received_at hour; nothing that was not acknowledged."""
    keys = [item["Key"] for item in list_keys(s3, bucket, prefix)]

    def read(key: str) -> list[tuple[str, dict[str, Any]]]:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return [(key, json.loads(line)) for line in body.splitlines()]

    with ThreadPoolExecutor(workers) as pool:
        lines = [line for batch in pool.map(read, keys) for line in batch]
    per_id: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, document in lines:
        per_id.setdefault(str(document.get("email_id")), []).append((key, document))
    details: list[str] = []
    unexpected = [email_id for email_id in per_id if email_id not in ledger.acknowledged]
    details.extend(f"stored, never acknowledged: {email_id}" for email_id in unexpected[:20])
    missing = [email_id for email_id in ledger.acknowledged if email_id not in per_id]
    details.extend(f"acknowledged, not stored: {email_id}" for email_id in missing[:20])
    mismatched: list[str] = []
    stored = 0
    for email_id, entry in ledger.acknowledged.items():
        for key, document in per_id.get(email_id, []):
            partition = _BATCH_KEY.search(key)
            received_at = document.pop("received_at", None)
            if partition is None or not isinstance(received_at, str) or not received_at.endswith("Z"):
                mismatched.append(f"{email_id}: bad key {key} or received_at {received_at!r}")
            elif not received_at.startswith(f"{partition.group(1)}T{partition.group(2)}:"):
                mismatched.append(f"{email_id}: received at {received_at}, stored in {key}")
            elif check_content and document != expected_object(email_id, entry.data):
                mismatched.append(f"{email_id}: content differs in {key}: {document!r}")
            else:
                continue
            break
        else:
            stored += 1 if email_id in per_id else 0
    details.extend(mismatched[:20])
    return BatchedVerdict(
        acknowledged=len(ledger.acknowledged),
        stored=stored,
        missing=len(missing),
        duplicates=0,
        unexpected=len(unexpected),
        mismatched=len(mismatched),
        details=details,
        duplicate_lines=len(lines) - len(per_id),
        batches=len(keys),
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


def wait_for_empty_queue(sqs: Any, queue_url: str, *, timeout: float, stable_seconds: float = 3.0) -> bool:
    """Polls until the queue has nothing visible and nothing in flight for `stable_seconds` (SQS's counts are
    approximate and lag), or time runs out; True when it emptied."""
    deadline = time.monotonic() + timeout
    empty_since: float | None = None
    while time.monotonic() < deadline:
        if queue_depths(sqs, queue_url) == (0, 0):
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= stable_seconds:
                return True
        else:
            empty_since = None
        time.sleep(0.5)
    return False
