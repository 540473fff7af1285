"""The bytes the API may hold for requests at once: bodies being read, parsed emails, envelopes waiting for SQS.

A count of requests does not bound memory when one email can be 4,000 times the size of another: 600
clients sending 250 KB emails took the API past the chart's 512 MiB limit, an OOM kill of every request
in flight. Each request reserves what it will hold before holding it and is answered 503 + Retry-After
when the budget cannot take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

MIB: Final = 1024 * 1024
# What the API holds that is not a request's: interpreter, libraries, clients, metrics (measured ~95 MiB
# after an overload run) plus what the allocator keeps of freed requests.
_BASELINE_BYTES: Final = 160 * MIB
_FRACTION_OF_LIMIT: Final = 0.5
_MINIMUM_BYTES: Final = 16 * MIB
# Used when the process has no memory limit (a developer's machine): the chart's 512 MiB gives this too.
_UNLIMITED_DEFAULT_BYTES: Final = 176 * MIB
# cgroup v2 and v1 spell "no limit" as "max" and as a huge number.
_NO_LIMIT_ABOVE: Final = 1 << 60


def container_memory_limit(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit of this process's container (cgroup v2, then v1), or None when there is none."""
    for candidate in (cgroup_root / "memory.max", cgroup_root / "memory" / "memory.limit_in_bytes"):
        try:
            raw = candidate.read_text().strip()
        except OSError:
            continue
        if raw == "max":
            return None
        try:
            limit = int(raw)
        except ValueError:
            continue
        return None if limit >= _NO_LIMIT_ABOVE else limit
    return None


def default_budget_bytes(memory_limit: int | None) -> int:
    """Half of what the container's limit leaves above the baseline: (limit - 160 MiB) / 2.

    The other half is the allocator's: freed request buffers are not all returned to the system at
    once, so the resident size runs above the bytes reserved (measured in bench, overload phase).
    """
    if memory_limit is None:
        return _UNLIMITED_DEFAULT_BYTES
    return max(_MINIMUM_BYTES, int((memory_limit - _BASELINE_BYTES) * _FRACTION_OF_LIMIT))


class MemoryBudget:
    """Reservations of bytes against a fixed limit; never blocks (a full budget means shed now)."""

    def __init__(self, limit_bytes: int, registry: CollectorRegistry | None = None) -> None:
        self._limit = limit_bytes
        self._reserved = 0
        if registry is not None:
            Gauge("email_ingest_api_memory_budget_bytes", "Bytes requests may hold at once.", registry=registry).set(
                limit_bytes
            )
            Gauge(
                "email_ingest_api_memory_reserved_bytes",
                "Bytes held by requests now: bodies, parsed emails, envelopes waiting for SQS.",
                registry=registry,
            ).set_function(lambda: self._reserved)

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def reserved(self) -> int:
        return self._reserved

    def try_reserve(self, size: int) -> bool:
        if self._reserved + size > self._limit:
            return False
        self._reserved += size
        return True

    def release(self, size: int) -> None:
        self._reserved -= size

    @contextmanager
    def reservation(self) -> Iterator[Reservation]:
        """What one request holds, released when it is answered, however it ends."""
        held = Reservation(self)
        try:
            yield held
        finally:
            self.release(held.size)


class Reservation:
    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.size = 0

    def add(self, size: int) -> bool:
        """Reserves `size` more bytes; False (and nothing reserved) when the budget cannot take them."""
        if not self._budget.try_reserve(size):
            return False
        self.size += size
        return True
