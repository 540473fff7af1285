"""The receive side: concurrent long polls feeding a bounded pool of message processors.

A message is deleted only after every email in it is stored (one, or several in a version-2 pack); a
poison message is never deleted by us and is moved to the DLQ by the queue's redrive policy, no sooner
than the poison retry window after its first receive (see `PoisonSchedule` and docs/design.md); on
drain, long polls are cancelled, work under way finishes within the grace period and the rest is
released (visibility 0). While the queue is thin, the pollers receive one at a time, a fill time apart
(`ReceiveFill`): every receive is billed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from consumer_service.deleter import BatchDeleter
from consumer_service.heartbeat import Heartbeat
from consumer_service.metrics import ConsumerMetrics
from consumer_service.receive_fill import ReceiveFill
from consumer_service.spans import MessageSpans
from consumer_service.sqs_queue import Queue
from consumer_service.writer import StoreFailed, StoreResult
from ingest_common.aws import error_code
from ingest_common.envelope import Envelope, EnvelopeError, parse_message
from ingest_common.sqs_limits import SQS_MAX_BATCH
from ingest_common.tracing import exemplar

log = structlog.get_logger("consumer_service.consumer")

_RECEIVE_ERROR_BACKOFF_CAP_SECONDS = 10.0
MAX_VISIBILITY_SECONDS = 43_200  # SQS: 12 hours from the receive


@dataclass(frozen=True, slots=True)
class PoisonSchedule:
    """How long a poison message stays invisible after each receive, so that it reaches the DLQ late enough.

    SQS delivers a message `max_receive_count` times and moves it to the DLQ at the next receive. The delays
    double from one receive to the next and are scaled so that those after receives 1 .. max_receive_count - 1
    add up to at least `window_seconds` (the last delivery's delay comes on top): a message that every
    receive rejects stays in the main queue at least that long after its first receive, long enough for a
    rolling deploy to bring a consumer that can read it. Each delay is whole seconds, at least 1 and at most
    SQS's 12 hours (`window_seconds` is capped there, so the guarantee holds).
    """

    window_seconds: int
    max_receive_count: int

    def delay_seconds(self, receive_count: int) -> int:
        window = min(max(self.window_seconds, 1), MAX_VISIBILITY_SECONDS)
        spread = max(1, self.max_receive_count - 1)  # the receives whose delays must cover the window
        step = min(max(receive_count, 1), spread)  # past the spread: the longest delay again
        # ceil(window * 2**(step-1) / (2**spread - 1)), in integers (spread may be in the hundreds)
        exact = -(-window * (1 << (step - 1)) // ((1 << spread) - 1))
        return min(max(exact, 1), MAX_VISIBILITY_SECONDS)


class EmailStore(Protocol):
    """Where emails go: one object each (S3Writer) or batches (BatchedStore)."""

    async def room(self) -> None:
        """Returns when the store can take more emails (waited on before each receive)."""

    def add(self, envelope: Envelope) -> Awaitable[StoreResult]:
        """Resolves once the email is stored; raises StoreFailed when it could not be (keep the message)."""
        ...

    def seal_all(self) -> None:
        """Starts writing whatever is held back (on drain)."""

    async def close(self, timeout: float) -> None:
        """Gives up on writes still running after `timeout`."""


class Consumer:
    def __init__(
        self,
        *,
        queue: Queue,
        store: EmailStore,
        deleter: BatchDeleter,
        heartbeat: Heartbeat,
        pollers: int,
        max_in_flight: int,
        metrics: ConsumerMetrics,
        poison_schedule: PoisonSchedule,
        receive_fill_seconds: float = 0.0,
        spans: MessageSpans | None = None,
    ) -> None:
        self._queue = queue
        self._spans = spans or MessageSpans(None, "")
        self._store = store
        self._deleter = deleter
        self._heartbeat = heartbeat
        self._poller_count = pollers
        # One slot per message received and not yet finished: pollers ask SQS only for as many as there is room for.
        self._slots = asyncio.BoundedSemaphore(max_in_flight)
        self._metrics = metrics
        self._poison_schedule = poison_schedule
        # Shared by the pollers: while the queue is thin, one receive at a time, a fill time after the last short one.
        self._receive_fill = ReceiveFill(receive_fill_seconds)
        self._pollers: list[asyncio.Task[None]] = []
        self._processing: dict[asyncio.Task[None], str] = {}  # task -> receipt handle
        self._stopping = False

    @property
    def running(self) -> bool:
        return not self._stopping and bool(self._pollers) and all(not task.done() for task in self._pollers)

    @property
    def draining(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self._deleter.start()
        self._heartbeat.start()
        self._pollers = [
            asyncio.create_task(self._poll(number), name=f"poller-{number}") for number in range(self._poller_count)
        ]

    # -- receiving --------------------------------------------------------------------------------

    async def _poll(self, number: int) -> None:
        error_backoff = 0.5
        while not self._stopping:
            turn = await self._receive_fill.turn()
            asked = SQS_MAX_BATCH
            messages: list[dict[str, Any]] | None = None
            error = ""
            try:
                await self._store.room()
                asked = await _acquire_up_to(self._slots, SQS_MAX_BATCH)
                try:
                    response = await self._queue.receive(asked)
                except asyncio.CancelledError:
                    _release(self._slots, asked)
                    raise
                except Exception as exc:  # SQS unreachable or throttling: back off, keep the process alive
                    _release(self._slots, asked)
                    error = error_code(exc)
                else:
                    messages = response.get("Messages", [])
            finally:
                # Before the backoff or the processing: the next poller's turn does not wait for either.
                self._receive_fill.done(turn, received=None if messages is None else len(messages), asked=asked)
            if messages is None:
                log.warning("receive_failed", poller=number, error=error, retry_in_seconds=error_backoff)
                await asyncio.sleep(error_backoff)
                error_backoff = min(error_backoff * 2, _RECEIVE_ERROR_BACKOFF_CAP_SECONDS)
                continue
            error_backoff = 0.5
            _release(self._slots, asked - len(messages))
            self._observe_receive(messages)
            if self.draining:  # a poll that returned after the stop: give the messages back untouched
                await self._heartbeat.release([message["ReceiptHandle"] for message in messages])
                _release(self._slots, len(messages))
                return
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self._processing[task] = message["ReceiptHandle"]
                task.add_done_callback(self._processing.pop)

    def _observe_receive(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            self._metrics.receives_empty.inc()
            self._metrics.oldest_age.set(0)
            return
        self._metrics.receives_with_messages.inc()
        self._metrics.received.inc(len(messages))
        now_ms = time.time() * 1000
        sent = [int(message.get("Attributes", {}).get("SentTimestamp", now_ms)) for message in messages]
        self._metrics.oldest_age.set(max(0.0, (now_ms - min(sent)) / 1000))

    # -- processing -------------------------------------------------------------------------------

    async def _process(self, message: Mapping[str, Any]) -> None:
        """Stores every email of one message (one, or a version-2 pack), then deletes it; keeps it otherwise."""
        receipt_handle = str(message["ReceiptHandle"])
        message_id = str(message.get("MessageId", ""))
        receive_count = _receive_count(message)
        tracked = self._heartbeat.track(message_id, receipt_handle, time.monotonic())
        self._metrics.in_flight.inc()
        try:
            try:
                parsed = parse_message(message.get("Body", ""))
            except EnvelopeError as exc:
                self._heartbeat.untrack(tracked)  # an extension would undo the poison delay
                await self._poison(receipt_handle, message_id, receive_count, exc)
                return
            self._metrics.message_emails.observe(len(parsed.envelopes) + len(parsed.invalid))
            span = self._spans.process(message, parsed.envelopes, receive_count)
            del message  # the batched layout holds thousands of messages: keep no body while waiting for a batch
            with span as current:
                email_ids = [envelope.email_id for envelope in parsed.envelopes]
                request_ids = [envelope.request_id for envelope in parsed.envelopes]
                received = [envelope.received_at for envelope in parsed.envelopes]
                writes = [self._store.add(envelope) for envelope in parsed.envelopes]
                invalid = parsed.invalid
                del parsed
                outcomes = await asyncio.gather(*writes, return_exceptions=True)
                failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
                for outcome in failed:
                    if not isinstance(outcome, StoreFailed):
                        raise outcome
                bound = log.bind(message_id=message_id, email_ids=email_ids, request_ids=request_ids)
                if failed:  # every email must be stored before the message goes: it comes back for the others
                    bound.error("store_failed_message_kept", receive_count=receive_count, failed=len(failed))
                    MessageSpans.failed(current, "store_failed")
                    return
                now = datetime.now(UTC)
                trace_exemplar = exemplar() if current else None
                for received_at in received:
                    self._metrics.end_to_end.observe(max(0.0, (now - received_at).total_seconds()), trace_exemplar)
                self._heartbeat.untrack(tracked)  # stored: no extension of a message being deleted (or poison)
                if invalid:
                    # The valid emails are stored; the message is kept for the one(s) this consumer cannot read,
                    # and reaches the DLQ whole (docs/design.md, "Packed messages").
                    bound.warning("packed_message_partly_stored", stored=len(email_ids), invalid=len(invalid))
                    MessageSpans.failed(current, "invalid_email")
                    await self._poison(receipt_handle, message_id, receive_count, invalid[0])
                    return
                with self._spans.delete():
                    deleted = await self._deleter.delete(receipt_handle)
                bound.info("emails_stored", results=_count_results(outcomes), deleted=deleted)
        finally:
            self._heartbeat.untrack(tracked)
            self._metrics.in_flight.dec()
            self._slots.release()

    async def _poison(self, receipt_handle: str, message_id: str, receive_count: int, exc: EnvelopeError) -> None:
        """Left to the redrive policy: never deleted here, made visible again with a growing delay."""
        self._metrics.poison[exc.reason].inc()
        delay = self._poison_schedule.delay_seconds(receive_count)
        log.error(
            "poison_message",
            message_id=message_id,
            reason=exc.reason,
            detail=exc.detail[:300],
            receive_count=receive_count,
            visible_again_in_seconds=delay,
        )
        try:
            await self._queue.change_visibility(receipt_handle, delay)
        except Exception as change_error:  # it comes back after the queue's visibility timeout instead
            log.warning("poison_visibility_change_failed", error=error_code(change_error))

    # -- stopping ---------------------------------------------------------------------------------

    async def drain(self, grace_seconds: float) -> None:
        """Stop receiving, finish what is under way within the grace period, release the rest."""
        self._stopping = True
        started = time.monotonic()
        for task in self._pollers:
            task.cancel()
        await asyncio.gather(*self._pollers, return_exceptions=True)
        self._store.seal_all()  # the batched layout writes what it holds now, within the grace period
        unfinished: list[asyncio.Task[None]] = []
        if self._processing:
            _, pending = await asyncio.wait(list(self._processing), timeout=grace_seconds)
            unfinished = list(pending)
        released = [self._processing[task] for task in unfinished if task in self._processing]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if released:
            await self._heartbeat.release(released)
        await self._store.close(0)  # writes that outlived the grace period: their messages were released
        remaining = max(1.0, grace_seconds - (time.monotonic() - started))
        await self._deleter.close(remaining)
        await self._heartbeat.stop()
        log.info(
            "consumer_drained",
            seconds=round(time.monotonic() - started, 3),
            released=len(released),
        )


def _count_results(outcomes: list[StoreResult | BaseException]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, StoreResult):
            counts[outcome.value] = counts.get(outcome.value, 0) + 1
    return counts


def _receive_count(message: Mapping[str, Any]) -> int:
    try:
        return max(1, int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")))
    except ValueError:
        return 1


async def _acquire_up_to(slots: asyncio.BoundedSemaphore, wanted: int) -> int:
    """Waits for one free slot, then takes those free at once too, up to `wanted`."""
    await slots.acquire()
    taken = 1
    while taken < wanted and not slots.locked():  # not locked: acquire() returns without waiting
        await slots.acquire()
        taken += 1
    return taken


def _release(slots: asyncio.BoundedSemaphore, count: int) -> None:
    for _ in range(count):
        slots.release()  # ValueError when more are released than were taken
