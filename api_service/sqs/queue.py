"""The API's one SQS adapter: SendMessageBatch to its queue over the lean JSON client, each call counted once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

from api_service.sqs.json_client import SqsJsonClient
from ingest_common.aws import AwsCallMetrics
from ingest_common.sqs_limits import messages_payload_bytes, sqs_billed_requests


class SendQueue(Protocol):
    """What the publisher asks of SQS; `SqsQueue` on AWS, an in-process fake in unit tests."""

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]: ...


class SqsQueue:
    def __init__(self, client: SqsJsonClient, queue_url: str, aws_metrics: AwsCallMetrics) -> None:
        self._client = client
        self._url = queue_url
        self._aws = aws_metrics

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        response = await self._aws.call(
            "sqs", "SendMessageBatch", partial(self._client.send_message_batch, self._url, entries)
        )
        self._aws.bill("sqs", "SendMessageBatch", sqs_billed_requests(messages_payload_bytes(entries, "MessageBody")))
        return response
