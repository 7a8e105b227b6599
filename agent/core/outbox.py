"""The outbox: messages the gate let through, waiting for the uplink, in a fixed bound.

Sequence-numbered and acknowledged; when full, the oldest message is dropped and
counted. Power-loss safe persistence plugs in behind the same interface.
"""

from agent.core import limits
from agent.core.ring import RingBuffer


class Outbox:
    def __init__(self, capacity: int = limits.OUTBOX_LEN) -> None:
        self._ring = RingBuffer(capacity)
        self.accepted = 0
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def dropped(self) -> int:
        return self._ring.dropped

    def push(self, topic: str, payload: bytes) -> None:
        self._ring.push((topic, payload))
        self.accepted += 1

    def peek(self) -> tuple:
        """The oldest waiting (topic, payload); IndexError when empty."""
        return self._ring.peek()  # type: ignore[return-value]

    def ack(self) -> None:
        """The oldest message was delivered: remove it."""
        self._ring.pop()
        self.delivered += 1
