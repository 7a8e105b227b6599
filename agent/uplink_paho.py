"""The uplink on the Pi: paho-mqtt 2 over mutual TLS, driven from the agent's asyncio loop.

paho's socket is watched with the event loop's reader and writer callbacks (no thread),
its housekeeping runs once a second. TLS 1.2 or newer with the device certificate, the
broker CA pinned and the host name checked; no plaintext, ever. Connects with
exponential backoff and full jitter; a last will marks the device offline. publish()
resolves when the broker acknowledged (QoS 1); a refusal (MQTT 5 reason code >= 0x80),
a lost link or a timeout returns False, so the message stays in the outbox.

Inbound is bounded and supervised: MQTT 5 tells the broker the largest packet the device
takes (Maximum Packet Size), and the client itself refuses a larger one, under MQTT 3.1.1
too, before paho reads its body; every callback from paho is contained, and what a
peer can make the uplink say goes through a rate limit.
"""

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.core import limits
from agent.core.errors import MqttError
from agent.core.limits import ACK_TIMEOUT_MS, CONNECT_TIMEOUT_MS
from agent.core.ratelimit import ThrottledReport
from agent.core.uplink import backoff_ms, next_attempt

ACK_TIMEOUT_S = ACK_TIMEOUT_MS / 1000
CONNECT_TIMEOUT_S = CONNECT_TIMEOUT_MS / 1000
STOP_TIMEOUT_S = 2.0  # how long stop() waits for its tasks to end (each cancelled again every STOP_RECANCEL_S)
STOP_RECANCEL_S = 0.1


class UplinkConfig:
    def __init__(self, host: str, port: int, device_id: str, ca: str, cert: str, key: str, *,
                 root: str = "wichtel", keepalive: int = 30, mqtt5: bool = True) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.device_id = device_id
        self.ca = ca
        self.cert = cert
        self.key = key
        self.root = root
        self.keepalive = keepalive
        self.mqtt5 = mqtt5

    @property
    def tree(self) -> str:
        return "%s/v1/%s/" % (self.root, self.device_id)


