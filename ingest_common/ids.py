"""Random ids without a system call per id.

`uuid.uuid4()` reads 16 bytes from the kernel every time; at thousands of requests per second that
syscall shows in profiles. This draws the same kernel randomness 4 KiB at a time.
"""

from __future__ import annotations

import os
import uuid

_CHUNK = 4096


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
        """A random (version 4) UUID in its canonical form."""
        return str(uuid.UUID(bytes=self._take16(), version=4))

    def hex(self) -> str:
        """128 random bits as 32 hex characters."""
        return self._take16().hex()
