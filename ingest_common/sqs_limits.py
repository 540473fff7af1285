"""SQS batch limits, and the payload size SQS counts against them, for every image that batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

SQS_MAX_BATCH: Final = 10  # entries per *Batch call, and messages per ReceiveMessage
# SQS raised the message and batch payload limit to 1 MiB in August 2025; new queues default to it.
MAX_BATCH_BYTES: Final = 1_048_576
MAX_MESSAGE_BYTES: Final = 1_048_576


SQS_BILLING_CHUNK_BYTES: Final = 65_536


def sqs_billed_requests(payload_bytes: int) -> int:
    """What SQS bills for one call: each started 64 KiB of its payload is one request, and a call at least one."""
    return max(1, -(-payload_bytes // SQS_BILLING_CHUNK_BYTES))


def _utf8_len(text: str) -> int:
    if text.isascii():  # O(1) in CPython: the common case costs no copy
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def messages_payload_bytes(messages: Sequence[Mapping[str, Any]], body_key: str = "Body") -> int:
    """The payload of several messages (ReceiveMessage's `Messages`, or SendMessageBatch's entries)."""
    attributes_key = "MessageAttributes"
    return sum(message_payload_bytes(str(m.get(body_key, "")), m.get(attributes_key)) for m in messages)


def message_payload_bytes(body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """What SQS counts for one message: the body's UTF-8 bytes plus each attribute's name, type and value.

    String and Number values count their UTF-8 bytes, Binary values their raw bytes (not the base64 on the wire).
    """
    size = _utf8_len(body)
    for name, value in (attributes or {}).items():
        size += _utf8_len(name) + _utf8_len(str(value.get("DataType", "")))
        if (string_value := value.get("StringValue")) is not None:
            size += _utf8_len(str(string_value))
        if (binary_value := value.get("BinaryValue")) is not None:
            size += len(binary_value if isinstance(binary_value, bytes | bytearray) else str(binary_value).encode())
    return size
