"""A small MQTT 3.1.1 client for the board, on asyncio streams, in the portable subset.

Packets are built into and parsed from bytes here (checkable without a network); the
client speaks QoS 0/1 with keepalive over a stream the platform opens (TLS on the
board via its ssl module). One buffer per packet, no hidden queues: the outbox is the
queue. Tested on CPython against the same Mosquitto as the paho uplink.
"""

import asyncio
import struct

from agent.core import limits
from agent.core.compat import const, tcp_nodelay, ticks_diff, ticks_ms
from agent.core.errors import MqttError
from agent.core.ratelimit import ThrottledReport

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
UNSUBACK = 0xB0
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

MAX_PACKET = limits.MAX_INBOUND_PACKET  # larger inbound packets are refused: the link is dropped
_CLOSE_TIMEOUT_MS = const(2000)  # a closing TLS link waits this long for the broker's goodbye

__all__ = ["MAX_PACKET", "MqttError", "PortableMqttClient", "parse_publish", "read_packet"]


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
    """(topic, payload, qos, packet_id) of a PUBLISH body; MqttError for anything a
    broker may not send to this client: QoS 2 or 3 (it subscribes with QoS 1 at most),
    a topic that is not UTF-8, empty or holds a wildcard or NUL, a QoS 1 packet id 0."""
    qos = (first >> 1) & 3
    if qos > 1:
        raise MqttError("PUBLISH with QoS %d; this client subscribes with QoS 1 at most" % qos)
    if len(body) < 2:
        raise MqttError("PUBLISH of %d bytes; at least 2 (the topic's length)" % len(body))
    n = struct.unpack("!H", body[:2])[0]
    if 2 + n > len(body):
        raise MqttError("PUBLISH topic of %d bytes runs past the packet's %d" % (n, len(body)))
    try:
        topic = bytes(body[2 : 2 + n]).decode()
    except UnicodeError:
        raise MqttError("PUBLISH topic is not UTF-8") from None
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise MqttError("PUBLISH topic %r: expected a topic name without wildcards or NUL" % topic[:60])
    pos = 2 + n
    pid = 0
    if qos:
        if pos + 2 > len(body):
            raise MqttError("PUBLISH packet id missing")
        pid = struct.unpack("!H", body[pos : pos + 2])[0]
        if pid == 0:
            raise MqttError("PUBLISH with QoS 1 and packet id 0")
        pos += 2
    return topic, bytes(body[pos:]), qos, pid


async def read_packet(reader: object, max_packet: int = MAX_PACKET) -> tuple:
    """(first byte, body) of the next packet. MqttError for a malformed one, one larger
    than max_packet (refused before its body is read: nothing of that size is ever
    allocated) or a stream that ends within a packet; the stream's own OSError passes."""
    try:
        # The first byte and the first length byte at once: every packet has both, and on
        # MicroPython each read is a trip through the scheduler's poll (about 1 ms over TLS).
        head = await reader.readexactly(2)  # type: ignore[attr-defined]
        b = head[1]
        mult = 1
        length = 0
        while True:
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
            if mult > 128**3:
                raise MqttError("remaining length longer than 4 bytes")
            b = (await reader.readexactly(1))[0]  # type: ignore[attr-defined]
        if length > max_packet:
            raise MqttError("inbound packet of %d bytes; at most %d" % (length, max_packet))
        body = await reader.readexactly(length) if length else b""  # type: ignore[attr-defined]
    except EOFError as e:  # asyncio's IncompleteReadError is one, on both runtimes
        raise MqttError("the link ended (%s)" % e) from e
    return head[0], body


class _PubackWaiter:
    """A QoS 1 publish waiting for its PUBACK: `done` is set when the PUBACK came (then
    `acked`) or when the link ended (not acked)."""

    __slots__ = ("acked", "done")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.acked = False


