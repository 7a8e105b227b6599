"""A small MQTT 3.1.1 client for the board, on asyncio streams, in the portable subset.

Packets are built into and parsed from bytes here (checkable without a network); the
client speaks QoS 0/1 with keepalive over a stream the platform opens (TLS on the
board via its ssl module). One buffer per packet, no hidden queues: the outbox is the
queue. Tested on CPython against the same Mosquitto as the paho uplink.
"""

import asyncio
import struct

from agent.core.errors import WichtelError

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

MAX_PACKET = 16_384  # larger inbound packets are refused: the link is dropped


class MqttError(WichtelError):
    """The broker refused, or the link broke, or a packet was not valid MQTT."""


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining(len(body)) + body


def connect_packet(client_id: str, keepalive: int, will_topic: str = "", will: bytes = b"") -> bytes:
    flags = 0x02  # clean session
    payload = _str(client_id)
    if will_topic:
        flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain
        payload += _str(will_topic) + struct.pack("!H", len(will)) + will
    return _packet(CONNECT, _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload)


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int, retain: bool = False) -> bytes:
    first = PUBLISH | (qos << 1) | (1 if retain else 0)
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(first, body)


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    return _packet(SUBSCRIBE, struct.pack("!H", packet_id) + _str(topic) + bytes([qos]))


def puback_packet(packet_id: int) -> bytes:
    return _packet(PUBACK, struct.pack("!H", packet_id))


def parse_publish(first: int, body: bytes) -> tuple:
    """(topic, payload, qos, packet_id) of a PUBLISH body."""
    if len(body) < 2:
        raise MqttError("PUBLISH too short")
    n = struct.unpack("!H", body[:2])[0]
    if 2 + n > len(body):
        raise MqttError("PUBLISH topic runs past the packet")
    topic = body[2 : 2 + n].decode()
    qos = (first >> 1) & 3
    pos = 2 + n
    pid = 0
    if qos:
        if pos + 2 > len(body):
            raise MqttError("PUBLISH packet id missing")
        pid = struct.unpack("!H", body[pos : pos + 2])[0]
        pos += 2
    return topic, bytes(body[pos:]), qos, pid


async def read_packet(reader: object) -> tuple:
    """(first byte, body) of the next packet; MqttError for a malformed or oversized one."""
    head = await reader.readexactly(1)  # type: ignore[attr-defined]
    mult = 1
    length = 0
    for _ in range(4):
        b = (await reader.readexactly(1))[0]  # type: ignore[attr-defined]
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
    else:
        raise MqttError("remaining length longer than 4 bytes")
    if length > MAX_PACKET:
        raise MqttError("inbound packet of %d bytes; at most %d" % (length, MAX_PACKET))
    body = await reader.readexactly(length) if length else b""  # type: ignore[attr-defined]
    return head[0], body


class PortableMqttClient:
    """One connection. open() connects (TLS context from the platform), then the caller
    runs pump() as a task; publish() waits for PUBACK."""

    def __init__(self, client_id: str, keepalive: int = 30, on_message: object = None) -> None:
        self.client_id = client_id
        self.keepalive = keepalive
        self.on_message = on_message
        self.reader: object = None
        self.writer: object = None
        self._next_id = 0
        self._acks: dict = {}
        self.connected = False

    async def open(self, host: str, port: int, ssl: object, will_topic: str = "", will: bytes = b"") -> None:
        """Connect; the broker's certificate is checked against host (use its name, not an address)."""
        self.reader, self.writer = await asyncio.open_connection(host, port, ssl=ssl)
        try:
            # TCP_NODELAY (IPPROTO_TCP 6, option 1 on Linux and lwIP): small packets at once.
            self.writer.get_extra_info("socket").setsockopt(6, 1, 1)  # type: ignore[attr-defined,unused-ignore]
        except (AttributeError, OSError, TypeError, ValueError):
            pass  # a port without it still works, with Nagle's delays
        await self._send(connect_packet(self.client_id, self.keepalive, will_topic, will))
        first, body = await read_packet(self.reader)
        if first != CONNACK or len(body) != 2:
            raise MqttError("expected CONNACK, got packet type 0x%02x" % first)
        if body[1] != 0:
            raise MqttError("broker refused the connection (return code %d)" % body[1])
        self.connected = True

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)  # type: ignore[attr-defined]
        await self.writer.drain()  # type: ignore[attr-defined]

    def _pid(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        await self._send(subscribe_packet(self._pid(), topic, qos))

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout: float = 10.0) -> bool:  # fmt: skip
        if not self.connected:
            return False
        pid = self._pid() if qos else 0
        waiter = [asyncio.Event(), False]  # set on PUBACK (True) or when the link ends (False)
        if qos:
            self._acks[pid] = waiter
        try:
            await self._send(publish_packet(topic, payload, qos, pid, retain))
            if not qos:
                return True
            await asyncio.wait_for(waiter[0].wait(), timeout)  # type: ignore[attr-defined]
            return bool(waiter[1])
        except (asyncio.TimeoutError, OSError):  # noqa: UP041 (MicroPython has no builtin TimeoutError)
            return False
        finally:
            self._acks.pop(pid, None)

    async def pump(self) -> None:
        """Read packets until the link ends; pings every keepalive/2 seconds of quiet."""
        try:
            while self.connected:
                first: int
                body: bytes
                try:
                    first, body = await asyncio.wait_for(read_packet(self.reader), self.keepalive / 2)
                except asyncio.TimeoutError:  # noqa: UP041 (as above)
                    await self._send(bytes([PINGREQ, 0]))
                    first, body = await asyncio.wait_for(read_packet(self.reader), self.keepalive / 2)
                kind = first & 0xF0
                if kind == PUBACK and len(body) == 2:
                    waiter = self._acks.get(struct.unpack("!H", body)[0])
                    if waiter is not None:
                        waiter[1] = True
                        waiter[0].set()
                elif kind == PUBLISH:
                    topic, payload, qos, pid = parse_publish(first, body)
                    if qos:
                        await self._send(puback_packet(pid))
                    if self.on_message is not None:
                        self.on_message(topic, payload)  # type: ignore[operator]
        finally:
            self.connected = False
            self._fail_pending()

    def _fail_pending(self) -> None:
        """The link ended: every publish still waiting returns False at once (the message
        stays in the outbox) instead of waiting for its timeout."""
        for waiter in self._acks.values():
            waiter[0].set()

    async def close(self) -> None:
        if self.writer is not None:
            try:
                if self.connected:
                    await self._send(bytes([DISCONNECT, 0]))
            except OSError:
                pass
            self.connected = False
            self._fail_pending()
            self.writer.close()  # type: ignore[attr-defined]
            try:
                await self.writer.wait_closed()  # type: ignore[attr-defined]
            except (OSError, AttributeError):
                pass
