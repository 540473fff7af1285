"""DeleteMessageBatch for stored messages: up to 10 receipts per call, every `Failed` entry handled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from consumer_service.metrics import ConsumerMetrics
from ingest_common.aws import error_code, full_jitter_seconds
from ingest_common.sqs_limits import SQS_MAX_BATCH

log = structlog.get_logger("consumer_service.deleter")

DeleteBatch = Callable[[list[dict[str, str]]], Awaitable[Mapping[str, Any]]]

# Rounds for entries a DeleteMessageBatch answered as `Failed` for a transient reason: botocore retries a call
# that fails as a whole (standard mode, the SQS client's 3 attempts), but never looks inside a 200's `Failed`.
_MAX_ATTEMPTS = 3
_INVALID_RECEIPT_CODES = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})


class BatchDeleter:
    """Deletes in batches; `delete()` answers whether SQS confirmed the delete.

    A delete that fails for good is not lost work: the email is stored, so when the message comes back
    the conditional put answers 412 and the delete is tried again.
    """

    def __init__(
        self,
        delete_batch: DeleteBatch,
        *,
        metrics: ConsumerMetrics,
        linger_seconds: float = 0.02,
        max_calls_in_flight: int = 4,
    ) -> None:
        self._delete_batch = delete_batch
        self._metrics = metrics
        self._linger = linger_seconds
        self._queue: list[tuple[str, asyncio.Future[bool]]] = []
        self._wakeup = asyncio.Event()
        self._calls = asyncio.Semaphore(max_calls_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._queue_empty = asyncio.Event()
        self._queue_empty.set()

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="sqs-deleter")

    async def delete(self, receipt_handle: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((receipt_handle, future))
        self._queue_empty.clear()
        if len(self._queue) == 1 or len(self._queue) >= SQS_MAX_BATCH:
            self._wakeup.set()
        return await future

    async def _dispatch(self) -> None:
        while True:
            if not self._queue:
                self._queue_empty.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < SQS_MAX_BATCH and self._linger > 0:
                await asyncio.sleep(self._linger)  # let a partial batch fill up a little
            await self._calls.acquire()
            batch, self._queue = self._queue[:SQS_MAX_BATCH], self._queue[SQS_MAX_BATCH:]
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[str, asyncio.Future[bool]]]) -> None:
        try:
            pending = dict(enumerate(batch))
            for attempt in range(1, _MAX_ATTEMPTS + 1):
                entries = [{"Id": str(index), "ReceiptHandle": handle} for index, (handle, _) in pending.items()]
                try:
                    response = await self._delete_batch(entries)
                except Exception as exc:  # botocore's standard retry mode already retried the whole call
                    log.warning("delete_call_failed", error=error_code(exc), entries=len(entries), attempt=attempt)
                    break
                retry: dict[int, tuple[str, asyncio.Future[bool]]] = {}
                for success in response.get("Successful", ()):
                    _, future = pending[int(success["Id"])]
                    self._metrics.deleted.inc()
                    _answer(future, value=True)
                for failure in response.get("Failed", ()):
                    index = int(failure["Id"])
                    code = str(failure.get("Code", "Unknown"))
                    if code in _INVALID_RECEIPT_CODES or failure.get("SenderFault", False):
                        # The receipt expired (visibility ran out) or is bad: the message will come back.
                        self._metrics.delete_failures["receipt_invalid"].inc()
                        log.warning("delete_entry_refused", error=code)
                        _answer(pending[index][1], value=False)
                    else:
                        retry[index] = pending[index]
                if not retry:
                    return
                pending = retry
                await asyncio.sleep(full_jitter_seconds(attempt, base=0.1))
            for _, future in pending.values():
                self._metrics.delete_failures["error"].inc()
                _answer(future, value=False)
        finally:
            self._calls.release()
            for _, future in batch:  # anything unanswered (cancelled mid-call) counts as not deleted
                _answer(future, value=False)

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Sends what is queued, waits for calls under way (up to the grace period), then stops."""
        try:
            async with asyncio.timeout(grace_seconds):
                await self._queue_empty.wait()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
        except TimeoutError:
            log.warning("deleter_close_timeout", unsent=len(self._queue))
        for _, future in self._queue:
            _answer(future, value=False)
        self._queue.clear()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)


def _answer(future: asyncio.Future[bool], *, value: bool) -> None:
    if not future.done():
        future.set_result(value)
