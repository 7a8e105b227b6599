"""A bounded asyncio channel between pipeline stages, for CPython and MicroPython.

MicroPython's asyncio has no Queue; this one is built on Event and RingBuffer. A full
channel drops its oldest item (counted in `dropped`) so a producer never blocks.
"""

import asyncio

from agent.core.ring import RingBuffer


class BoundedChannel:
    """Single-consumer channel with a fixed capacity."""

    def __init__(self, capacity: int) -> None:
        self._ring = RingBuffer(capacity)
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def dropped(self) -> int:
        return self._ring.dropped

    def put(self, item: object) -> None:
        """Add item without waiting; the oldest item is dropped when full."""
        self._ring.push(item)
        self._ready.set()

    def get_nowait(self) -> object:
        """The oldest item; IndexError when empty."""
        item = self._ring.pop()
        if len(self._ring) == 0:
            self._ready.clear()
        return item

    async def get(self) -> object:
        """Wait for and return the oldest item."""
        while len(self._ring) == 0:
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()
