"""Visibility heartbeat: messages still being processed get their visibility timeout extended in time.

Each batch of extensions is its own call under its own short timeout (a fraction of the margin left after an
extension falls due), so one hung call cannot hold back the others; what it carried is tried again at the next
tick. A message is extended only while tracked: the consumer untracks it before deleting it or giving it up,
and `release()` waits for any extension call already carrying it before making it visible, so an extension
answered late cannot hide a released message again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from consumer_service.metrics import ConsumerMetrics
from ingest_common.aws import error_code
from ingest_common.sqs_limits import SQS_MAX_BATCH

log = structlog.get_logger("consumer_service.heartbeat")

ChangeVisibilityBatch = Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]]

_MIN_CALL_TIMEOUT_SECONDS = 0.25
_MAX_CALL_TIMEOUT_SECONDS = 5.0


@dataclass(slots=True, eq=False)
class TrackedMessage:
    message_id: str
    receipt_handle: str
    extend_at: float  # monotonic
    extending: bool = False  # an extension call carrying it is under way


class Heartbeat:
    def __init__(
        self,
        change_visibility_batch: ChangeVisibilityBatch,
        *,
        visibility_timeout_seconds: int,
        fraction: float,
        metrics: ConsumerMetrics,
    ) -> None:
        self._change = change_visibility_batch
        self._visibility = visibility_timeout_seconds
        self._fraction = fraction
        self._metrics = metrics
        self._tracked: dict[str, TrackedMessage] = {}
        self._calls: dict[asyncio.Task[None], frozenset[str]] = {}  # extension calls under way -> their receipts
        self._task: asyncio.Task[None] | None = None
        margin = visibility_timeout_seconds * (1 - fraction)  # left when an extension falls due
        # A third of the margin: a call that hangs for all of it still leaves time for two more tries.
        self._call_timeout = min(_MAX_CALL_TIMEOUT_SECONDS, max(_MIN_CALL_TIMEOUT_SECONDS, margin / 3))
        # Often enough that an extension falls due, or is tried again, well within the margin.
        self._tick = max(0.1, min(1.0, visibility_timeout_seconds * min(fraction, 1 - fraction) / 8))

    @property
    def visibility_timeout_seconds(self) -> int:
        return self._visibility

    @property
    def call_timeout_seconds(self) -> float:
        return self._call_timeout

    def track(self, message_id: str, receipt_handle: str, received_monotonic: float) -> TrackedMessage:
        tracked = TrackedMessage(message_id, receipt_handle, received_monotonic + self._visibility * self._fraction)
        self._tracked[receipt_handle] = tracked
        return tracked

    def untrack(self, tracked: TrackedMessage) -> None:
        """No more extensions for this message (call it before deleting the message or giving it up)."""
        if self._tracked.get(tracked.receipt_handle) is tracked:
            del self._tracked[tracked.receipt_handle]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="visibility-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            due = [message for message in self._tracked.values() if message.extend_at <= now and not message.extending]
            for start in range(0, len(due), SQS_MAX_BATCH):
                chunk = due[start : start + SQS_MAX_BATCH]
                for message in chunk:
                    message.extending = True
                call = asyncio.create_task(self._extend(chunk), name="visibility-extension")
                self._calls[call] = frozenset(message.receipt_handle for message in chunk)
                call.add_done_callback(self._calls.pop)

    async def _extend(self, messages: list[TrackedMessage]) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": self._visibility}
            for index, message in enumerate(messages)
        ]
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(self._call_timeout):
                response = await self._change(entries)
        except Exception as exc:  # the next tick tries again, in a new call
            log.warning(
                "visibility_extension_failed",
                error="CallTimeout" if isinstance(exc, TimeoutError) else error_code(exc),
                messages=len(messages),
                timeout_seconds=round(self._call_timeout, 3),
            )
            return
        finally:
            for message in messages:
                message.extending = False
        for success in response.get("Successful", ()):
            message = messages[int(success["Id"])]
            message.extend_at = sent_at + self._visibility * self._fraction
            self._metrics.visibility_extensions.inc()
        for failure in response.get("Failed", ()):
            message = messages[int(failure["Id"])]
            if self._tracked.get(message.receipt_handle) is message:  # else deleted or released meanwhile
                log.warning("visibility_extension_refused", error=failure.get("Code"), message_id=message.message_id)

    async def release(self, receipt_handles: list[str]) -> None:
        """Makes messages visible again at once (visibility 0), so another consumer takes them now.

        They are untracked first, and extension calls already carrying any of them are waited for (each ends
        within its timeout): SQS applies the release after them, not before.
        """
        handles = list(dict.fromkeys(receipt_handles))
        for handle in handles:
            self._tracked.pop(handle, None)
        wanted = frozenset(handles)
        carrying = [call for call, carried in self._calls.items() if carried & wanted]
        if carrying:
            await asyncio.wait(carrying)
        for start in range(0, len(handles), SQS_MAX_BATCH):
            chunk = handles[start : start + SQS_MAX_BATCH]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, handle in enumerate(chunk)
            ]
            try:
                async with asyncio.timeout(self._call_timeout):
                    await self._change(entries)
            except Exception as exc:  # they come back after their visibility timeout anyway
                log.warning(
                    "release_failed",
                    error="CallTimeout" if isinstance(exc, TimeoutError) else error_code(exc),
                    messages=len(chunk),
                )

    async def stop(self) -> None:
        tasks = [*([self._task] if self._task is not None else []), *self._calls]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
