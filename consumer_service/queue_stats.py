"""Queue depth for the queue and its DLQ, polled with GetQueueAttributes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog

from consumer_service.metrics import ConsumerMetrics
from ingest_common.aws import error_code

log = structlog.get_logger("consumer_service.queue_stats")

GetAttributes = Callable[[str, Sequence[str]], Awaitable[Mapping[str, str]]]  # queue URL, names

ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "not_visible",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


class QueueStats:
    def __init__(
        self,
        get_attributes: GetAttributes,
        *,
        queues: Mapping[str, str],
        interval_seconds: float,
        metrics: ConsumerMetrics,
    ) -> None:
        self._get_attributes = get_attributes
        self._queues = dict(queues)  # label -> url
        self._interval = interval_seconds
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> None:
        for label, url in self._queues.items():
            try:
                attributes = await self._get_attributes(url, list(ATTRIBUTES))
            except Exception as exc:  # metrics go stale rather than the consumer stopping
                log.warning("queue_attributes_failed", queue=label, error=error_code(exc))
                continue
            for attribute, state in ATTRIBUTES.items():
                if attribute in attributes:
                    self._metrics.queue_messages[(label, state)].set(float(attributes[attribute]))

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue-stats")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
