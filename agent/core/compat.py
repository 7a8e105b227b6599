"""The only place that knows whether the core runs on CPython or MicroPython.

Platform facts are decided once at import; the rest of the core imports from here.
mypy checks both branches: IS_MICROPYTHON is a compile-time constant in its two runs.
"""

import sys
import time

IS_MICROPYTHON = sys.implementation.name == "micropython"

if IS_MICROPYTHON:
    import gc

    from micropython import const

    ticks_ms = time.ticks_ms
    ticks_add = time.ticks_add
    ticks_diff = time.ticks_diff

    def mem_alloc() -> int:
        """Bytes of heap in use now (after a collection)."""
        gc.collect()
        return gc.mem_alloc()

    def collect() -> None:
        """Free the garbage now: before a TLS connection, whose buffers need contiguous
        blocks of several KB that a heap full of scattered garbage may not have."""
        gc.collect()

    def tcp_nodelay(writer: object) -> bool:
        """MicroPython's asyncio stream does not expose its socket (get_extra_info raises
        KeyError) and its TLS socket has no setsockopt: nothing to set; False says so."""
        return False

else:

    def const(value: int) -> int:
        """CPython stand-in for micropython.const: the value itself."""
        return value

    _T0 = time.monotonic_ns()

    def ticks_ms() -> int:
        """Milliseconds from an arbitrary start, like MicroPython's time.ticks_ms."""
        return (time.monotonic_ns() - _T0) // 1_000_000

    def ticks_add(ticks: int, delta: int) -> int:
        """ticks + delta (CPython ints do not wrap)."""
        return ticks + delta

    def ticks_diff(end: int, start: int) -> int:
        """end - start in ms (CPython ints do not wrap)."""
        return end - start

    def mem_alloc() -> int:
        """Heap use is measured with tracemalloc on CPython; here it is unknown."""
        return -1

    def collect() -> None:
        """CPython's allocator does not need contiguous heap for a TLS connection."""

    def tcp_nodelay(writer: object) -> bool:
        """TCP_NODELAY (IPPROTO_TCP 6, option 1) on the stream's socket, so that small
        packets leave at once; False when the transport has no socket. OSError passes."""
        sock = writer.get_extra_info("socket")  # type: ignore[attr-defined]
        if sock is None:
            return False
        sock.setsockopt(6, 1, 1)
        return True


async def sleep_ms(ms: int) -> None:
    """Sleep ms milliseconds (0 yields to other tasks)."""
    import asyncio

    await asyncio.sleep(ms / 1000 if ms > 0 else 0)


__all__ = ["IS_MICROPYTHON", "const", "mem_alloc", "sleep_ms", "tcp_nodelay", "ticks_add", "ticks_diff", "ticks_ms"]
