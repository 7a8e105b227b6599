"""The local page's web server on MicroPython (a board, or the unix port in the tests):
asyncio.start_server with the page's bounds, serving the routes of routes.py.

The same rules as the host's server.py where they matter: one Host, the request bounds of
intake.parse_head, a time limit for the request and for the answer, a connection table
with its cap, the login throttle, nonces, sessions and form tokens (access.py). Board-sized
where memory asks for it (limits.BOARD_*); docs/local-page.md says what differs.
"""

import asyncio
import gc
import socket
import time

from agent import setup_code
from agent.core.compat import ticks_diff, ticks_ms
from agent.core.pipeline import Agent
from agent.local_page import intake, limits
from agent.local_page.routes import DeviceActions, PageApp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_BUSY_TEXT = b"The appliance is busy; reload in a moment."
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=UTF-8\r\n"
_END = b"\r\n\r\n"


_JOIN_TRIES = 3  # tries to find one block for a request head read in pieces


class Uptime:
    """Seconds since start from ticks_ms, which wraps (every 12.4 days on an ESP32): each call
    adds the ticks since the one before, so it stays monotonic if called at least once per
    half a wrap period (the page calls it on every request, and BoardPage.keep_time hourly)."""

    def __init__(self) -> None:
        self._last = ticks_ms()
        self._ms = 0

    def __call__(self) -> float:
        now = ticks_ms()
        self._ms += ticks_diff(now, self._last)
        self._last = now
        return self._ms / 1000


def peer_address(peer: object) -> str:
    """The client's address as text: a tuple (address, port) on a board, a raw sockaddr on
    the unix port."""
    if isinstance(peer, tuple):
        return str(peer[0])
    family, raw, _ = socket.sockaddr(bytes(peer))  # type: ignore[attr-defined, call-overload]
    return str(socket.inet_ntop(family, raw))


