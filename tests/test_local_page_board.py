"""The MicroPython page server's pure parts, on CPython (board.py imports there too): how it
reads a request in pieces, and its uptime clock across a wrap of the ticks. Apart from
tests/test_local_page_micropython.py, whose browser fixture keeps an event loop running."""

import asyncio
import types

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.local_page import board, intake, limits


class _NoCollection:
    """Stands in for the gc module while a test reads requests: a board collects before it
    joins a head's pieces (its heap is small and fragments), but a full collection of this
    test process takes about 15 ms, and a property test reads hundreds of requests."""

    @staticmethod
    def collect() -> None:
        pass


def _read(data: bytes, cut: list) -> bytes:
    """board.BoardPage._read_request over a stream that delivers data in the pieces `cut` makes."""

    async def feed(reader: asyncio.StreamReader) -> None:
        pos = 0
        for at in sorted(set(cut)) + [len(data)]:
            if pos < at <= len(data):
                reader.feed_data(data[pos:at])
                pos = at
            await asyncio.sleep(0)  # the reader takes what has come so far
        reader.feed_eof()

    async def go() -> bytes:
        reader = asyncio.StreamReader()
        feeder = asyncio.ensure_future(feed(reader))
        page = types.SimpleNamespace(allowed_hosts=intake.allowed_hosts("127.0.0.1", 8080))
        try:
            return await board.BoardPage._read_request(page, reader)  # type: ignore[arg-type]
        finally:
            await feeder

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(board, "gc", _NoCollection)
        return asyncio.run(go())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3 * limits.BOARD_READ_BYTES), st.integers(0, 40), st.integers(0, 3),
       st.lists(st.integers(0, 4000), max_size=6))  # fmt: skip
@example(225, 1, 1, [293])  # the empty line in three pieces, the middle one a single byte
def test_a_request_is_read_whole_wherever_its_pieces_end(pad: int, body_len: int, straddle: int, cut: list) -> None:
    """The empty line that ends the head may straddle two of the pieces the board reads
    (straddle: how many of its bytes come in the second), and pieces may end anywhere."""
    body = b"c" * body_len
    head = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX: " + b"a" * pad + b"\r\n"
    head += b"Content-Length: %d\r\n\r\n" % body_len if body_len else b"\r\n"
    if straddle:
        cut = [*cut, len(head) - straddle]
    assert _read(head + body, cut) == head + body


def test_a_head_over_the_bound_is_refused_in_pieces_and_more_body_than_declared_too() -> None:
    start = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX: "
    with pytest.raises(intake.HeadError) as over:
        _read(start + b"a" * (limits.MAX_HEAD_BYTES * 4), [])
    assert over.value.status == 431
    with pytest.raises(intake.HeadError) as extra:
        _read(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 2\r\n\r\nabc", [])
    assert extra.value.status == 400
    with pytest.raises(EOFError):
        _read(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 9\r\n\r\nabc", [])


def test_the_uptime_clock_runs_on_across_a_wrap_of_the_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    period = 1 << 30  # an ESP32's ticks_ms wraps at 2**30 ms
    ticks = [period - 500]
    monkeypatch.setattr(board, "ticks_ms", lambda: ticks[0] % period)
    monkeypatch.setattr(board, "ticks_diff", lambda a, b: ((a - b + period // 2) % period) - period // 2)
    clock = board.Uptime()
    seen = []
    for step in (300, 300, 3_600_000, 1):  # across the wrap, then an hour
        ticks[0] += step
        seen.append(clock())
    assert seen == [0.3, 0.6, 3600.6, 3600.601]
