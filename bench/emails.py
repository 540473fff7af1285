"""The email every benchmark sends: the seeds' example, its content padded to ~450 B."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ingest_common.email import Email
from ingest_common.envelope import Envelope, pack_body

CONTENT = ("Just want to say... Happy new year!!! " * 12).strip()
EMAIL = Email("Happy new year!", "John doe", 1693561101, CONTENT)


def envelope_body(request_ids: list[str], received_at: datetime | None = None) -> str:
    """An SQS message body as the API would publish it: one email per request id, each with a fresh email_id."""
    moment = received_at or datetime.now(UTC)
    return pack_body([Envelope(str(uuid.uuid4()), moment, request_id, EMAIL).to_item() for request_id in request_ids])
