"""One batching SQS publisher per process.

Concurrent requests hand their emails (envelope items, `Envelope.to_item`) to `publish()`; a single
dispatcher packs the waiting emails into version-2 messages of up to `max_message_bytes` each, and those
into `SendMessageBatch` calls (up to 10 messages and the batch byte limit), flushing when a call is full
or when its oldest email has waited `linger` seconds. A lone email is one message, sent after the same
linger as ever.

While two calls are in flight, a partial call is held (Kafka's linger.ms with bounded in-flight requests): only
whole messages go at once, and the partial rest waits until a call returns or its oldest email has waited
`linger + max_hold` seconds, whichever is first (released by a return, it lingers once more from then, so the
requests of the clients that call answers join it). When SQS answers slower than the linger, the emails that
arrive meanwhile ride one call instead of being split over many thin ones, each billed at least once.
`max_hold=0` is the old rule (every partial call goes at the linger); a drain never holds anything.

A request's future resolves with its MessageId only when SQS reported the message holding its email as
`Successful`; a message SQS refuses fails every email in it, and each is retried (repacked) with backoff and
jitter until its deadline, then its request is told the publish failed. Nothing is ever acknowledged that SQS
did not accept.

Why pack: SQS bills each request, and each 64 KiB of its payload, once; ReceiveMessage returns at most 10
messages and DeleteMessageBatch takes at most 10. Emails per message multiply what each of those calls
carries (docs/benchmarks.md, "What it costs").
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from api_service.metrics import PublisherMetrics
from ingest_common.aws import THROTTLING_CODES, error_code, full_jitter_seconds, is_retryable
from ingest_common.envelope import PACK_OVERHEAD_BYTES, pack_body
from ingest_common.sqs_limits import MAX_BATCH_BYTES, SQS_BILLING_CHUNK_BYTES, SQS_MAX_BATCH, message_payload_bytes

log = structlog.get_logger("api_service.publisher")

_BACKOFF_BASE_SECONDS: Final = 0.05
_BACKOFF_CAP_SECONDS: Final = 2.0

SendBatch = Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]]


class PublishRejected(Exception):
    """The message was not taken: the client should retry later (HTTP 503 + Retry-After)."""

    def __init__(self, reason: str, retry_after_seconds: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


@dataclass(slots=True, eq=False)
class _Entry:
    item: bytes
    attributes: dict[str, Any]
    size: int
    """Its bytes in a packed message: the item and the comma before it."""
    alone_size: int
    """The payload of a message holding it alone, with its attributes (a packed message carries none)."""
    future: asyncio.Future[str]
    enqueued_at: float
    deadline: float
    send_by: float
    """When its call goes at the latest, held or not: queued (or requeued after a backoff) + linger + max_hold.
    Entries in queue order have non-decreasing send_by, so the head's bounds every queued email's wait."""
    deferred: bool = False
    """Held back once already to align a call with SQS's billing chunks (see _defer_spill)."""
    attempts: int = 0
    last_error: str = field(default="")


