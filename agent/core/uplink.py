"""The portable uplink: one PortableMqttClient kept connected, for boards without paho.

Reconnects with exponential backoff and full jitter (backoff_ms, shared with the paho
uplink), subscribes to the device's command tree and marks it online after each
connect; a last will marks it offline. publish() is the agent's Uplink interface.
Supervised: whatever ends a session (a broken link, a hostile packet, a fault of ours)
ends in a reconnect with backoff, said at a bounded rate; nothing ends the uplink but stop().
"""

import asyncio

from agent.core import limits
from agent.core.compat import collect, const, sleep_ms, ticks_diff, ticks_ms
from agent.core.errors import MqttError
from agent.core.limits import ACK_TIMEOUT_MS, BACKOFF_BASE_MS, BACKOFF_CAP_MS, CONNECT_TIMEOUT_MS
from agent.core.mqtt import PortableMqttClient
from agent.core.ratelimit import ThrottledReport, doubling_ms

_STOP_TIMEOUT_MS = const(5000)  # stop() waits this long for the connection task to end, then says so


def backoff_ms(attempt: int, unit: float) -> int:
    """Full jitter: the wait before reconnect attempt `attempt` (0 = first retry), given
    a uniform random unit in [0, 1). Bounded by BACKOFF_CAP_MS whatever the attempt."""
    return int(unit * doubling_ms(BACKOFF_BASE_MS, attempt, BACKOFF_CAP_MS))


def next_attempt(attempt: int, up_ms: int) -> int:
    """The backoff attempt after a link that was up for up_ms (-1: it never came up). Only
    a link that held for STABLE_LINK_MS starts the backoff again: a broker that accepts
    and at once drops every connection is met with growing waits, not a reconnect storm."""
    if up_ms >= limits.STABLE_LINK_MS:
        return 0
    return attempt + 1


def _default_rand() -> float:
    import random

    return random.random()


class PortableUplink:
    """The agent's uplink over the portable MQTT 3.1.1 client.

    ssl_context: a callable returning the platform's TLS context for each attempt (CA
    pinned, client certificate loaded); host is checked against the broker's
    certificate, so give its name. rand: uniform [0, 1) source for the jitter.
    """

    def __init__(self, host: str, port: int, device_id: str, ssl_context: object, *, root: str = "wichtel",
                 keepalive: int = 30, on_command: object = None, report: object = None,
                 rand: object = None) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.device_id = device_id
        self.ssl_context = ssl_context
        self.tree = "%s/v1/%s/" % (root, device_id)
        self.keepalive = keepalive
        self.on_command = on_command
        self.report = report
        # Link events can be caused by a hostile broker too: said at a bounded rate.
        self._log = ThrottledReport(report, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.rand = rand if rand is not None else _default_rand
        self.client: PortableMqttClient | None = None
        self.connects = 0
        self.failures = 0
        self.attempt = -1  # the backoff attempt of the last wait (-1: none yet)
        self._up_since: object = None  # ticks_ms() when the current link came up
        self.last_error = ""
        self.waits_ms: list = []  # the last few backoff waits, newest last (for status and tests)
        self._task: object = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected())

    async def stop(self) -> None:
        """Say "offline", end the link and the connection task; bounded in time."""
        self._stopping = True
        client = self.client
        if client is not None and client.connected:
            await client.publish(self.tree + "status/availability", b"offline", 1, True, 2.0)
        if client is not None:
            await client.close()  # ends the pump, and with it the session
        task = self._task
        if task is not None:
            task.cancel()  # type: ignore[attr-defined]
            # Not `await task`: a cancellation lost inside asyncio.wait_for (CPython 3.11)
            # would make that wait forever; the loop ends by _stopping in any case.
            for _ in range(_STOP_TIMEOUT_MS // 10):
                if task.done():  # type: ignore[attr-defined]
                    break
                await sleep_ms(10)
            else:
                self._say("uplink: the connection task did not end within %d ms" % _STOP_TIMEOUT_MS)

    def _say(self, text: str) -> None:
        self._log(text)

    async def _session(self) -> None:
        """One connection, from open to the end of the link."""
        client = PortableMqttClient(self.device_id, self.keepalive, self.on_command, self._log)
        self.client = client
        pump = None
        try:
            collect()
            ctx = self.ssl_context()  # type: ignore[operator]
            await asyncio.wait_for(
                client.open(self.host, self.port, ctx, self.tree + "status/availability", b"offline"),
                CONNECT_TIMEOUT_MS / 1000,
            )
            await client.subscribe(self.tree + "cmd/#", 1)
            pump = asyncio.create_task(client.pump())
            if not await client.publish(self.tree + "status/availability", b"online", 1, True, ACK_TIMEOUT_MS / 1000):
                raise MqttError("the broker did not acknowledge the availability message")
            self.connects += 1
            self._up_since = ticks_ms()
            self.last_error = ""
            running, pump = pump, None
            await running  # returns or raises when the link ends
            raise MqttError("the broker closed the connection")
        finally:
            self.client = None
            await client.close()
            if pump is not None:  # the session ended before it waited for the pump
                pump.cancel()
                try:
                    await pump
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - collected: the session's own error says why it ended
                    pass

    async def _keep_connected(self) -> None:
        while not self._stopping:
            self._up_since = None
            try:
                await self._session()
            except Exception as e:  # noqa: BLE001 - the session's supervisor: every end of a link leads to a reconnect
                # Timeouts, OSError (ssl.SSLError on CPython), EOF, MqttError, a refused
                # handshake (ValueError on MicroPython) or a fault of ours: all the same here.
                self.failures += 1
                self.last_error = "%s: %s" % (type(e).__name__, str(e)[:200])
                if not self._stopping:
                    self._say("uplink: link to %s:%d ended (%s)" % (self.host, self.port, self.last_error))
            if self._stopping:
                break
            up_ms = -1 if self._up_since is None else ticks_diff(ticks_ms(), self._up_since)
            self.attempt = next_attempt(self.attempt, up_ms)
            wait = backoff_ms(self.attempt, self.rand())  # type: ignore[operator]
            self.waits_ms.append(wait)
            if len(self.waits_ms) > 8:
                self.waits_ms.pop(0)
            await sleep_ms(wait)

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        """QoS 1; True once the broker acknowledged (under MQTT 3.1.1 also when its ACL
        denied the message: the backend's confirmation tells). MQTT 3.1.1 has no user
        properties: the receiver deduplicates by the body's "id", the outbox's msg_id."""
        client = self.client
        if client is None or not client.connected:
            return False
        return await client.publish(topic, payload, 1, False, ACK_TIMEOUT_MS / 1000)
