"""A counting pool of processing slots: pollers receive only as many messages as there is room for."""

from __future__ import annotations

import asyncio


class SlotPool:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._changed = asyncio.Condition()

    @property
    def in_use(self) -> int:
        return self.size - self._free

    async def acquire_up_to(self, wanted: int) -> int:
        """Waits for at least one free slot, then takes up to `wanted` of them."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._free > 0)
            taken = min(wanted, self._free)
            self._free -= taken
            return taken

    def release(self, count: int = 1) -> None:
        if count <= 0:
            return
        self._free += count
        assert self._free <= self.size, "released more slots than were taken"
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_idle(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._free == self.size)