class PortableMqttClient:
    """One connection. open() connects (TLS context from the platform), then the caller
    runs pump() as a task until the link ends; publish() waits for PUBACK.

    Every wait is bounded: sending (limits.SEND_TIMEOUT_MS), acknowledgements (publish's
    timeout), silence from the broker (keepalive), closing. Inbound packets are bounded
    (max_packet) and each message is handed to on_message under supervision."""

    def __init__(self, client_id: str, keepalive: int = 30, on_message: object = None, report: object = None,
                 max_packet: int = MAX_PACKET) -> None:  # fmt: skip
        self.client_id = client_id
        self.keepalive = keepalive
        self.on_message = on_message
        # What the broker can make the client say goes through a rate limit; an uplink
        # hands in its own, so that reconnecting does not start a fresh allowance.
        if isinstance(report, ThrottledReport):
            self.report = report
        else:
            self.report = ThrottledReport(report, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.max_packet = max_packet
        self.reader: object = None
        self.writer: object = None
        self._next_id = 0
        self._acks: dict = {}  # packet id -> _PubackWaiter of a QoS 1 publish in flight
        self.connected = False
        self.nodelay = False  # whether TCP_NODELAY is set on this link (the platform may not offer it)
        self.handler_faults = 0  # messages whose handler raised (contained)
        self._last_rx = ticks_ms()  # when the last whole packet came from the broker
        self._ended: object = None  # asyncio.Event: the reader stopped
        self._error: object = None  # why it stopped

    async def open(self, host: str, port: int, ssl: object, will_topic: str = "", will: bytes = b"") -> None:
        """Connect; the broker's certificate is checked against host (use its name, not an address)."""
        self.reader, self.writer = await asyncio.open_connection(host, port, ssl=ssl)
        try:
            self.nodelay = tcp_nodelay(self.writer)
        except OSError as e:
            # The link works without it, with Nagle's delays: said, and the connect goes on.
            self.nodelay = False
            self.report("mqtt: TCP_NODELAY not set (%s); small packets may wait" % e)
        await self._send(connect_packet(self.client_id, self.keepalive, will_topic, will))
        first, body = await read_packet(self.reader, self.max_packet)
        if first != CONNACK or len(body) != 2:
            raise MqttError("expected CONNACK, got packet type 0x%02x" % first)
        if body[1] != 0:
            raise MqttError("broker refused the connection (return code %d)" % body[1])
        self.connected = True

    async def _send(self, data: bytes) -> None:
        """Write one packet; MqttError if the stream does not take it within SEND_TIMEOUT_MS
        (a peer that stops reading must not hold a sender forever)."""
        self.writer.write(data)  # type: ignore[attr-defined]
        try:
            await asyncio.wait_for(self.writer.drain(), limits.SEND_TIMEOUT_MS / 1000)  # type: ignore[attr-defined]
        except asyncio.TimeoutError:  # noqa: UP041 (MicroPython has no builtin TimeoutError)
            raise MqttError("the link took no data for %d ms" % limits.SEND_TIMEOUT_MS) from None

    def _pid(self) -> int:
        for _ in range(limits.UPLINK_WINDOW + 2):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._acks:  # never reuse the id of a message in flight
                break
        return self._next_id

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        await self._send(subscribe_packet(self._pid(), topic, qos))

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout: float = 10.0) -> bool:  # fmt: skip
        """True once the broker acknowledged (QoS 1) or took (QoS 0) it; False when the
        link is down, ends, or is silent for timeout seconds."""
        if not self.connected:
            return False
        pid = self._pid() if qos else 0
        waiter = _PubackWaiter()
        if qos:
            self._acks[pid] = waiter
        try:
            await self._send(publish_packet(topic, payload, qos, pid, retain))
            if not qos:
                return True
            await asyncio.wait_for(waiter.done.wait(), timeout)
            return waiter.acked
        except (asyncio.TimeoutError, OSError, MqttError):  # noqa: UP041 (as above)
            return False
        finally:
            if self._acks.get(pid) is waiter:
                del self._acks[pid]

    async def pump(self) -> None:
        """Run the link until it ends; raises MqttError (or the stream's OSError) saying
        why, or returns when close() ended it.

        Packets are read by a task of its own that no timer cancels: a read cancelled
        half-way through a packet would leave the stream in the middle of one, and every
        packet after it misread (acknowledgements lost while pings keep the link looking
        alive). Beside it, a PINGREQ goes out after keepalive/2 s without a packet from
        the broker, and the link ends after keepalive s without one."""
        self._last_rx = ticks_ms()
        ended = asyncio.Event()
        self._ended = ended
        self._error = None
        reader = asyncio.create_task(self._read_loop())
        try:
            # The loop's own conditions end it, so a cancellation that asyncio.wait_for
            # loses (CPython 3.11 can) cannot keep it running.
            while self.connected and not ended.is_set():
                try:
                    await asyncio.wait_for(ended.wait(), self.keepalive / 2)
                except asyncio.TimeoutError:  # noqa: UP041 (as above)
                    quiet = ticks_diff(ticks_ms(), self._last_rx)
                    if quiet >= self.keepalive * 1000:
                        raise MqttError(
                            "nothing from the broker for %d ms (keepalive %d s)" % (quiet, self.keepalive)
                        ) from None
                    if quiet >= self.keepalive * 500:
                        await self._send(bytes([PINGREQ, 0]))
            error = self._error
            if isinstance(error, BaseException):
                raise error
        finally:
            self.connected = False
            reader.cancel()
            self._fail_pending()

    async def _read_loop(self) -> None:
        try:
            while self.connected:
                first, body = await read_packet(self.reader, self.max_packet)
                self._last_rx = ticks_ms()
                await self._handle(first, body)
        except Exception as e:  # noqa: BLE001 - whatever ends the reader ends the link; pump() raises it
            self._error = e
        finally:
            self._ended.set()  # type: ignore[attr-defined]

    async def _handle(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == PUBACK:
            if len(body) != 2:
                raise MqttError("PUBACK of %d bytes; expected 2" % len(body))
            waiter = self._acks.get(struct.unpack("!H", body)[0])
            if waiter is not None:
                waiter.acked = True
                waiter.done.set()
        elif kind == PUBLISH:
            topic, payload, qos, pid = parse_publish(first, body)
            if qos:
                await self._send(puback_packet(pid))
            self._deliver(topic, payload)
        elif kind == SUBACK:
            if len(body) < 3:
                raise MqttError("SUBACK of %d bytes; expected at least 3" % len(body))
            if body[2] & 0x80:
                self.report("mqtt: the broker refused the subscription")
        elif kind != PINGRESP and kind != UNSUBACK:
            raise MqttError("packet type 0x%02x is not one a broker sends to a subscribed client" % first)

    def _deliver(self, topic: str, payload: bytes) -> None:
        """Hand one message to on_message, supervised: whatever the handler raises is
        contained, counted and said (rate-limited), and the link goes on."""
        if self.on_message is None:
            return
        try:
            self.on_message(topic, payload)  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - the supervisor of the inbound path
            self.handler_faults += 1
            self.report("mqtt: the handler failed on a message to %r (%s: %s); the link goes on"
                        % (topic[:60], type(e).__name__, str(e)[:100]))  # fmt: skip

    def _fail_pending(self) -> None:
        """The link ended: every publish still waiting returns False at once (the message
        stays in the outbox) instead of waiting for its timeout."""
        for waiter in self._acks.values():
            waiter.done.set()

    async def close(self) -> None:
        """End the link (DISCONNECT if it is up); bounded in time."""
        if self.writer is None:
            return
        try:
            if self.connected:
                await self._send(bytes([DISCONNECT, 0]))
        except (OSError, MqttError):
            pass  # the link is already gone: nothing to say goodbye on
        self.connected = False
        self._fail_pending()
        self.writer.close()  # type: ignore[attr-defined]
        try:
            await asyncio.wait_for(self.writer.wait_closed(), _CLOSE_TIMEOUT_MS / 1000)  # type: ignore[attr-defined]
        except (OSError, AttributeError, asyncio.TimeoutError):  # noqa: UP041 (as above)
            pass  # a broker that does not close its side in time: the socket is closed anyway
