"""The device's network path as the scenarios cut it: a loopback TCP relay between device
and broker whose radio can be lost and come back (the Wi-Fi-loss scenario).

Lost, as a station that lost its access point sees it: on the connections that are open
nothing arrives any more and nothing is closed (no FIN, no RST: the device finds the link
dead by its own keepalive), and a new connection finds no route (refused at once, as lwIP
refuses with no network interface up). Back: new connections go through; the old ones,
whose state both ends have long dropped, are closed.
"""

import select
import socket
import struct
import threading

_CHUNK = 16384
_POLL_S = 0.05  # how often the relay's threads look at the radio and at close()


class RadioGate:
    """A relay on 127.0.0.1:port to 127.0.0.1:target_port with a radio that can be lost."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.refused = 0  # connections tried while the radio was lost
        self.swallowed = 0  # bytes that vanished while it was lost
        self.connections = 0  # connections relayed
        self._pairs: list = []  # (device side, broker side) of each relayed connection
        self._lock = threading.Lock()
        self._closing = False
        self._threads = [threading.Thread(target=self._accept, name="radio-accept", daemon=True)]
        self._threads[0].start()

    def lose(self) -> None:
        """The radio is gone: open links go silent, new ones are refused."""
        self.up = False

    def restore(self) -> None:
        """The radio is back: the silent links are closed, new ones go through."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                _close(s)
        self.up = True

    def _accept(self) -> None:
        self.listener.settimeout(_POLL_S)
        while not self._closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            if not self.up:
                self.refused += 1
                # RST at once (linger 0): as a connect with no route fails.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                conn.close()  # the broker itself is down: the device sees its link end
                continue
            with self._lock:
                self._pairs.append((conn, upstream))
                self.connections += 1
            thread = threading.Thread(target=self._relay, args=(conn, upstream), name="radio-relay", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while not self._closing:
                ready, _, _ = select.select([a, b], [], [], _POLL_S)
                for s in ready:
                    data = s.recv(_CHUNK)
                    if not data:
                        return
                    if self.up:
                        peer[s].sendall(data)
                    else:
                        self.swallowed += len(data)
        except (OSError, ValueError):  # closed by restore() or close(): the relay ends
            return
        finally:
            _close(a)
            _close(b)

    def close(self) -> None:
        self._closing = True
        self.restore()
        _close(self.listener)
        for thread in self._threads:
            thread.join(2)


def _close(s: socket.socket) -> None:
    try:
        s.close()
    except OSError:
        pass  # closed already
