"""Visibility heartbeat: messages still being processed get their visibility timeout extended in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from consumer_service.metrics import ConsumerMetrics
from ingest_common.aws import error_code

log = structlog.get_logger("consumer_service.heartbeat")

ChangeVisibilityBatch = Callable[[list[dict[str, Any]]], Awaitable[Mapping[str, Any]]]


@dataclass(slots=True, eq=False)
class TrackedMessage:
    message_id: str
    receipt_handle: str
    extend_at: float  # monotonic


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
        self._task: asyncio.Task[None] | None = None

    @property
    def visibility_timeout_seconds(self) -> int:
        return self._visibility

    def track(self, message_id: str, receipt_handle: str, received_monotonic: float) -> TrackedMessage:
        tracked = TrackedMessage(message_id, receipt_handle, received_monotonic + self._visibility * self._fraction)
        self._tracked[receipt_handle] = tracked
        return tracked

    def untrack(self, tracked: TrackedMessage) -> None:
        self._tracked.pop(tracked.receipt_handle, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="visibility-heartbeat")

    async def _run(self) -> None:
        tick = max(0.1, min(1.0, self._visibility * self._fraction / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            due = [message for message in self._tracked.values() if message.extend_at <= now]
            for start in range(0, len(due), 10):
                await self._extend(due[start : start + 10], now)

    async def _extend(self, messages: list[TrackedMessage], now: float) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": self._visibility}
            for index, message in enumerate(messages)
        ]
        try:
            response = await self._change(entries)
        except Exception as exc:  # next tick tries again; the margin left is (1 - fraction) of the timeout
            log.warning("visibility_extension_failed", error=error_code(exc), messages=len(messages))
            return
        for success in response.get("Successful", ()):
            message = messages[int(success["Id"])]
            message.extend_at = now + self._visibility * self._fraction
            self._metrics.visibility_extensions.inc()
        for failure in response.get("Failed", ()):
            message = messages[int(failure["Id"])]
            log.warning("visibility_extension_refused", error=failure.get("Code"), message_id=message.message_id)

    async def release(self, receipt_handles: list[str]) -> None:
        """Makes messages visible again at once (visibility 0), so another consumer takes them now."""
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, handle in enumerate(chunk)
            ]
            try:
                await self._change(entries)
            except Exception as exc:  # they come back after their visibility timeout anyway
                log.warning("release_failed", error=error_code(exc), messages=len(chunk))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
