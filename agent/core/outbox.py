"""The outbox: messages the gate let through, waiting for the uplink, in a fixed bound.

Acknowledged in order; when full, the oldest message is dropped and counted. Messages
carry their data category, so withdrawing consent purges that category's queue at once.
Power-loss safe persistence plugs in behind the same interface.
"""

from agent.core import limits
from agent.core.ring import RingBuffer


class Outbox:
    def __init__(self, capacity: int = limits.OUTBOX_LEN) -> None:
        self._ring = RingBuffer(capacity)
        self.accepted = 0
        self.delivered = 0
        self.purged = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def dropped(self) -> int:
        return self._ring.dropped

    def push(self, topic: str, payload: bytes, category: str = "") -> None:
        self._ring.push((topic, payload, category))
        self.accepted += 1

    def peek(self) -> tuple:
        """The oldest waiting (topic, payload, category); IndexError when empty."""
        return self._ring.peek()  # type: ignore[return-value]

    def ack(self) -> None:
        """The oldest message was delivered: remove it."""
        self._ring.pop()
        self.delivered += 1

    def purge(self, category: str) -> int:
        """Remove every waiting message of a category; returns how many."""
        keep = [m for m in self._ring.items() if m[2] != category]
        removed = len(self._ring) - len(keep)
        self._ring.clear()
        for m in keep:
            self._ring.push(m)
        self.purged += removed
        return removed

    def items(self) -> list:
        return self._ring.items()
