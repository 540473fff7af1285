"""The consumer's one SQS adapter: every call it makes on its queue (and the DLQ's depth), each counted once."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import structlog

from ingest_common.aws import AwsCallMetrics
from ingest_common.sqs_limits import messages_payload_bytes, sqs_billed_requests

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

log = structlog.get_logger("consumer_service.sqs_queue")

FALLBACK_VISIBILITY_SECONDS: Final = 30  # when the queue's attributes cannot be read
ASSUMED_MAX_RECEIVE_COUNT: Final = 5  # when the queue's redrive policy cannot be read
_RECEIVE_SYSTEM_ATTRIBUTES: Final = ["ApproximateReceiveCount", "SentTimestamp"]


@dataclass(frozen=True, slots=True)
class QueueSettings:
    visibility_timeout_seconds: int
    max_receive_count: int | None  # None: no redrive policy, or it could not be read


class Queue(Protocol):
    """What the consumer asks of its queue; `SqsQueue` on AWS, an in-process fake in unit tests."""

    async def settings(self) -> QueueSettings: ...

    async def receive(self, count: int) -> Mapping[str, Any]: ...

    async def change_visibility(self, receipt_handle: str, seconds: int) -> Mapping[str, Any]: ...

    async def change_visibility_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]: ...

    async def delete_batch(self, entries: list[dict[str, str]]) -> Mapping[str, Any]: ...

    async def attributes(self, queue_url: str, names: Sequence[str]) -> dict[str, str]: ...


class SqsQueue:
    """ReceiveMessage, ChangeMessageVisibility[Batch], DeleteMessageBatch and GetQueueAttributes on one queue.

    `visibility_timeout_seconds` (0: the queue's own) is asked for at each receive, so that a configured
    timeout holds from the receive on and the heartbeat's first extension is timed by it.
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        aws_metrics: AwsCallMetrics,
        *,
        wait_time_seconds: int,
        visibility_timeout_seconds: int = 0,
    ) -> None:
        self._client = client
        self._url = queue_url
        self._aws = aws_metrics
        self._receive_options: dict[str, Any] = {"WaitTimeSeconds": wait_time_seconds}
        if visibility_timeout_seconds:
            self._receive_options["VisibilityTimeout"] = visibility_timeout_seconds

    async def _call(
        self,
        operation: str,
        method: Callable[..., Any],
        *,
        payload: Callable[[Any], int] | None = None,
        **arguments: Any,
    ) -> Any:
        response = await self._aws.call("sqs", operation, partial(method, **arguments))
        self._aws.bill("sqs", operation, sqs_billed_requests(payload(response) if payload else 0))
        return response

    async def receive(self, count: int) -> Mapping[str, Any]:
        response: Mapping[str, Any] = await self._call(
            "ReceiveMessage",
            self._client.receive_message,
            QueueUrl=self._url,
            MaxNumberOfMessages=count,
            MessageSystemAttributeNames=_RECEIVE_SYSTEM_ATTRIBUTES,
            MessageAttributeNames=["All"],
            payload=lambda response: messages_payload_bytes(response.get("Messages", ())),
            **self._receive_options,
        )
        return response

    async def change_visibility(self, receipt_handle: str, seconds: int) -> Mapping[str, Any]:
        response: Mapping[str, Any] = await self._call(
            "ChangeMessageVisibility",
            self._client.change_message_visibility,
            QueueUrl=self._url,
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=seconds,
        )
        return response

    async def change_visibility_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        response: Mapping[str, Any] = await self._call(
            "ChangeMessageVisibilityBatch",
            self._client.change_message_visibility_batch,
            QueueUrl=self._url,
            Entries=cast(Any, entries),
        )
        return response

    async def delete_batch(self, entries: list[dict[str, str]]) -> Mapping[str, Any]:
        response: Mapping[str, Any] = await self._call(
            "DeleteMessageBatch", self._client.delete_message_batch, QueueUrl=self._url, Entries=cast(Any, entries)
        )
        return response

    async def attributes(self, queue_url: str, names: Sequence[str]) -> dict[str, str]:
        """Attributes of this queue or another one (the DLQ's depth goes through here too)."""
        response = await self._call(
            "GetQueueAttributes", self._client.get_queue_attributes, QueueUrl=queue_url, AttributeNames=list(names)
        )
        return {str(name): str(value) for name, value in response.get("Attributes", {}).items()}

    async def settings(self) -> QueueSettings:
        """The queue's visibility timeout and maxReceiveCount; warns when it has no redrive policy (poison would
        cycle) and falls back to defaults when they cannot be read."""
        try:
            attributes = await self.attributes(self._url, ["VisibilityTimeout", "RedrivePolicy"])
        except Exception:
            log.warning(
                "queue_attributes_unavailable",
                fallback_visibility_seconds=FALLBACK_VISIBILITY_SECONDS,
                assumed_max_receive_count=ASSUMED_MAX_RECEIVE_COUNT,
            )
            return QueueSettings(FALLBACK_VISIBILITY_SECONDS, None)
        return settings_from(attributes)


def settings_from(attributes: Mapping[str, str]) -> QueueSettings:
    visibility = int(attributes.get("VisibilityTimeout", FALLBACK_VISIBILITY_SECONDS))
    if "RedrivePolicy" not in attributes:
        log.warning("queue_has_no_redrive_policy", consequence="poison messages are retried until they expire")
        return QueueSettings(visibility, None)
    policy = json.loads(attributes["RedrivePolicy"])
    log.info("queue_redrive_policy", policy=policy)
    try:
        max_receive_count = max(1, int(policy["maxReceiveCount"]))
    except (KeyError, TypeError, ValueError):
        log.warning("queue_redrive_policy_unreadable", assumed_max_receive_count=ASSUMED_MAX_RECEIVE_COUNT)
        return QueueSettings(visibility, None)
    return QueueSettings(visibility, max_receive_count)
