"""A hostile MQTT broker on loopback for tests: TLS with its own small PKI, enough MQTT 3.1.1
and 5 to let a device connect, subscribe and publish, and a script of attacks per connection.

It speaks the protocol as far as a device needs and then sends what no real broker would:
oversized packets, QoS 2, garbage, slow drips, and commands no backend should send.
"""

import asyncio
import ssl
import struct

from agent.core import mqtt
from provisioning import pki


def _varint(n: int) -> bytes:
    return mqtt._remaining(n)


def _read_varint(body: bytes, pos: int) -> tuple:
    mult, value = 1, 0
    while True:
        b = body[pos]
        pos += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, pos
        mult *= 128


class Connection:
    """One device connection as the hostile broker sees it."""

    def __init__(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self.reader = reader
        self.writer = writer
        self.version = 4
        self.max_packet_property: int | None = None  # MQTT 5 CONNECT Maximum Packet Size
        self.subscribed = asyncio.Event()
        self.acked: set = set()  # packet ids of the broker's QoS 1 messages the device acknowledged

    def publish(self, topic: str, payload: bytes, qos: int = 1, pid: int = 1, first: int | None = None) -> bytes:
        """A PUBLISH packet in this connection's protocol version."""
        body = struct.pack("!H", len(topic.encode())) + topic.encode()
        if qos:
            body += struct.pack("!H", pid)
        if self.version == 5:
            body += b"\x00"  # no properties
        body += payload
        head = first if first is not None else mqtt.PUBLISH | (qos << 1)
        return bytes([head]) + _varint(len(body)) + body

    async def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise ConnectionResetError("the device closed the link")
        self.writer.write(data)
        await self.writer.drain()


class HostileBroker:
    """attack(connection) is awaited once the device subscribed on a connection; whatever it
    sends, the broker otherwise answers CONNECT, SUBSCRIBE, PUBLISH (QoS 1) and PINGREQ,
    keeps what the device published in `received` as (connection number, topic, payload)
    and notes the device's acknowledgements."""

    def __init__(self, directory: str, attack: object) -> None:
        self.attack = attack
        self.received: list = []
        self.connections: list = []
        self.errors: list = []  # what went wrong on the broker's side (for failing tests)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        ca = pki.make_ca("Hostile Test CA")
        self.ca_path, _ = ca.write(directory, "hostile-ca")
        self.cert = pki.issue(ca, "localhost", server_names=["localhost", "127.0.0.1"]).write(directory, "hostile")
        self.device_cert = pki.issue(ca, "dev-1", client=True).write(directory, "dev-1")
        self._tasks: set = set()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.cert)
        ctx.load_verify_locations(self.ca_path)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def device_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca_path)
        ctx.load_cert_chain(*self.device_cert)
        return ctx

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.server_context())
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in self.connections:
            conn.writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.server is not None:
            await asyncio.wait_for(self.server.wait_closed(), 5)

    def published(self, topic_part: str = "") -> list:
        return [(n, t, p) for n, t, p in self.received if topic_part in t]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(len(self.connections) + 1, reader, writer)
        self.connections.append(conn)
        attacker = None
        try:
            while True:
                first, body = await mqtt.read_packet(reader, 1 << 20)
                kind = first & 0xF0
                if kind == mqtt.CONNECT:
                    conn.version = body[6]
                    if conn.version == 5:
                        self._connect_properties(conn, body)
                        await conn.send(b"\x20\x03\x00\x00\x00")
                    else:
                        await conn.send(b"\x20\x02\x00\x00")
                elif kind == 0x80:  # SUBSCRIBE
                    pid = body[:2]
                    granted = b"\x00\x01" if conn.version == 5 else b"\x01"
                    await conn.send(bytes([mqtt.SUBACK]) + _varint(2 + len(granted)) + pid + granted)
                    conn.subscribed.set()
                    attacker = asyncio.ensure_future(self._attack(conn))
                    self._tasks.add(attacker)
                elif kind == mqtt.PUBLISH:
                    self._take_publish(conn, first, body)
                elif kind == mqtt.PUBACK:
                    conn.acked.add(struct.unpack("!H", body[:2])[0])
                elif kind == mqtt.PINGREQ:
                    await conn.send(bytes([mqtt.PINGRESP, 0]))
                elif kind == mqtt.DISCONNECT:
                    break
        except (mqtt.MqttError, OSError, asyncio.IncompleteReadError):
            pass  # the device ended the link (often: because of the attack)
        finally:
            writer.close()

    async def _attack(self, conn: Connection) -> None:
        try:
            await self.attack(conn)  # type: ignore[operator]
        except (OSError, asyncio.IncompleteReadError):
            pass  # the device closed the link on the attack: expected
        except Exception as e:  # noqa: BLE001 - a fault of the test's own broker must fail the test, not vanish
            self.errors.append("%s: %s" % (type(e).__name__, e))

    @staticmethod
    def _connect_properties(conn: Connection, body: bytes) -> None:
        pos = 10  # protocol name (6), level (1), flags (1), keepalive (2)
        length, pos = _read_varint(body, pos)
        end = pos + length
        while pos < end:
            ident = body[pos]
            pos += 1
            if ident == 0x27:  # Maximum Packet Size
                conn.max_packet_property = struct.unpack("!I", body[pos : pos + 4])[0]
                pos += 4
            elif ident == 0x11:  # Session Expiry Interval
                pos += 4
            elif ident in (0x21, 0x22):
                pos += 2
            elif ident in (0x17, 0x19):
                pos += 1
            else:
                return  # a property this broker does not read: stop looking

    def _take_publish(self, conn: Connection, first: int, body: bytes) -> None:
        n = struct.unpack("!H", body[:2])[0]
        topic = body[2 : 2 + n].decode()
        pos = 2 + n
        qos = (first >> 1) & 3
        pid = b""
        if qos:
            pid = body[pos : pos + 2]
            pos += 2
        if conn.version == 5:
            length, pos = _read_varint(body, pos)
            pos += length
        self.received.append((conn.number, topic, bytes(body[pos:])))
        if qos:
            conn.writer.write(bytes([mqtt.PUBACK, 2]) + pid)


def certificate_paths(broker: HostileBroker) -> tuple:
    """(ca, cert, key) for a device of this broker."""
    return broker.ca_path, broker.device_cert[0], broker.device_cert[1]