class BoardPage(PageApp):
    """The page for one agent on a board: its changes stored through `actions` (StoredActions
    with the board's data; in memory only without), the setup code checked in pieces
    between the board's other tasks."""

    def __init__(self, agent: Agent, record: dict, report: "Callable[[str], None]",
                 now: "Callable[[], float] | None" = None, wall: "Callable[[], float]" = time.time,
                 request_timeout_s: float = limits.REQUEST_TIMEOUT_S,
                 answer_timeout_s: float = limits.ANSWER_TIMEOUT_S,
                 actions: "DeviceActions | None" = None) -> None:  # fmt: skip
        super().__init__(agent, actions or DeviceActions(agent), record, now or Uptime(), wall, report)
        self.show_all = False  # the export is a download only: the largest strings the page would build
        self.request_timeout_s = request_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.stats = {"served": 0, "refused": 0, "pushed_out": 0, "timed_out": 0, "bad_head": 0, "failed": 0}
        self.connections = intake.ConnectionTable(limits.BOARD_MAX_CONNECTIONS)
        self.allowed_hosts: frozenset = frozenset()
        self._tasks: dict = {}  # connection id -> its task
        self._next_id = 0
        self._server: object = None
        self._checking = asyncio.Lock()  # one code check at a time: they queue, as on the host's one thread

    async def _check_code(self, typed: str) -> bool:
        """The salted hash in pieces of BOARD_HASH_CHUNK rounds, yielding between them, so the
        sampler and the uplink go on while a code is checked."""
        result = None
        async with self._checking:
            for result in setup_code.verify_steps(typed, self.gate.record, limits.BOARD_HASH_CHUNK):
                if result is None:
                    await asyncio.sleep(0)
        return result is True  # the last step is the answer; every one before it is None

    async def start(self, host: str, port: int, names: tuple = ()) -> None:
        """Listen on host:port only, answering to that address and names (intake.allowed_hosts)."""
        self.allowed_hosts = intake.allowed_hosts(host, port, names)
        self.hook_log()
        self._server = await asyncio.start_server(self._connected, host, port, backlog=limits.BOARD_MAX_CONNECTIONS)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # type: ignore[attr-defined]
            await server.wait_closed()  # type: ignore[attr-defined]
        for task in list(self._tasks.values()):
            task.cancel()
        self.unhook_log()

    async def keep_time(self) -> None:
        """Calls the uptime clock hourly, so its ticks never wrap unseen."""
        while True:
            self.now()
            await asyncio.sleep(3600)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection (asyncio.start_server runs this in a task of its own): admitted by
        the connection table or turned away at once; then its request within
        REQUEST_TIMEOUT_S, its answer within ANSWER_TIMEOUT_S, then closed."""
        address = peer_address(writer.get_extra_info("peername"))
        self._next_id += 1
        cid = self._next_id
        admitted, pushed_out = self.connections.open(cid, address, self.now())
        if pushed_out is not None:
            self.stats["pushed_out"] += 1
            victim = self._tasks.pop(pushed_out, None)
            if victim is not None:
                victim.cancel()  # still reading its request: no work is cut short
        if not admitted:
            self.stats["refused"] += 1
            self._report("local page: a connection from %s turned away (%d open, at most %d)"
                         % (address, len(self.connections), self.connections.cap))  # fmt: skip
            await self._send_and_close(writer, _BUSY + b"Content-Length: %d\r\n\r\n" % len(_BUSY_TEXT) + _BUSY_TEXT)
            return
        self._tasks[cid] = asyncio.current_task()
        try:
            await self._serve(cid, reader, writer, address)
        except asyncio.CancelledError:
            pass  # pushed out for a newcomer (counted then); the socket is closed below
        finally:
            self._tasks.pop(cid, None)
            self.connections.close(cid)
            try:
                writer.close()
                await writer.wait_closed()
            except OSError:
                pass  # the client is gone already

    async def _serve(self, cid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     address: str) -> None:  # fmt: skip
        peer = (address, 0)
        try:
            data = await asyncio.wait_for(self._read_request(reader), self.request_timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin TimeoutError
            self.stats["timed_out"] += 1
            self._report("local page: a connection from %s closed: no complete request within %.0f s"
                         % (address, self.request_timeout_s))  # fmt: skip
            return
        except intake.HeadError as e:
            self.stats["bad_head"] += 1
            out = [await self._refusal(e, peer)]
        except (EOFError, OSError):
            return  # the client went away
        except MemoryError:  # no room for this request now: it is closed, the page goes on
            self.stats["failed"] += 1
            self._report("local page: no memory for a request from %s; closed" % address)
            return
        else:
            self.connections.request_in(cid)
            # The largest blocks the page needs are its answer's: garbage collected first, the
            # free blocks between live objects join up (measured: docs/local-page.md).
            gc.collect()
            try:
                out = await self.answer_pieces(data, peer)
            except Exception as e:  # noqa: BLE001 -- one request's fault must not end the page; it is reported
                self.stats["failed"] += 1
                self._log_exception(e)
                return
        try:
            await asyncio.wait_for(self._send(writer, out), self.answer_timeout_s)
            self.stats["served"] += 1
        except asyncio.TimeoutError:  # noqa: UP041 -- MicroPython has no builtin TimeoutError
            self.stats["timed_out"] += 1
            self._report("local page: %s did not take its answer within %.0f s" % (address, self.answer_timeout_s))
        except OSError:
            pass  # the client went away

    async def _send(self, writer: asyncio.StreamWriter, pieces: list) -> None:
        """The answer piece by piece: no block as large as the whole answer is needed."""
        for piece in pieces:
            writer.write(piece)
            await writer.drain()

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """Head and body of one request, within the page's bounds (HeadError otherwise). Read
        in pieces of BOARD_READ_BYTES, kept apart until the head is complete: MicroPython's
        readline has no bound of its own, and a fragmented heap may have no room for one
        block of MAX_HEAD_BYTES, only for the head a browser actually sends."""
        pieces: list = []
        size = 0
        end = -1
        seam = b""  # the last 3 bytes read, however many pieces they came in
        while end < 0:
            piece = await reader.read(limits.BOARD_READ_BYTES)
            if not piece:
                raise EOFError("the client closed before its request was complete")
            # The empty line may straddle pieces: look from the 3 bytes before this one.
            at = (seam + piece).find(_END)
            pieces.append(piece)
            size += len(piece)
            if at >= 0:
                end = size - len(piece) - len(seam) + at + len(_END)
            elif size > limits.MAX_HEAD_BYTES:
                raise intake.HeadError(431, "the request head is over %d bytes" % limits.MAX_HEAD_BYTES)
            seam = (seam + piece)[-3:]
        data: bytes = pieces[0]
        if len(pieces) > 1:
            # A head in several pieces needs one block for them all: garbage out of its way
            # first, and when the heap has no such block right now, once more after the
            # agent's other tasks ran a little (what they held briefly is garbage then).
            for attempt in range(_JOIN_TRIES):
                gc.collect()
                try:
                    data = b"".join(pieces)
                    break
                except MemoryError:
                    if attempt == _JOIN_TRIES - 1:
                        raise
                    await asyncio.sleep(0.05)
        pieces = []
        parsed = intake.parse_head(data if end == len(data) else data[:end], self.allowed_hosts)
        missing = parsed.content_length - (len(data) - end)
        if missing < 0:
            raise intake.HeadError(400, "more bytes than Content-Length after the head (no pipelining)")
        while missing:
            piece = await reader.read(missing)
            if not piece:
                raise EOFError("the client closed before its body was complete")
            data += piece
            missing -= len(piece)
        return data

    async def _send_and_close(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self.answer_timeout_s)
        except (OSError, asyncio.TimeoutError):  # noqa: UP041 -- no builtin TimeoutError on MicroPython
            pass  # it is closed either way
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass
