"""A tiny deterministic random source (xorshift32) that gives the same numbers everywhere.

Python's random module differs between CPython and MicroPython; simulations must not.
"""

import math


class XorShift32:
    def __init__(self, seed: int) -> None:
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next_u32(self) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def uniform(self) -> float:
        """A float in (0, 1)."""
        return (self.next_u32() + 0.5) / 4294967296.0

    def gauss(self, mean: float, sd: float) -> float:
        """Normal sample (Box-Muller, one of the pair)."""
        if sd == 0:
            return mean
        u1 = self.uniform()
        u2 = self.uniform()
        return mean + sd * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
