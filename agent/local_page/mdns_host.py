"""The host's mDNS responder for the page's name: one UDP socket in the mDNS group on the
page's interface, answering (agent/local_page/mdns.py) questions for `<name>.local` with
the page's address. Bounded: at most MAX_ANSWERS_PER_S answers a second, whatever arrives.
"""

import asyncio
import socket
import time
from collections.abc import Callable

from agent.local_page import mdns

MAX_ANSWERS_PER_S = 10


class MdnsResponder(asyncio.DatagramProtocol):
    """Answers for one name with one IPv4 address."""

    def __init__(self, name: str, ipv4: str, report: Callable[[str], None],
                 now: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.name = name
        self.address = socket.inet_aton(ipv4)
        self.report = report
        self.now = now
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0
        self.ignored = 0  # questions over the bound, not answered
        self._second = 0.0
        self._in_second = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        unicast = addr[1] != mdns.MDNS_PORT
        reply = mdns.answer(data, self.name, self.address, unicast)
        if not reply or self.transport is None:
            return
        now = self.now()
        if now - self._second >= 1.0:
            self._second, self._in_second = now, 0
        if self._in_second >= MAX_ANSWERS_PER_S:
            self.ignored += 1
            return
        self._in_second += 1
        self.answered += 1
        self.transport.sendto(reply, addr if unicast else (mdns.MDNS_GROUP, mdns.MDNS_PORT))


async def start(
    name: str, ipv4: str, report: Callable[[str], None], port: int = mdns.MDNS_PORT, group: bool = True
) -> tuple:
    """(transport, responder) listening on `port` (5353 in use; another in tests, without
    joining the group). OSError when the port or the group cannot be had."""  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):  # the system's own responder (avahi) may hold 5353 too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if group:
            sock.bind(("", port))
            member = socket.inet_aton(mdns.MDNS_GROUP) + socket.inet_aton(ipv4)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, member)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ipv4))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        else:
            sock.bind((ipv4, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    responder = MdnsResponder(name, ipv4, report)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: responder, sock=sock)
    return transport, responder
