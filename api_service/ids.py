"""Email ids: derived from a client's name and its Idempotency-Key, or random without a system call per id.

`uuid.uuid4()` reads 16 bytes from the kernel every time; at thousands of requests per second that
syscall shows in profiles. This draws the same kernel randomness 4 KiB at a time.
"""

from __future__ import annotations

import os
import uuid
from typing import Final

_CHUNK = 4096
# Namespace for email ids derived from (client, Idempotency-Key) with uuid5, fixed forever. The namespace of the
# ids derived from the key alone (6f1c8a52-3f7e-4d2b-9a43-0e5b7c9d2a11, before clients had their own ids) is
# not reused, so an old id and a new one never coincide (docs/contract.md, "Email ids").
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("0b6d2c1e-5a47-4f38-8e19-c3d7a2f45b60")
# Neither a client's name nor an Idempotency-Key can hold a line feed (both are printable), so
# "<client>\n<key>" names one pair and no other.
_SEPARATOR: Final = "\n"


class RandomIds:
    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def _take16(self) -> bytes:
        if self._offset + 16 > len(self._pool):
            self._pool = os.urandom(_CHUNK)
            self._offset = 0
        start = self._offset
        self._offset += 16
        return self._pool[start : start + 16]

    def uuid4(self) -> str:
        """A random (version 4, RFC 9562 variant) UUID in its canonical form."""
        raw = bytearray(self._take16())
        # What uuid.UUID(bytes=..., version=4) does, without building the object (it showed in profiles).
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        text = raw.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def hex(self) -> str:
        """128 random bits as 32 hex characters."""
        return self._take16().hex()


def email_id_for(client: str, idempotency_key: str | None, ids: RandomIds | None = None) -> str:
    """A stable id for a client's Idempotency-Key, or a fresh random one (from `ids` when given).

    Scoped by the client: clients choose their keys independently (order numbers, counters), so two clients
    sending the same key must never share an id, or one's email would be taken for the other's retry.
    """
    if idempotency_key is None:
        return ids.uuid4() if ids is not None else str(uuid.uuid4())
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{client}{_SEPARATOR}{idempotency_key}"))
