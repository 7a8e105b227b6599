"""The local page's web server on the host (CPython): a bounded socket server inside the
agent's asyncio loop, serving the routes of routes.py.

A thin layer: it asks intake.py which connections to keep and which request heads to read,
and hands each complete request to routes.PageApp; the page changes the running agent only
through agent/device.py and the Agent's own methods. Binds only the address it is given.
board.py is the same page's server on MicroPython.
"""

import asyncio
import errno
import os
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent import device
from agent.core.pipeline import Agent
from agent.device_data import DeviceData
from agent.local_page import intake, limits
from agent.local_page.routes import SECURITY_HEADERS, PageApp, StoredActions

__all__ = ["SECURITY_HEADERS", "LocalPage"]

# The answer to a connection over the cap: no page, no work.
_BUSY_TEXT = b"The appliance is busy; reload in a moment."
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=UTF-8\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)
# Out of descriptors or buffers: the accept loop waits instead of failing on every turn.
_ACCEPT_PAUSE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _HostActions(StoredActions):
    """The page's changes stored in the data directory, as the CLI stores them."""

    def export_pieces(self) -> list:
        """The export file in one piece, indented and sorted as `wichtel data export` writes it."""
        return [device.export_text(self.agent).encode()]


def _file_limit() -> int | None:
    """The soft limit of open files for this process, or None where it cannot be known."""
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking listening socket on exactly this address."""
    family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class LocalPage(PageApp):
    """The page for one running agent on the host. `now` (monotonic seconds) and `wall`
    (seconds since 1970) are passed in so tests can move time."""

    def __init__(self, agent: Agent, data: DeviceData | None, record: dict,
                 now: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 report: Callable[[str], None] | None = None, request_timeout_s: float = limits.REQUEST_TIMEOUT_S,
                 answer_timeout_s: float = limits.ANSWER_TIMEOUT_S) -> None:  # fmt: skip
        super().__init__(agent, _HostActions(agent, data), record, now, wall, report or _stderr)
        self.data = data
        self.request_timeout_s = request_timeout_s
        self.answer_timeout_s = answer_timeout_s
        self.stats = {"served": 0, "refused": 0, "pushed_out": 0, "timed_out": 0, "bad_head": 0, "failed": 0}
        self.connections = intake.ConnectionTable(limits.MAX_CONNECTIONS)
        self.allowed_hosts: frozenset = frozenset()
        self._tasks: dict = {}  # connection id -> its task
        self._closing: set = set()  # tasks of pushed-out connections whose sockets are not closed yet
        self._next_id = 0
        self._sock: socket.socket | None = None
        self.port = 0  # the port listened on, once started
        self._accepting: asyncio.Future | None = None
        self._checker: ThreadPoolExecutor | None = None  # the slow setup-code hash, one at a time

    async def _check_code(self, typed: str) -> bool:
        """The salted hash in a worker thread (it releases the GIL): the loop, and with it the
        uplink and the sampler, goes on while it runs. One thread: checks queue, they never
        take more than one core."""
        if self._checker is None:
            self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wichtel-setup-code")
        return await asyncio.get_running_loop().run_in_executor(self._checker, self.gate.code_ok, typed)

    # -- the socket server -------------------------------------------------------------
    def _log_exception(self, exc: BaseException) -> None:
        """microdot's report of an exception in a route (it would print a traceback): one
        line with where it happened, within the page's log rate."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = "%s:%d" % (os.path.basename(tb.tb_frame.f_code.co_filename), tb.tb_lineno) if tb else "?"
        self._report("local page: %s at %s while answering: %s" % (type(exc).__name__, where, exc))

    async def start(self, host: str, port: int, names: tuple = ()) -> None:
        """Listen on host:port only (port 0: any free port, then in self.port), answering to
        that address (and to the loopback names when it is one, and to the local names
        given); OSError (address in use, no such
        interface) or ConfigError (a wildcard address, too few files allowed) at once."""
        self.connections = intake.ConnectionTable(intake.connection_cap(_file_limit()))
        self._sock = _listen(host, port, self.connections.cap)
        self.port = self._sock.getsockname()[1]  # port 0: the one the system chose
        self.allowed_hosts = intake.allowed_hosts(host, self.port, names)
        self.hook_log()
        self._accepting = asyncio.ensure_future(self._accept())

    async def stop(self) -> None:
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.cancel()
            await asyncio.gather(accepting, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._checker is not None:
            self._checker.shutdown(wait=False)
            self._checker = None
        self.unhook_log()

    async def _accept(self) -> None:
        """Take connections one at a time, so no more descriptors are open than the table
        allows (plus the one being turned away). Accepted here, not by loop.sock_accept: a
        cancelled sock_accept whose connection was already waiting raises InvalidStateError
        in the loop and leaves that connection open (CPython 3.11); cancelled here, the
        loop only stops waiting, and a waiting connection stays in the backlog."""
        assert self._sock is not None
        sock = self._sock
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(sock.fileno(), readable.set)
        try:
            while True:
                try:
                    conn, peer = sock.accept()
                except (BlockingIOError, InterruptedError):
                    readable.clear()
                    await readable.wait()
                    continue
                except OSError as e:
                    self._report("local page: cannot take connections (%s); trying again in %.1f s"
                                 % (os.strerror(e.errno or 0), limits.ACCEPT_RETRY_S))  # fmt: skip
                    if e.errno in _ACCEPT_PAUSE_ERRNOS:
                        await asyncio.sleep(limits.ACCEPT_RETRY_S)
                    continue
                self.take(conn, peer)
                if self._closing:  # a descriptor is free only when the pushed-out connection has closed
                    await asyncio.wait(list(self._closing), timeout=1.0)
                # A flood of waiting connections must not keep the uplink and the sampler from their turns.
                await asyncio.sleep(0)
        finally:
            loop.remove_reader(sock.fileno())

    def take(self, conn: socket.socket, peer: tuple) -> asyncio.Future | None:
        """Admit one accepted connection and serve it in a task of its own (returned), or turn
        it away at once (None). The accept loop calls this; tests hand in socket pairs."""
        conn.setblocking(False)
        self._next_id += 1
        cid = self._next_id
        admitted, pushed_out = self.connections.open(cid, str(peer[0]), self.now())
        if pushed_out is not None:
            self.stats["pushed_out"] += 1
            victim = self._tasks[pushed_out]
            victim.cancel()  # still reading its request: no work is cut short
            self._closing.add(victim)
            victim.add_done_callback(self._closing.discard)
        if not admitted:
            self.stats["refused"] += 1
            try:
                conn.send(_BUSY)
            except OSError:
                pass  # it goes anyway
            conn.close()
            self._report("local page: a connection from %s turned away (%d open, at most %d, %d from one address)"
                         % (peer[0], len(self.connections), self.connections.cap,
                            limits.MAX_CONNECTIONS_PER_SOURCE))  # fmt: skip
            return None
        task = self._tasks[cid] = asyncio.ensure_future(self._serve(cid, conn, peer))
        task.add_done_callback(lambda _: self._closed(cid, conn))
        return task

    def _closed(self, cid: int, conn: socket.socket) -> None:
        """A connection's task has ended, however: even one pushed out before it ever ran
        leaves no descriptor and no entry behind."""
        conn.close()  # a no-op when its transport closed it
        self.connections.close(cid)
        self._tasks.pop(cid, None)

    async def _serve(self, cid: int, conn: socket.socket, peer: tuple) -> None:
        """One connection: its request within REQUEST_TIMEOUT_S, its answer within
        ANSWER_TIMEOUT_S, then closed (no keep-alive)."""
        writer = None
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=limits.MAX_HEAD_BYTES)
            writer.transport.set_write_buffer_limits(0)  # drain() returns when the kernel has it all
            try:
                data = await asyncio.wait_for(self._read_request(reader), self.request_timeout_s)
            except TimeoutError:
                self.stats["timed_out"] += 1
                self._report("local page: a connection from %s closed: no complete request within %.0f s"
                             % (peer[0], self.request_timeout_s))  # fmt: skip
                return
            except intake.HeadError as e:
                self.stats["bad_head"] += 1
                out = await self._refusal(e, peer)
            else:
                self.connections.request_in(cid)
                out = await self.answer(data, peer)
            writer.write(out)
            await asyncio.wait_for(writer.drain(), self.answer_timeout_s)
            self.stats["served"] += 1
        except TimeoutError:
            self.stats["timed_out"] += 1
            self._report("local page: %s did not take its answer within %.0f s" % (peer[0], self.answer_timeout_s))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except Exception as e:  # noqa: BLE001 -- one connection's fault must not end the page; it is reported
            self.stats["failed"] += 1
            self._log_exception(e)
        finally:  # the table entry goes in _closed, once the socket is closed
            if writer is not None:
                if writer.transport.get_write_buffer_size():
                    writer.transport.abort()  # a client not reading does not keep the descriptor
                else:
                    writer.close()
                try:  # the transport closes its socket a loop turn later; until then it counts
                    await asyncio.wait_for(writer.wait_closed(), 1.0)
                except (OSError, TimeoutError):
                    pass  # closed with an error, or not within a second: _closed closes it then

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """Head and body of one request, within the page's bounds (HeadError otherwise)."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise intake.HeadError(431, "the request head is over %d bytes" % limits.MAX_HEAD_BYTES) from None
        parsed = intake.parse_head(head, self.allowed_hosts)
        return head + (await reader.readexactly(parsed.content_length) if parsed.content_length else b"")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)
