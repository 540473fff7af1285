"""Moves messages from the dead-letter queue back to the main queue: receive, send, delete; bounded.

    python -m consumer_service.redrive --source DLQ_URL --destination QUEUE_URL [--max-messages 1000] [--dry-run]

For emulators without `StartMessageMoveTask` (moto) and for picking only some messages. A message is
deleted from the source only after the destination accepted it, so an interrupted run duplicates at
worst (the consumer's conditional writes make that harmless) and never loses.

Sends are packed by bytes (body and message attributes, at most 1 MiB and 10 entries per SendMessageBatch; a
message is always sendable alone). Entries the destination refuses for a transient reason (throttling, server
fault) and calls that fail as a whole are retried with a bounded backoff; what is still not accepted stays in the
source. Progress goes to stderr as JSON lines, the summary to stdout as `{"summary": {...}}`. Exit status: 0 when
every message received was moved (or listed, with --dry-run), 1 when any was left in the source, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final, TypeVar

import aioboto3
import orjson

from ingest_common.aws import THROTTLING_CODES, client_config, error_code, full_jitter_seconds, is_retryable
from ingest_common.sqs_limits import MAX_BATCH_BYTES, SQS_MAX_BATCH, message_payload_bytes

T = TypeVar("T")

CALL_TIMEOUT_SECONDS: Final = 20.0
"""Read timeout of one SQS call; a 1 MiB SendMessageBatch needs a fraction of it on a working link."""
VISIBILITY_TIMEOUT_SECONDS: Final = 300
"""Hides a received group while it is sent and deleted. The retries of a group stop in time (see `_Redrive`), so
a message being worked on does not reappear; one left behind is given back at the end of the run."""
# Only system attributes SendMessage accepts are copied (SenderId, SentTimestamp, receive counts... cannot be).
_SENDABLE_SYSTEM_ATTRIBUTES: Final = ("AWSTraceHeader",)
_ATTRIBUTE_VALUE_KEYS: Final = ("DataType", "StringValue", "BinaryValue", "StringListValues", "BinaryListValues")
# Whole-call errors one entry can cause: the batch is halved until the entry is alone, and only it is refused.
_ENTRY_CONTENT_ERRORS: Final = frozenset(
    {"BatchRequestTooLong", "InvalidMessageContents", "MessageTooLong", "InvalidParameterValue",
     "InvalidAttributeName", "InvalidAttributeValue"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most `attempts` tries per entry and per call, with full-jitter exponential backoff between rounds."""

    attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 10.0

    def delay(self, attempt: int) -> float:
        return full_jitter_seconds(attempt, base=self.backoff_base_seconds, cap=self.backoff_cap_seconds)


@dataclass
class RedriveReport:
    """Every message received (new to this run) ends as exactly one of moved, failed, duplicates or not_sent."""

    received: int = 0
    moved: int = 0  # accepted by the destination and deleted from the source
    left: int = 0  # received and still in the source: failed + duplicates + not_sent
    failed: int = 0  # the destination did not accept it (refused, or retries exhausted)
    duplicates: int = 0  # accepted by the destination but not deleted from the source: a rerun sends it again
    not_sent: int = 0  # never sent: the run stopped first
    retries: int = 0  # entries sent again after a transient failure
    errors: dict[str, int] = field(default_factory=dict)  # error code -> entries or calls that got it
    stopped: str | None = None  # why the run ended before the source was empty or --max-messages was reached
    dry_run: bool = False

    def count_error(self, code: str, amount: int = 1) -> None:
        self.errors[code] = self.errors.get(code, 0) + amount

    def summary(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "moved": self.moved,
            "left": self.left,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "not_sent": self.not_sent,
            "retries": self.retries,
            "errors": dict(sorted(self.errors.items())),
            "stopped": self.stopped,
            "dry_run": self.dry_run,
        }


