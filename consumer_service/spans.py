"""The consumer's spans: one per message processed, linked to the span that published its email.

Following the OpenTelemetry messaging conventions, a message's "process" span links to the producer's span
context (the creation context): a redelivered message is processed twice, and both spans link to the same
producer. For a message of one email the conventions also allow the creation context as the parent, and we use
it: one trace then holds an email's way from the POST to the stored object, with each delivery in it. A packed
message (envelope v2, several emails) links to each email's producer and has no parent. The producer's
context comes from the envelope's `traceparent` first (envelope v2 carries one per email), then from the message's
`traceparent` attribute. The S3 put is a child span (see ingest_common.aws.AwsCallMetrics); the delete is this
message's share of a batched DeleteMessageBatch, from queuing its receipt to SQS's answer.

With tracing off every method returns the same no-op context manager: nothing is looked up or allocated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from ingest_common.envelope import TRACEPARENT_ATTRIBUTE, Envelope
from ingest_common.tracing import parent_and_links, remote_context

_NO_SPAN: Final[nullcontext[None]] = nullcontext()


def message_traceparent(message: Mapping[str, Any]) -> str | None:
    attribute = message.get("MessageAttributes", {}).get(TRACEPARENT_ATTRIBUTE)
    value = attribute.get("StringValue") if isinstance(attribute, Mapping) else None
    return value if isinstance(value, str) else None


class MessageSpans:
    def __init__(self, tracer: Tracer | None, queue_url: str) -> None:
        self._tracer = tracer
        self._queue = queue_url.rstrip("/").rsplit("/", 1)[-1]

    def process(
        self, message: Mapping[str, Any], envelopes: Sequence[Envelope], receive_count: int
    ) -> AbstractContextManager[Span | None]:
        """The span of processing one message (current while it lasts); a no-op when tracing is off.

        A message of one email: that email's producer span is its parent and its link. A pack: its emails were
        published by as many requests, so, as the messaging conventions prescribe for a batch, the span has no
        parent and links to every producer (the SDK keeps the first 128 links).
        """
        if self._tracer is None:
            return _NO_SPAN
        attributes: dict[str, Any] = {
            "messaging.system": "aws_sqs",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": self._queue,
            "messaging.message.id": str(message.get("MessageId", "")),
            "messaging.message.delivery_count": receive_count,
            "messaging.batch.message_count": len(envelopes),
        }
        if len(envelopes) == 1:
            [envelope] = envelopes
            parent, links = parent_and_links(remote_context(envelope.traceparent or message_traceparent(message)))
            attributes["email_ingest.email_id"] = envelope.email_id
            attributes["email_ingest.request_id"] = envelope.request_id
        else:
            producers = (remote_context(envelope.traceparent) for envelope in envelopes)
            parent, links = None, [Link(producer) for producer in producers if producer is not None]
        return self._tracer.start_as_current_span(
            f"process {self._queue}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        )

    @staticmethod
    def failed(span: Span | None, reason: str) -> None:
        """Marks a process span whose message is kept for redelivery (None: tracing is off)."""
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, reason))

    def delete(self) -> AbstractContextManager[Span | None]:
        """This message's delete, a child of its process span; a no-op when tracing is off."""
        if self._tracer is None:
            return _NO_SPAN
        return self._tracer.start_as_current_span(
            "SQS.DeleteMessageBatch",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "aws-api",
                "rpc.service": "SQS",
                "rpc.method": "DeleteMessageBatch",
                "messaging.system": "aws_sqs",
                "messaging.operation.type": "settle",
                "messaging.destination.name": self._queue,
            },
        )