class BatchPublisher:
    def __init__(
        self,
        send_batch: SendBatch,
        *,
        linger_seconds: float,
        max_batches_in_flight: int,
        max_pending: int,
        deadline_seconds: float,
        metrics: PublisherMetrics | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_message_bytes: int = 262_144,
        max_hold_seconds: float = 0.0,
        hold_at_in_flight: int = 2,
    ) -> None:
        if max_message_bytes > max_batch_bytes:
            raise ValueError(f"max_message_bytes {max_message_bytes} is above max_batch_bytes {max_batch_bytes}")
        self._send_batch = send_batch
        self._max_message_bytes = max_message_bytes
        # Queued bytes that fill one call: the dispatcher sends at once rather than lingering.
        self._full_bytes = min(max_batch_bytes, SQS_MAX_BATCH * max_message_bytes)
        self._linger = linger_seconds
        self._max_hold = max_hold_seconds
        # Calls in flight from which a partial call is held. Two, not one: with a single call out, the next goes at
        # the linger as ever, so the API's work on the next requests overlaps SQS's round trip; holding behind one
        # call serialized the calls at saturation (one out at a time, a return plus a linger apart), measured 1.3x
        # the old rule's p50 and 1.6x its p99 (docs/benchmarks.md, section 8). A third call is what goes thin.
        self._hold_at_in_flight = hold_at_in_flight
        # Queued bytes worth sending while a call is in flight: one whole message, and at least one billing
        # chunk (a call of several small whole messages under 64 KiB would be billed as a full chunk each).
        self._eager_bytes = min(self._full_bytes, max(max_message_bytes, SQS_BILLING_CHUNK_BYTES))
        self._in_flight = 0
        # Calls answered so far, and that count when the dispatcher last sent one: a partial call held while
        # calls are in flight goes as soon as one of them returns.
        self._returns = 0
        self._returns_at_send = 0
        # When the first call since the last send returned: what it held lingers from then, so that the emails
        # of the clients it answers (a closed loop's next requests) join the held ones rather than go apart.
        self._released_at = float("-inf")
        self._max_pending = max_pending
        self._deadline = deadline_seconds
        self._max_batch_bytes = max_batch_bytes
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_batches_in_flight)
        self._queue: deque[_Entry] = deque()
        self._queued_bytes = 0
        self._outstanding = 0  # accepted and not yet answered: queued, in flight or waiting to retry
        self._wakeup = asyncio.Event()
        self._draining = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._retry_timers: dict[_Entry, asyncio.TimerHandle] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        # Every entry gets the same deadline span, so entries in arrival order are in deadline order:
        # one timer for the oldest unanswered entry enforces every deadline (see _expire).
        self._deadlines: deque[_Entry] = deque()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.consecutive_failed_calls = 0
        if metrics:
            metrics.pending.set_function(lambda: self._outstanding)

    # -- the request side -------------------------------------------------------------------------

    @property
    def outstanding(self) -> int:
        return self._outstanding

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and not self._dispatcher.done() and not self._draining

    async def publish(self, item: bytes, attributes: dict[str, Any] | None = None) -> str:
        """Returns the MessageId of the SQS message that holds `item` once SQS accepted it; raises PublishRejected
        otherwise. `attributes` go with the message only when it holds this email alone."""
        loop = self._loop
        if self._draining or loop is None:
            raise PublishRejected("draining", retry_after_seconds=1)
        if self._outstanding >= self._max_pending:
            raise PublishRejected("queue_full", retry_after_seconds=1)
        now = loop.time()
        entry = _Entry(
            item=item,
            attributes=attributes or {},
            size=len(item) + 1,
            alone_size=PACK_OVERHEAD_BYTES + message_payload_bytes("", attributes) + len(item),
            future=loop.create_future(),
            enqueued_at=now,
            deadline=now + self._deadline,
            send_by=now + self._linger + self._max_hold,
        )
        self._outstanding += 1
        self._idle.clear()
        self._deadlines.append(entry)
        if self._deadline_timer is None:
            self._deadline_timer = loop.call_at(entry.deadline, self._expire)
        self._enqueue(entry)
        # The future is answered by SQS's verdict or, at the deadline, by _expire: even while a
        # SendMessageBatch call hangs on an unresponsive endpoint the caller hears 503 in time, and the
        # answered future takes the entry out of any further attempt.
        return await entry.future

    def _enqueue(self, entry: _Entry) -> None:
        self._queue.append(entry)
        self._queued_bytes += entry.size
        # Wake the dispatcher only when it has something new to decide: a first entry (start the
        # linger clock), a whole message while calls are out, or a full call. Waking it per entry costs CPU
        # at high rates.
        if len(self._queue) == 1 or self._queued_bytes >= self._eager_bytes:
            self._wakeup.set()

    # -- the dispatcher ---------------------------------------------------------------------------

    def _batch_ready(self) -> bool:
        return self._queued_bytes >= self._full_bytes

    def _holding(self) -> bool:
        """Whether a partial call waits for the calls in flight: at least `hold_at_in_flight` are out and none has
        returned since the last one went."""
        return (
            self._max_hold > 0
            and not self._draining
            and self._in_flight >= self._hold_at_in_flight
            and self._returns == self._returns_at_send
        )

    def _next_send(self, now: float) -> tuple[float, bool, str]:
        """When the queue's next call may go, whether it takes whole messages only, and why it goes.

        A full call goes at once. With no call in flight, or once one returned, a partial call goes when its
        oldest email has waited the linger (as ever), or, held, a linger after the return that released it. While
        calls are in flight and none has returned, only whole messages go at once; the rest is held until a call
        returns (the dispatcher is woken) or the head's `send_by`, linger + max_hold after it was queued.
        """
        head = self._queue[0]
        if self._draining or self._batch_ready():
            return now, False, ""
        if not self._holding():
            # A billing-deferred head lingers once more, never past its send_by; a held one lingers from the
            # return that released it.
            start = max(head.enqueued_at, self._released_at) if self._max_hold > 0 else head.enqueued_at
            return min(start + self._linger, head.send_by), False, "linger"
        if self._queued_bytes >= self._eager_bytes:
            return now, True, "message"
        return head.send_by, False, "bound"

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = loop.time()
            at, whole_messages, why = self._next_send(now)
            if at > now:
                self._wakeup.clear()
                timer = loop.call_at(at, self._wakeup.set)
                await self._wakeup.wait()
                timer.cancel()
                continue
            await self._slots.acquire()
            # Waiting for a slot, the queue may have grown into a full call or a call may have returned.
            if whole_messages and not self._holding():
                whole_messages, why = False, "linger"
            batch, reason = self._take_batch(whole_messages=whole_messages, why=why)
            if not batch:
                self._slots.release()
                continue
            self._in_flight += 1
            self._returns_at_send = self._returns
            task = asyncio.create_task(self._send(batch, reason))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    def _take_batch(self, *, whole_messages: bool = False, why: str = "linger") -> tuple[list[list[_Entry]], str]:
        """Packs queued emails, oldest first, into up to 10 messages within the message and call byte limits.

        `whole_messages`: a last message the queue ran out before filling stays queued (held for later)."""
        messages: list[list[_Entry]] = []
        sizes: list[int] = []
        total = 0
        reason = "drain" if self._draining else why or "linger"
        closed = False  # the last message met an email it could not take: it is whole
        while self._queue:
            entry = self._queue[0]
            if entry.future.done():  # the caller went away; nothing to answer
                self._take_first()
                self._finish(entry)
                continue
            current = messages[-1] if messages else None
            if current is not None:
                # Joining a message drops its attributes: its size becomes overhead + items + commas.
                packed = sizes[-1] if len(current) > 1 else PACK_OVERHEAD_BYTES + len(current[0].item)
                grown = packed + entry.size
                if grown <= self._max_message_bytes and total - sizes[-1] + grown <= self._max_batch_bytes:
                    self._take_first()
                    current.append(entry)
                    total += grown - sizes[-1]
                    sizes[-1] = grown
                    continue
            closed = True
            if len(messages) == SQS_MAX_BATCH:
                reason = "full"
                break
            if messages and total + entry.alone_size > self._max_batch_bytes:
                reason = "size"
                break
            closed = False
            self._take_first()
            messages.append([entry])
            sizes.append(entry.alone_size)
            total += entry.alone_size
        if whole_messages and not closed and len(messages) > 1:
            total -= sizes.pop()
            self._hold(messages.pop())
        total = self._defer_spill(messages, sizes, total)
        if messages and self._metrics:
            self._metrics.flushes[reason].inc()
            self._metrics.batch_entries.observe(len(messages))
            self._metrics.batch_bytes.observe(total)
            self._metrics.batch_emails.observe(sum(map(len, messages)))
            for message in messages:
                self._metrics.message_emails.observe(len(message))
        return messages, reason

    def _defer_spill(self, messages: list[list[_Entry]], sizes: list[int], total: int) -> int:
        """Holds back the emails that would spill a little past a 64 KiB chunk; returns the call's new size.

        SQS bills each started 64 KiB of a call's payload: a call just past a chunk boundary pays a whole chunk
        for its tail. Those tail emails wait one more linger, when newer emails share their chunk; each email
        is held back at most once, and never while draining, so the added wait is bounded by one linger.
        """
        if self._draining or total <= SQS_BILLING_CHUNK_BYTES:
            return total
        aligned = total // SQS_BILLING_CHUNK_BYTES * SQS_BILLING_CHUNK_BYTES
        if total - aligned > SQS_BILLING_CHUNK_BYTES // 2:  # the tail fills most of its chunk: worth its price
            return total
        assert self._loop is not None
        now = self._loop.time()
        held_back: list[_Entry] = []
        while total > aligned and messages[-1][-1].deferred is False:
            message = messages[-1]
            entry = message.pop()
            if not message:
                messages.pop()
                total -= sizes.pop()
            else:  # a message left with one email carries that email's attributes again
                smaller = message[0].alone_size if len(message) == 1 else sizes[-1] - entry.size
                total += smaller - sizes[-1]
                sizes[-1] = smaller
            entry.deferred = True
            entry.enqueued_at = now
            held_back.append(entry)
        for entry in held_back:  # popped newest first: each goes in front of the one popped before it
            self._queue.appendleft(entry)
            self._queued_bytes += entry.size
        return total

    def _hold(self, message: list[_Entry]) -> None:
        """Puts a partial message's emails back at the front of the queue, in their order, unchanged."""
        for entry in reversed(message):
            self._queue.appendleft(entry)
            self._queued_bytes += entry.size

    def _take_first(self) -> None:
        entry = self._queue.popleft()
        self._queued_bytes -= entry.size

    async def _send(self, batch: list[list[_Entry]], reason: str) -> None:
        if self._metrics:
            self._metrics.in_flight.inc()
        try:
            request = [_request_entry(index, message) for index, message in enumerate(batch)]
            try:
                response = await self._send_batch(request)
            except asyncio.CancelledError:
                # Only a drain that ran out of time cancels a send: whatever SQS did, the caller hears 503.
                for message in batch:
                    for entry in message:
                        self._reject(entry, "draining")
                raise
            except Exception as exc:  # the whole call failed: classify once for every entry
                self.consecutive_failed_calls += 1
                code = error_code(exc)
                retryable = is_retryable(exc)
                log.warning("publish_call_failed", error=code, entries=len(batch), retryable=retryable, flush=reason)
                for message in batch:
                    for entry in message:
                        self._fail(entry, code, retryable=retryable)
                return
            self.consecutive_failed_calls = 0
            self._settle(batch, response)
        finally:
            self._forget_answered()
            self._slots.release()
            self._in_flight -= 1
            if self._returns == self._returns_at_send:
                self._released_at = asyncio.get_running_loop().time()
            self._returns += 1
            if self._queue:  # a partial call held for this one may go now
                self._wakeup.set()
            if self._metrics:
                self._metrics.in_flight.dec()

    def _settle(self, batch: list[list[_Entry]], response: Mapping[str, Any]) -> None:
        """Answers the emails of each message by SQS's verdict on it; a message the response does not account
        for is retried. A refused message fails every email in it: none was taken."""
        answered: set[int] = set()
        for success in response.get("Successful", ()):
            index = _answered_index(success, len(batch), answered)
            if index is None:
                continue
            message_id = success.get("MessageId")
            for entry in batch[index]:
                if message_id:
                    self._resolve(entry, str(message_id))
                else:  # a success we cannot point to is not one: send it again
                    self._fail(entry, "MissingMessageId", retryable=True)
        for failure in response.get("Failed", ()):
            index = _answered_index(failure, len(batch), answered)
            if index is None:
                continue
            code = str(failure.get("Code", "Unknown"))
            # Throttling can come back marked SenderFault=true and still be transient.
            retryable = not failure.get("SenderFault", False) or code in THROTTLING_CODES
            log.warning("publish_entry_failed", error=code, retryable=retryable, emails=len(batch[index]))
            for entry in batch[index]:
                self._fail(entry, code, retryable=retryable)
        for index, message in enumerate(batch):
            if index not in answered:  # never assume success for a message SQS did not mention
                for entry in message:
                    self._fail(entry, "MissingFromResponse", retryable=True)

    # -- answering --------------------------------------------------------------------------------

    def _finish(self, entry: _Entry) -> None:
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    def _resolve(self, entry: _Entry, message_id: str) -> None:
        if not entry.future.done():
            entry.future.set_result(message_id)
        self._finish(entry)

    def _reject(self, entry: _Entry, reason: str) -> None:
        if not entry.future.done():
            entry.future.set_exception(PublishRejected(reason, retry_after_seconds=2))
        self._finish(entry)

    def _fail(self, entry: _Entry, code: str, *, retryable: bool) -> None:
        entry.last_error = code
        if entry.future.done():  # the caller already had its answer (its deadline passed during the call)
            self._finish(entry)
            return
        if not retryable:
            if self._metrics:
                self._metrics.failed["permanent"].inc()
            self._reject(entry, "publish_failed")
            return
        if self._metrics:
            self._metrics.failed["retryable"].inc()
        entry.attempts += 1
        loop = asyncio.get_running_loop()
        # Full jitter: concurrent retries after an outage must not arrive together.
        backoff = full_jitter_seconds(entry.attempts, base=_BACKOFF_BASE_SECONDS, cap=_BACKOFF_CAP_SECONDS)
        if loop.time() + backoff >= entry.deadline or entry.future.done():
            if self._metrics:
                self._metrics.failed["deadline"].inc()
            self._reject(entry, "publish_failed")
            return
        if self._metrics:
            self._metrics.retries.inc()
        self._retry_timers[entry] = loop.call_later(backoff, self._requeue, entry)

    def _requeue(self, entry: _Entry) -> None:
        self._retry_timers.pop(entry, None)
        now = asyncio.get_running_loop().time()
        entry.enqueued_at = now - self._linger  # ready to go at once, unless held for the calls in flight
        # The same span as a new email's, so the queue stays in send_by order.
        entry.send_by = now + self._linger + self._max_hold
        self._enqueue(entry)
        self._wakeup.set()

    def _expire(self) -> None:
        """Answers 503 to every entry past its deadline, then sleeps until the next unanswered one's."""
        assert self._loop is not None
        self._deadline_timer = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines:
            entry = deadlines[0]
            if not entry.future.done():
                if entry.deadline > now:
                    self._deadline_timer = self._loop.call_at(entry.deadline, self._expire)
                    return
                if self._metrics:
                    self._metrics.failed["deadline"].inc()
                entry.future.set_exception(PublishRejected("publish_failed", retry_after_seconds=2))
            deadlines.popleft()

    def _forget_answered(self) -> None:
        """Drops answered entries from the front of the deadline line, so it holds only what is unanswered."""
        deadlines = self._deadlines
        while deadlines and deadlines[0].future.done():
            deadlines.popleft()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="sqs-publisher")

    def begin_drain(self) -> None:
        """Refuses new messages and sends what is queued without waiting for the linger."""
        self._draining = True
        self._wakeup.set()

    async def close(self, timeout: float) -> None:
        """Drains: every accepted message is answered (sent, or failed) before this returns."""
        self.begin_drain()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("publisher_drain_timeout", unanswered=self._outstanding, waited_seconds=timeout)
        finally:
            if self._dispatcher is not None:
                self._dispatcher.cancel()
                await asyncio.gather(self._dispatcher, return_exceptions=True)
            for task in list(self._sends):
                task.cancel()
            await asyncio.gather(*self._sends, return_exceptions=True)
            for entry, timer in list(self._retry_timers.items()):
                timer.cancel()
                self._reject(entry, "draining")
            self._retry_timers.clear()
            for entry in list(self._queue):
                self._reject(entry, "draining")
            self._queue.clear()
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
                self._deadline_timer = None
            self._deadlines.clear()
        log.info("publisher_drained", seconds=round(time.monotonic() - started, 3))


def _request_entry(index: int, message: list[_Entry]) -> dict[str, Any]:
    """One SendMessageBatch entry: a version-2 body; attributes only on a message holding one email."""
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": pack_body([item.item for item in message])}
    if len(message) == 1 and message[0].attributes:
        entry["MessageAttributes"] = message[0].attributes
    return entry


def _answered_index(result: Mapping[str, Any], batch_size: int, answered: set[int]) -> int | None:
    """The batch index a response entry answers, once; None for an Id we did not send or already saw.

    Each entry must be answered exactly once, or the count of unanswered entries drifts: too high, and
    every later request is shed as `queue_full`.
    """
    entry_id = result.get("Id")
    index = int(entry_id) if isinstance(entry_id, str) and entry_id.isdigit() else -1
    if not 0 <= index < batch_size or str(index) != entry_id or index in answered:
        log.warning("publish_response_entry_ignored", entry_id=str(entry_id)[:32], batch_size=batch_size)
        return None
    answered.add(index)
    return index
