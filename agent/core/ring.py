"""A fixed-capacity ring buffer that drops the oldest item when full.

Dropping the oldest is the design: fresh readings matter more than stale ones, and a
full buffer must never block a sampler or grow the heap. Drops are counted.
"""

from agent.core.errors import ConfigError


class RingBuffer:
    """Holds at most capacity items; push on a full buffer evicts the oldest."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError("ring capacity must be >= 1, got " + str(capacity))
        self._items: list = [None] * capacity
        self._capacity = capacity
        self._start = 0
        self._len = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._len

    @property
    def capacity(self) -> int:
        return self._capacity

    def push(self, item: object) -> object:
        """Append item; return the evicted oldest item, or None."""
        evicted = None
        if self._len == self._capacity:
            evicted = self._items[self._start]
            self._items[self._start] = item
            self._start = (self._start + 1) % self._capacity
            self.dropped += 1
        else:
            self._items[(self._start + self._len) % self._capacity] = item
            self._len += 1
        return evicted

    def pop(self) -> object:
        """Remove and return the oldest item; IndexError when empty."""
        if self._len == 0:
            raise IndexError("pop from empty ring")
        item = self._items[self._start]
        self._items[self._start] = None
        self._start = (self._start + 1) % self._capacity
        self._len -= 1
        return item

    def peek(self) -> object:
        """The oldest item without removing it; IndexError when empty."""
        if self._len == 0:
            raise IndexError("peek into empty ring")
        return self._items[self._start]

    def items(self) -> list:
        """A copy of the items, oldest first."""
        return [self._items[(self._start + i) % self._capacity] for i in range(self._len)]

    def clear(self) -> None:
        for i in range(self._capacity):
            self._items[i] = None
        self._start = 0
        self._len = 0