def tls_context(cfg: UplinkConfig) -> ssl.SSLContext:
    """TLS 1.2+, the broker's CA only (not the system store), host name checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=cfg.ca)
    ctx.load_cert_chain(cfg.cert, cfg.key)
    return ctx


class BoundedClient(mqtt.Client):
    """paho's client with the inbound bounds it lacks: a packet's remaining length is
    checked as soon as paho has decoded it, before paho reads (and allocates) the body;
    a PUBLISH with QoS 2 or 3 is refused (the device subscribes with QoS 1; paho would
    keep QoS 2 messages until their release, without bound); a packet must arrive whole
    within the keepalive period (paho counts every byte as life, so a broker dripping one
    packet byte by byte would hold every acknowledgement behind it). A refusal ends the
    link the way a broken socket does; `refusal` says why."""

    refusal = ""
    _packet_started = 0.0

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = self._in_packet
        command = packet["command"]
        now = time.monotonic()
        if command == 0:
            self._packet_started = now  # the next byte starts a packet
        elif now - self._packet_started > max(self._keepalive, 1):
            self.refusal = "an inbound packet took more than %d s to arrive" % max(self._keepalive, 1)
            raise OSError(self.refusal)
        qos = (command >> 1) & 3
        if command & 0xF0 == 0x30 and qos > 1:
            self.refusal = "inbound PUBLISH with QoS %d; the device subscribes with QoS 1 at most" % qos
            raise OSError(self.refusal)
        if packet["have_remaining"] and packet["remaining_length"] > limits.MAX_INBOUND_PACKET:
            self.refusal = "inbound packet of %d bytes; at most %d" % (
                packet["remaining_length"],
                limits.MAX_INBOUND_PACKET,
            )
            raise OSError(self.refusal)
        return super()._sock_recv(bufsize)


class PahoUplink:
    """The agent's uplink (interfaces.Uplink) over paho-mqtt."""

    def __init__(
        self,
        cfg: UplinkConfig,
        on_command: Callable[[str, bytes], None] | None = None,
        report: Callable[[str], None] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.cfg = cfg
        self.on_command = on_command
        # Link events and inbound faults can be caused by a hostile peer: said at a bounded rate.
        self.report = ThrottledReport(report, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self._inbound_log = ThrottledReport(report, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.handler_faults = 0  # inbound messages whose handler raised (contained)
        self.read_faults = 0  # exceptions out of paho's reading or housekeeping (the link was dropped)
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._acks: dict = {}
        self._loop = asyncio.get_running_loop()
        self._rand = rand or random.Random().random  # uniform [0, 1) for the reconnect jitter
        self.connects = 0
        self.failures = 0
        self.last_error = ""
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._misc: asyncio.Task | None = None
        self.client = self._make_client()

    def _make_client(self) -> BoundedClient:
        proto = mqtt.MQTTv5 if self.cfg.mqtt5 else mqtt.MQTTv311
        c = BoundedClient(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.device_id, protocol=proto)
        c.tls_set_context(tls_context(self.cfg))
        c.will_set(self.cfg.tree + "status/availability", b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        # paho may call these from the connecting thread: hand them to the loop.
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._keep_connected())
        self._misc = asyncio.ensure_future(self._housekeeping())

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, self._misc):
            if task is not None:
                await self._end(task)
        if self.connected.is_set():
            info = self.client.publish(self.cfg.tree + "status/availability", b"offline", qos=1, retain=True)
            self._write()
            await asyncio.sleep(0)
            del info
        self.client.disconnect()
        self._fail_pending()

    async def _end(self, task: asyncio.Task) -> None:
        """Cancel a task and wait for it, bounded. Not `await task`: CPython 3.11's wait_for
        loses a cancellation that meets a connect attempt just finished (the task then goes
        on, and `await task` waited forever: seen once as a hung test under load), so the
        task is cancelled again until it ends, for at most STOP_TIMEOUT_S."""
        deadline = self._loop.time() + STOP_TIMEOUT_S
        while not task.done() and self._loop.time() < deadline:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RECANCEL_S)
        if not task.done():
            self.report("uplink: a task did not end within %.0f s of stopping" % STOP_TIMEOUT_S)
        elif not task.cancelled():
            task.exception()  # retrieved: a task that ended on its own has said what happened

    async def _keep_connected(self) -> None:
        attempt = -1
        while True:
            up_since = -1.0
            try:
                self.last_error = ""
                await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT_S)
                await self._first(self.connected, self._lost, CONNECT_TIMEOUT_S)
                if not self.connected.is_set():
                    # With TLS 1.3 a refused client certificate shows only after the handshake.
                    raise MqttError(self.last_error or "the broker closed the connection")
                up_since = self._loop.time()
                await self._lost.wait()
            except Exception as e:  # noqa: BLE001 - the connection's supervisor: every failure leads to a retry
                # Mostly TimeoutError, OSError (ssl.SSLError, ConnectionError), MqttError; anything else
                # from paho or a callback is said the same way instead of ending the uplink.
                self.failures += 1
                self.last_error = "%s: %s" % (type(e).__name__, e)
                self.report("uplink: cannot connect to %s:%d (%s)" % (self.cfg.host, self.cfg.port, self.last_error))
            self._lost.clear()
            self.connected.clear()
            self._fail_pending()
            up_ms = -1 if up_since < 0 else int((self._loop.time() - up_since) * 1000)
            attempt = next_attempt(attempt, up_ms)
            await asyncio.sleep(backoff_ms(attempt, self._rand()) / 1000)

    @staticmethod
    async def _first(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
        waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _connect(self) -> None:
        self._lost.clear()
        # A fresh paho client per attempt: no state (ping timers, packet ids) from a dead link.
        old = self.client
        self.client = self._make_client()
        old.on_socket_close = None
        old.on_disconnect = None
        sock = old.socket()
        if sock is not None:  # a link paho did not close itself (a failed handshake, a timeout)
            self._watch("remove_reader", sock)
            self._watch("remove_writer", sock)
            try:
                sock.close()
            except OSError:
                pass
        # The TCP connect and TLS handshake block: they run beside the loop, not in it.
        await self._loop.run_in_executor(None, self._blocking_connect)

    def _blocking_connect(self) -> None:
        props = None
        if self.cfg.mqtt5:
            # The broker sends nothing larger (it drops such a message for this client).
            props = Properties(PacketTypes.CONNECT)
            props.MaximumPacketSize = limits.MAX_INBOUND_PACKET
        self.client.connect(self.cfg.host, self.cfg.port, self.cfg.keepalive, properties=props)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1)
            try:
                rc = self.client.loop_misc()  # keepalive pings; finds a dead link
            except Exception as e:  # noqa: BLE001 - supervised like every path into paho
                self._drop_link("housekeeping", e)
                continue
            if rc != mqtt.MQTT_ERR_SUCCESS and self.connected.is_set():
                self._mark_lost("keepalive: " + mqtt.error_string(rc))

    # -- paho callbacks (all on the loop's thread) -------------------------------------------
    def _watch(self, how: str, sock: object, *callback: object) -> None:
        """Add or remove a reader or writer; a socket closed meanwhile is simply ignored."""
        try:
            getattr(self._loop, how)(sock, *callback)
        except (ValueError, OSError):
            pass

    def _on_register_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        self._loop.call_soon_threadsafe(self._watch, "add_writer", sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        self._loop.call_soon_threadsafe(self._watch, "remove_writer", sock)

    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        try:
            # Several messages in flight: without this, Nagle holds small packets back.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self._loop.call_soon_threadsafe(self._watch, "add_reader", sock, self._read)

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        self._watch("remove_reader", sock)
        self._watch("remove_writer", sock)

    def _read(self) -> None:
        try:
            rc = self.client.loop_read()
        except Exception as e:  # noqa: BLE001 - the read path's supervisor (see _drop_link)
            self._drop_link("read", e)
            return
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._mark_lost("read: " + (self.client.refusal or mqtt.error_string(rc)))

    def _write(self) -> None:
        try:
            rc = self.client.loop_write()
        except Exception as e:  # noqa: BLE001 - supervised like the read path
            self._drop_link("write", e)
            return
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._mark_lost("write: " + mqtt.error_string(rc))

    def _drop_link(self, where: str, error: Exception) -> None:
        """An exception out of paho: its state within the current packet is unknown (it
        would read the rest of the stream from the wrong place, failing on every read
        while pings keep the link looking alive). The link is closed at once, the fault
        said at a bounded rate, and the next attempt starts with a fresh client."""
        self.read_faults += 1
        sock = self.client.socket()
        if sock is not None:
            self._watch("remove_reader", sock)
            self._watch("remove_writer", sock)
            try:
                sock.close()
            except OSError:
                pass  # already closed: that is the goal
        self._inbound_log("uplink: %s failed (%s: %s); the link is dropped and made again"
                          % (where, type(error).__name__, str(error)[:120]))  # fmt: skip
        self._mark_lost("%s failed" % where)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = "broker refused: %s" % reason
            self.report("uplink: " + self.last_error)
            self._mark_lost(self.last_error)
            return
        self.connects += 1
        client.subscribe(self.cfg.tree + "cmd/#", qos=1)
        client.publish(self.cfg.tree + "status/availability", b"online", qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._mark_lost(getattr(client, "refusal", "") or "disconnected: %s" % reason)

    def _mark_lost(self, why: str) -> None:
        if self.connected.is_set() and not self._stopping:
            self.report("uplink: link lost (%s)" % why)
        elif not self.last_error:
            self.last_error = why
        self.connected.clear()
        self._lost.set()
        self._fail_pending()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        fut = self._acks.pop(mid, None)
        if fut is None or fut.done():
            return
        failed = getattr(reason, "is_failure", False)
        if failed:
            self.report("uplink: broker refused message %d: %s" % (mid, reason))
        fut.set_result(not failed)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        """A message on the command tree, handed on under supervision: whatever the handler
        (or paho's decoding of the topic) raises is contained, counted and said at a bounded
        rate, and the link goes on. Raised into paho, it would leave paho's read state in
        the middle of the packet, and every later read would fail."""
        if self.on_command is None:
            return
        try:
            self.on_command(msg.topic, bytes(msg.payload))
        except Exception as e:  # noqa: BLE001 - the supervisor of the inbound path
            self.handler_faults += 1
            self._inbound_log("uplink: the command handler failed (%s: %s); the link goes on"
                              % (type(e).__name__, str(e)[:120]))  # fmt: skip

    def _fail_pending(self) -> None:
        for fut in self._acks.values():
            if not fut.done():
                fut.set_result(False)
        self._acks.clear()

    # -- the agent's interface ---------------------------------------------------------------
    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        """Send with QoS 1; True once the broker acknowledged. msg_id (the outbox's id,
        increasing across restarts) travels as the MQTT 5 user property "id" so the
        receiver can drop duplicates."""
        if not self.connected.is_set():
            return False
        props = None
        if self.cfg.mqtt5:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = 7 * 86400
            if msg_id:
                props.UserProperty = ("id", str(msg_id))
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.report("uplink: publish failed: %s" % mqtt.error_string(info.rc))
            return False
        fut = self._loop.create_future()
        self._acks[info.mid] = fut
        self._write()
        try:
            return bool(await asyncio.wait_for(fut, ACK_TIMEOUT_S))
        except TimeoutError:
            self._acks.pop(info.mid, None)
            self.report("uplink: no acknowledgement for message %d within %d s" % (info.mid, ACK_TIMEOUT_S))
            return False
