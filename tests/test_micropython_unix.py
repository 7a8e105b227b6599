"""The MicroPython unix port the suite relies on is what the pin says: a 1.29 interpreter
with sockets, asyncio and mbedTLS ssl, whose heap is fixed (it runs out, it never grows)."""

import pytest

from tests import micropython_unix


@pytest.fixture(scope="module")
def unix_port() -> object:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    return micropython_unix


def test_the_interpreter_is_micropython_1_29_with_what_a_board_has(unix_port: object) -> None:
    out = micropython_unix.run(
        "import sys, socket, ssl, asyncio, hashlib, binascii, json, os\n"
        "print(sys.implementation.name, sys.implementation.version[:2])\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "print(hasattr(ctx, 'load_cert_chain'), hasattr(ctx, 'load_verify_locations'), hasattr(ssl, 'CERT_REQUIRED'))\n"
        "print(hasattr(asyncio, 'open_connection'), hasattr(socket, 'getaddrinfo'), hasattr(hashlib, 'sha256'))\n"
    )
    assert out.split("\n")[:3] == ["micropython (1, 29)", "True True True", "True True True"], out


@pytest.mark.parametrize("heap", [64 * 1024, 192 * 1024])
def test_the_heap_is_fixed_and_running_out_is_a_memory_error(unix_port: object, heap: int) -> None:
    out = micropython_unix.run(
        "import gc\n"
        "gc.collect()\n"
        "print(gc.mem_free() + gc.mem_alloc())\n"
        "keep = []\n"
        "try:\n"
        "    while True:\n"
        "        keep.append(bytearray(1024))\n"
        "except MemoryError:\n"
        "    print(len(keep))\n",
        heap=heap,
    )
    total, blocks = (int(x) for x in out.split())
    assert heap - heap // 64 <= total <= heap  # what was asked for, less the allocator's own table
    assert blocks < heap // 1024  # it ran out within the heap: nothing grew
    with pytest.raises(micropython_unix.MicroPythonUnixError, match="MemoryError"):
        micropython_unix.run("x = bytearray(%d)\n" % (2 * heap), heap=heap)