def pack_batches(
    items: Sequence[T],
    size: Callable[[T], int],
    *,
    max_bytes: int = MAX_BATCH_BYTES,
    max_entries: int = SQS_MAX_BATCH,
) -> list[list[T]]:
    """Splits items, in order, into batches of at most `max_entries` whose sizes add up to at most `max_bytes`.

    An item larger than `max_bytes` on its own gets a batch of its own: the service, not this function, decides
    whether it is too large.
    """
    batches: list[list[T]] = []
    batch: list[T] = []
    batch_bytes = 0
    for item in items:
        item_bytes = size(item)
        if batch and (len(batch) >= max_entries or batch_bytes + item_bytes > max_bytes):
            batches.append(batch)
            batch, batch_bytes = [], 0
        batch.append(item)
        batch_bytes += item_bytes
    if batch:
        batches.append(batch)
    return batches


def send_entry(message: Mapping[str, Any]) -> dict[str, Any]:
    """A SendMessageBatch entry (without its Id) carrying the received message's body and attributes unchanged."""
    entry: dict[str, Any] = {"MessageBody": message["Body"]}
    attributes = {
        name: {key: value[key] for key in _ATTRIBUTE_VALUE_KEYS if value.get(key) not in (None, [])}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    system = {
        name: {"DataType": "String", "StringValue": value}
        for name in _SENDABLE_SYSTEM_ATTRIBUTES
        if (value := (message.get("Attributes") or {}).get(name))
    }
    if system:  # does not count towards the message size
        entry["MessageSystemAttributes"] = system
    return entry


@dataclass(slots=True, eq=False)
class _Message:
    id: str  # the batch entry Id: unique within its received group
    message_id: str
    receipt_handle: str
    entry: dict[str, Any]
    size: int
    attempts: int = 0
    error: str = ""


class _Stop(Exception):
    """The run cannot go on (calls keep failing, or a permanent error): report and stop."""


class _Redrive:
    def __init__(
        self,
        sqs: Any,
        *,
        source: str,
        destination: str,
        max_messages: int,
        dry_run: bool,
        wait_seconds: int,
        visibility_timeout: int,
        retry: RetryPolicy,
        progress: IO[str] | None,
        progress_seconds: float,
        progress_every: int,
        out: IO[str],
        stop_requested: asyncio.Event,
    ) -> None:
        self.sqs = sqs
        self.source = source
        self.destination = destination
        self.max_messages = max_messages
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.retry = retry
        self.report = RedriveReport(dry_run=dry_run)
        self.progress = progress
        self.progress_seconds = progress_seconds
        self.progress_every = progress_every
        self.out = out
        self.stop_requested = stop_requested
        self.started = time.monotonic()
        self.last_progress = self.started
        self.last_progress_received = 0
        # Messages this run received and did not move, by MessageId -> latest receipt handle. Kept invisible until
        # the end, then given back (visibility 0) for a rerun; one that reappears meanwhile is not handled twice.
        self.held: dict[str, str] = {}
        self.done: set[str] = set()  # moved: a reappearance (a delete SQS lost) is not sent again in this run
        self.consecutive_send_failures = 0

    # -- output -----------------------------------------------------------------------------------

    def event(self, name: str, **fields: Any) -> None:
        if self.progress is not None:
            self.progress.write(orjson.dumps({"event": name, **fields}).decode() + "\n")
            self.progress.flush()

    def maybe_progress(self, *, final: bool = False) -> None:
        now = time.monotonic()
        due = now - self.last_progress >= self.progress_seconds or (
            self.report.received - self.last_progress_received >= self.progress_every
        )
        if self.progress is None or not (due or final):
            return
        self.last_progress, self.last_progress_received = now, self.report.received
        report = self.report
        line = {
            "received": report.received,
            "moved": report.moved,
            "left": report.failed + report.duplicates + report.not_sent,
            "failed": report.failed,
            "duplicates": report.duplicates,
            "elapsed_seconds": round(now - self.started, 1),
        }
        self.progress.write(orjson.dumps({"progress": line}).decode() + "\n")
        self.progress.flush()

    # -- calls with retries -----------------------------------------------------------------------

    async def call(self, operation: str, request: Callable[[], Awaitable[Any]], *, attempts: int | None = None) -> Any:
        """One SQS call, retried on transient failures; raises _Stop once it gives up."""
        attempts = attempts or self.retry.attempts
        for attempt in range(1, attempts + 1):
            try:
                return await request()
            except Exception as exc:
                code = error_code(exc)
                retryable = is_retryable(exc)
                self.report.count_error(code)
                self.event("call_failed", operation=operation, error=code, attempt=attempt, retryable=retryable)
                if not retryable or attempt == attempts:
                    raise _Stop(f"{operation} failed: {code}") from exc
                await asyncio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the run ----------------------------------------------------------------------------------

    async def run(self) -> RedriveReport:
        report = self.report
        empty_receives = 0
        try:
            while report.received < self.max_messages and empty_receives < 2:
                if self.stop_requested.is_set():
                    report.stopped = "interrupted"
                    break
                messages = await self.receive(min(SQS_MAX_BATCH, self.max_messages - report.received))
                if not messages:
                    empty_receives += 1
                    continue
                empty_receives = 0
                report.received += len(messages)
                if report.dry_run:
                    for message in messages:
                        self.list_message(message)
                        self.held[message["MessageId"]] = message["ReceiptHandle"]
                else:
                    await self.move_group(messages)
                self.maybe_progress()
        except _Stop as stop:
            report.stopped = str(stop)
            self.event("stopped", reason=report.stopped)
        finally:
            await self.release()
            report.left = report.failed + report.duplicates + report.not_sent
            self.maybe_progress(final=True)
        return report

    async def receive(self, count: int) -> list[dict[str, Any]]:
        """New messages only: one this run already handled (its visibility ran out) is noted, not returned."""
        request = functools.partial(
            self.sqs.receive_message,
            QueueUrl=self.source,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=self.wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=list(_SENDABLE_SYSTEM_ATTRIBUTES),
        )
        response = await self.call("ReceiveMessage", request)
        fresh = []
        for message in response.get("Messages", []):
            message_id = message["MessageId"]
            if message_id in self.held:
                self.held[message_id] = message["ReceiptHandle"]  # only the latest handle can release it
            elif message_id not in self.done:
                fresh.append(message)
        return fresh

    def list_message(self, message: Mapping[str, Any]) -> None:
        entry = send_entry(message)
        line = {
            "message_id": message["MessageId"],
            "body_bytes": len(message["Body"].encode("utf-8", "surrogatepass")),
            "payload_bytes": message_payload_bytes(entry["MessageBody"], entry.get("MessageAttributes")),
            "attributes": sorted(entry.get("MessageAttributes", {})),
        }
        self.out.write(orjson.dumps(line).decode() + "\n")

    async def move_group(self, received: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        # No send starts unless it can finish (one call timeout plus a margin) before the group's visibility ends.
        last_start = loop.time() + self.visibility_timeout - min(CALL_TIMEOUT_SECONDS + 10, self.visibility_timeout / 2)
        group: list[_Message] = []
        for index, message in enumerate(received):
            entry = send_entry(message)
            size = message_payload_bytes(entry["MessageBody"], entry.get("MessageAttributes"))
            group.append(_Message(str(index), message["MessageId"], message["ReceiptHandle"], entry, size))
        accepted: list[_Message] = []
        try:
            to_send = group
            for round_ in range(self.retry.attempts):
                if round_:
                    self.report.retries += len(to_send)
                    await asyncio.sleep(self.retry.delay(round_))
                again: list[_Message] = []
                for batch in pack_batches(to_send, lambda message: message.size):
                    if loop.time() > last_start or self.stop_requested.is_set():
                        break  # the rest stays in the source
                    sent, retry = await self.send(batch)
                    accepted.extend(sent)
                    again.extend(retry)
                to_send = again
                if not to_send or loop.time() > last_start or self.stop_requested.is_set():
                    break
        finally:
            # Whatever happened, only what the destination accepted is deleted; the rest is kept and given back.
            moved = {item.id for item in accepted}
            for item in group:
                if item.id in moved:
                    continue
                if item.attempts == 0:
                    self.report.not_sent += 1
                else:
                    self.report.failed += 1
                    self.event("not_moved", message_id=item.message_id, error=item.error, attempts=item.attempts)
                self.held[item.message_id] = item.receipt_handle
            if accepted:
                await self.delete(accepted)

    async def send(self, batch: list[_Message]) -> tuple[list[_Message], list[_Message]]:
        """One SendMessageBatch: (accepted, to retry). Entries refused for good are in neither."""
        by_id = {message.id: message for message in batch}
        request = functools.partial(
            self.sqs.send_message_batch,
            QueueUrl=self.destination,
            Entries=[{"Id": message.id, **message.entry} for message in batch],
        )
        try:
            response = await self.call("SendMessageBatch", request, attempts=1)
        except _Stop as stop:
            cause = stop.__cause__
            code = error_code(cause) if cause is not None else "Unknown"
            if _bare_code(code) in _ENTRY_CONTENT_ERRORS:  # one entry spoils the call: find it by halving
                if len(batch) > 1:
                    half = len(batch) // 2
                    first, second = await self.send(batch[:half]), await self.send(batch[half:])
                    return first[0] + second[0], first[1] + second[1]
                batch[0].attempts += 1
                batch[0].error = code
                return [], []
            for message in batch:
                message.attempts += 1
                message.error = code
            if cause is None or not is_retryable(cause):
                raise
            self.consecutive_send_failures += 1
            if self.consecutive_send_failures >= self.retry.attempts:
                failures = self.consecutive_send_failures
                raise _Stop(f"SendMessageBatch failed {failures} times in a row: {code}") from cause
            return [], [message for message in batch if message.attempts < self.retry.attempts]
        self.consecutive_send_failures = 0
        answered = [by_id.pop(str(success.get("Id")), None) for success in response.get("Successful", ())]
        accepted = [message for message in answered if message is not None]
        failed = {str(failure.get("Id")): failure for failure in response.get("Failed", ())}
        again = []
        for message in by_id.values():  # refused, or not mentioned at all: never assume success
            failure = failed.get(message.id, {"Code": "MissingFromResponse", "SenderFault": False})
            message.attempts += 1
            message.error = str(failure.get("Code", "Unknown"))
            self.report.count_error(message.error)
            if _transient(failure) and message.attempts < self.retry.attempts:
                again.append(message)
        return accepted, again

    async def delete(self, accepted: list[_Message]) -> None:
        """Deletes what the destination accepted; what cannot be deleted is a duplicate, and reported as one."""
        pending = list(accepted)
        try:
            for round_ in range(self.retry.attempts):
                if round_:
                    self.report.retries += len(pending)
                    await asyncio.sleep(self.retry.delay(round_))
                request = functools.partial(
                    self.sqs.delete_message_batch,
                    QueueUrl=self.source,
                    Entries=[{"Id": message.id, "ReceiptHandle": message.receipt_handle} for message in pending],
                )
                response = await self.call("DeleteMessageBatch", request)
                by_id = {message.id: message for message in pending}
                for success in response.get("Successful", ()):
                    if (message := by_id.pop(str(success.get("Id")), None)) is not None:
                        self.report.moved += 1
                        self.done.add(message.message_id)
                failed = {str(failure.get("Id")): failure for failure in response.get("Failed", ())}
                pending = []
                for message in by_id.values():  # failed, or not mentioned at all
                    failure = failed.get(message.id, {"Code": "MissingFromResponse", "SenderFault": False})
                    message.error = str(failure.get("Code", "Unknown"))
                    self.report.count_error(message.error)
                    if _transient(failure):
                        pending.append(message)
                    else:
                        self.duplicate(message)
                if not pending:
                    return
        finally:
            for message in pending:
                self.duplicate(message)

    def duplicate(self, message: _Message) -> None:
        self.report.duplicates += 1
        self.held[message.message_id] = message.receipt_handle
        self.event("duplicate", message_id=message.message_id, error=message.error,
                   meaning="in the destination and still in the source; a rerun sends it again (harmless)")  # fmt: skip

    async def release(self) -> None:
        """Gives every message this run kept and did not move back to the source at once (visibility 0)."""
        handles = list(self.held.values())
        self.held.clear()
        released = 0
        for start in range(0, len(handles), SQS_MAX_BATCH):
            request = functools.partial(
                self.sqs.change_message_visibility_batch,
                QueueUrl=self.source,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, handle in enumerate(handles[start : start + SQS_MAX_BATCH])
                ],
            )
            try:
                response = await self.call("ChangeMessageVisibilityBatch", request, attempts=2)
            except _Stop:
                continue  # they reappear by themselves when their visibility timeout ends
            released += len(response.get("Successful", ()))
        if released < len(handles):
            self.event("not_released", messages=len(handles) - released,
                       meaning=f"visible again within {self.visibility_timeout} s")  # fmt: skip


def _bare_code(code: str) -> str:
    return code.removeprefix("AWS.SimpleQueueService.")


def _transient(failure: Mapping[str, Any]) -> bool:
    """A refused batch entry worth another try: a server fault, or throttling (which may say SenderFault=true)."""
    return not failure.get("SenderFault", False) or str(failure.get("Code")) in THROTTLING_CODES


async def redrive(
    sqs: Any,
    *,
    source: str,
    destination: str,
    max_messages: int,
    dry_run: bool,
    wait_seconds: int = 1,
    visibility_timeout: int = VISIBILITY_TIMEOUT_SECONDS,
    retry: RetryPolicy | None = None,
    progress: IO[str] | None = None,
    progress_seconds: float = 5.0,
    progress_every: int = 100,
    out: IO[str] | None = None,
    stop_requested: asyncio.Event | None = None,
) -> RedriveReport:
    """Moves up to `max_messages` from `source` to `destination`; progress and events as JSON lines on `progress`."""
    return await _Redrive(
        sqs,
        source=source,
        destination=destination,
        max_messages=max_messages,
        dry_run=dry_run,
        wait_seconds=wait_seconds,
        visibility_timeout=visibility_timeout,
        retry=retry or RetryPolicy(),
        progress=progress,
        progress_seconds=progress_seconds,
        progress_every=progress_every,
        out=out or sys.stdout,
        stop_requested=stop_requested or asyncio.Event(),
    ).run()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m consumer_service.redrive", description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="the dead-letter queue URL")
    parser.add_argument("--destination", required=True, help="the main queue URL")
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many (default 1000)")
    parser.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
    parser.add_argument(
        "--progress-seconds", type=float, default=5.0, help="a progress line on stderr at most this often (default 5)"
    )
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)
    if args.max_messages < 1:
        parser.error("--max-messages must be at least 1")
    if args.progress_seconds < 0:
        parser.error("--progress-seconds must be at least 0")
    if not args.region:
        parser.error("--region (or AWS_REGION) is required")
    return args


async def _main(args: argparse.Namespace) -> RedriveReport:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # finish the batch under way, give the rest back, report
        loop.add_signal_handler(signum, stop_requested.set)
    session = aioboto3.Session()
    # This tool retries by itself (and counts it): one attempt per client call.
    config = client_config(max_pool_connections=2, read_timeout=CALL_TIMEOUT_SECONDS, max_attempts=1)
    async with session.client("sqs", region_name=args.region, config=config) as sqs:
        return await redrive(
            sqs,
            source=args.source,
            destination=args.destination,
            max_messages=args.max_messages,
            dry_run=args.dry_run,
            progress=sys.stderr,
            progress_seconds=args.progress_seconds,
            stop_requested=stop_requested,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(_main(args))
    print(orjson.dumps({"summary": report.summary()}).decode(), flush=True)
    return 1 if report.left else 0


if __name__ == "__main__":
    sys.exit(main())
