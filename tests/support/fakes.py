"""In-process fakes of the services' AWS adapters, for unit tests (integration tests use real servers)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from api_service.clients import DEFAULT_CLIENT
from api_service.token_source import ClientParameter, TokenVersion
from consumer_service.sqs_queue import QueueSettings


class FakeQueue:
    """The consumer's `Queue`: hands out the messages given, records visibility changes and deletes with when."""

    def __init__(
        self,
        messages: Sequence[Mapping[str, Any]] = (),
        *,
        delete_seconds: float = 0.0,
        settings: QueueSettings | None = None,
    ) -> None:
        self._messages = list(messages)
        self._delete_seconds = delete_seconds
        self._settings = settings or QueueSettings(visibility_timeout_seconds=30, max_receive_count=5)
        self.extensions: list[tuple[float, list[str]]] = []
        self.visibility_changes: list[tuple[float, str, int]] = []
        self.deleted: list[str] = []
        self.delete_started: float | None = None
        self.receives = 0

    async def settings(self) -> QueueSettings:
        return self._settings

    def redeliver(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Hands these out at the next receives, as SQS does with a message whose visibility timeout ran out."""
        self._messages.extend(messages)

    async def receive(self, count: int) -> Mapping[str, Any]:
        self.receives += 1
        if self._messages:
            messages, self._messages = self._messages[:count], self._messages[count:]
            return {"Messages": messages}
        await asyncio.sleep(0.05)  # an empty long poll, short
        return {"Messages": []}

    async def change_visibility(self, receipt_handle: str, seconds: int) -> Mapping[str, Any]:
        self.visibility_changes.append((time.monotonic(), receipt_handle, seconds))
        return {}

    async def change_visibility_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        self.extensions.append((time.monotonic(), [entry["ReceiptHandle"] for entry in entries]))
        return {"Successful": [{"Id": entry["Id"]} for entry in entries]}

    async def delete_batch(self, entries: list[dict[str, str]]) -> Mapping[str, Any]:
        self.delete_started = time.monotonic()
        await asyncio.sleep(self._delete_seconds)
        self.deleted.extend(entry["ReceiptHandle"] for entry in entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in entries]}

    async def attributes(self, queue_url: str, names: Sequence[str]) -> dict[str, str]:
        return dict.fromkeys(names, "0")


class FakeStore:
    """The consumer's `ObjectStore`: objects in a dict, never overwritten (412 like S3's If-None-Match)."""

    def __init__(self, *, put_seconds: float = 0.0) -> None:
        self._put_seconds = put_seconds
        self.objects: dict[str, bytes] = {}
        self.object_metadata: dict[str, dict[str, str]] = {}
        self.failing_keys: set[str] = set()  # puts of these keys fail with a 500 until taken out
        self.failing_heads = 0  # the next this many HeadObject calls fail with a 500

    async def put_new(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        await asyncio.sleep(self._put_seconds)
        if key in self.failing_keys:
            error: Any = {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
            raise ClientError(error, "PutObject")
        if key in self.objects:
            response: Any = {"Error": {"Code": "PreconditionFailed"}, "ResponseMetadata": {"HTTPStatusCode": 412}}
            raise ClientError(response, "PutObject")
        self.objects[key] = body
        self.object_metadata[key] = dict(metadata or {})

    async def metadata(self, key: str) -> Mapping[str, str]:
        if self.failing_heads:
            self.failing_heads -= 1
            error: Any = {"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}
            raise ClientError(error, "HeadObject")
        return self.object_metadata.get(key, {})


class FakeSendQueue:
    """The API's `SendQueue`: takes every entry (or fails every call with `error`) and keeps what it took."""

    def __init__(self, *, error: Exception | None = None) -> None:
        self.error = error
        self.batches: list[list[dict[str, Any]]] = []

    async def send_batch(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        if self.error is not None:
            raise self.error
        self.batches.append(entries)
        return {"Successful": [{"Id": entry["Id"], "MessageId": f"msg-{uuid.uuid4()}"} for entry in entries]}


class FakeTokenSource:
    """The API's `TokenSource`: the single token and, by name, clients' parameter values, each one version written
    a day ago (token None: SSM cannot be reached)."""

    def __init__(self, token: str | None, clients: Mapping[str, str] | None = None) -> None:
        self.token = token
        self.path_values = dict(clients or {})  # client name -> parameter value (a token, or JSON with limits)

    async def clients(self) -> list[ClientParameter]:
        if self.token is None:
            raise OSError("SSM unreachable")
        written = datetime.now(UTC) - timedelta(days=1)
        found = [ClientParameter(DEFAULT_CLIENT, [TokenVersion(1, self.token, written)], single=True)]
        found += [
            ClientParameter(name, [TokenVersion(1, value, written)]) for name, value in sorted(self.path_values.items())
        ]
        return found
