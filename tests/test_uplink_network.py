"""A bad network between device and broker: a black hole (the proxy stops forwarding but
keeps the connection open), a 2-second delay, and 30% packet loss. Nothing is lost; a
dead link is found by keepalive and the uplink reconnects. (Keepalive must exceed the
time a connection takes to come up: with 2 s each way a TLS connect takes about 12 s,
so 15 s here.)

Packet loss is made in the proxy, because this kernel has no netem queueing discipline
(`tc qdisc add ... netem` answers "Specified qdisc kind is unknown"): each 1,460-byte
segment is lost with the given chance and arrives only after a retransmission timeout
(200 ms, doubling while it keeps being lost, at most 3.2 s), and the segments behind it
wait, in order, as TCP makes them wait. What the two ends see is what TCP shows an
application on a lossy link: stalls and bursts, never a gap."""

import asyncio
import json
import random
import time

import pytest

from agent import profile_loader
from agent.core.clock import ScaledClock
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.core.uplink import PortableUplink
from agent.uplink_paho import PahoUplink, UplinkConfig, tls_context
from provisioning.local_broker import Service, free_port

SEGMENT = 1460  # bytes per simulated packet (Ethernet MSS)
RTO_S = 0.2  # first retransmission timeout
RTO_MAX_S = 3.2


class Proxy:
    """A loopback TCP proxy that can swallow traffic, delay it, or lose packets."""

    def __init__(self, target_port: int, seed: int = 1) -> None:
        self.target = target_port
        self.port = free_port()
        self.black_hole = False
        self.delay = 0.0
        self.loss = 0.0
        self.lost = 0  # segments lost (and retransmitted) so far
        self.segments = 0
        self.rng = random.Random(seed)
        self.server: asyncio.AbstractServer | None = None
        self.conns: list = []
        self.tasks: list = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        self.conns += [writer, up_w]
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # In order, one segment after another: a lost segment holds back those behind it.
        queue: asyncio.Queue = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, w))
        self.tasks.append(sender)
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                if self.black_hole:
                    continue  # swallowed: the connection stays open, nothing arrives
                for i in range(0, len(data), SEGMENT):
                    queue.put_nowait((time.monotonic(), data[i : i + SEGMENT]))
        finally:
            queue.put_nowait(None)

    async def _send(self, queue: asyncio.Queue, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                sent_at, segment = item
                due = sent_at + self.delay
                rto = RTO_S
                self.segments += 1
                while self.loss and self.rng.random() < self.loss:
                    self.lost += 1
                    due += rto
                    rto = min(2 * rto, RTO_MAX_S)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if w.is_closing():
                    break
                w.write(segment)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.conns:
            w.close()
        for t in self.tasks:
            t.cancel()


KEEPALIVE_S = 4  # short, so that finding the black hole takes seconds, not half a minute


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # paho's socket of a dead link
async def test_black_hole_and_delay_lose_nothing(broker: object) -> None:
    proxy = Proxy(broker.port)  # type: ignore[attr-defined]
    await proxy.start()
    service = Service(broker)  # type: ignore[arg-type]
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    agent_box: list = []  # the service confirms receipts through the device's command topic
    uplink = PahoUplink(UplinkConfig("localhost", proxy.port, "dev-1", broker.ca_path, crt, key, keepalive=KEEPALIVE_S),  # type: ignore[attr-defined]
                        on_command=lambda t, p: agent_box[0].on_command(t, p))  # fmt: skip
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    agent = Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ConsentLedger(prof["data_categories"]))
    agent_box.append(agent)
    uplink.start()
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        await asyncio.wait_for(uplink.connected.wait(), 10)
        for i in range(5):
            agent.rights.set_consent("maintenance", i % 2 == 0, 0)
        await asyncio.sleep(1)
        proxy.black_hole = True
        t0 = time.monotonic()
        for i in range(5, 10):
            agent.rights.set_consent("maintenance", i % 2 == 0, 0)
        # Keepalive finds the dead link within two keepalive periods (a ping after one, its
        # answer missing after the next), plus the housekeeping's 1 s check interval.
        while uplink.connected.is_set() and time.monotonic() - t0 < 10 * KEEPALIVE_S:
            await asyncio.sleep(0.1)
        assert not uplink.connected.is_set()
        assert time.monotonic() - t0 < 3 * KEEPALIVE_S  # two periods and the check, with room for a busy machine
        proxy.black_hole = False
        proxy.delay = KEEPALIVE_S / 8  # each way, every packet: the TLS handshake alone takes several
        for i in range(10, 15):
            agent.rights.set_consent("maintenance", i % 2 == 0, 0)
        t1 = time.monotonic()
        while len(agent.outbox) and time.monotonic() - t1 < 60:
            await asyncio.sleep(0.1)
        task = uplink._task
        assert len(agent.outbox) == 0, (
            task.done() and task.exception(),
            uplink.last_error,
            uplink.connects,
            uplink.failures,
        )
        expected = list(range(1, agent.outbox.next_id))
        ids: list = []
        for _ in range(100):
            ids = sorted({int(m[3]) for m in service.received("/essential") if m[3]})
            if ids == expected:
                break
            await asyncio.sleep(0.1)
        assert ids == expected
    finally:
        deliver.cancel()
        await uplink.stop()
        await proxy.stop()
        service.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["paho", "portable"])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # sockets of dropped links
async def test_thirty_percent_packet_loss_loses_nothing_and_keeps_order(kind: str, broker: object) -> None:
    proxy = Proxy(broker.port, seed=7)  # type: ignore[attr-defined]
    proxy.loss = 0.3
    await proxy.start()
    service = Service(broker)  # type: ignore[arg-type]
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    cfg = UplinkConfig("localhost", proxy.port, "dev-1", broker.ca_path, crt, key, keepalive=20)  # type: ignore[attr-defined]
    agent_box: list = []  # the service confirms receipts through the device's command topic

    def on_command(topic: str, payload: bytes) -> None:
        agent_box[0].on_command(topic, payload)

    if kind == "paho":
        uplink: object = PahoUplink(cfg, on_command=on_command)
    else:
        uplink = PortableUplink("localhost", proxy.port, "dev-1", lambda: tls_context(cfg), keepalive=20,
                                on_command=on_command)  # fmt: skip
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    agent = Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ConsentLedger(prof["data_categories"]))  # type: ignore[arg-type]
    agent_box.append(agent)
    uplink.start()  # type: ignore[attr-defined]
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        for i in range(30):
            agent.rights.set_consent("maintenance", i % 2 == 0, 0)
            await asyncio.sleep(0.05)
        t0 = time.monotonic()
        while len(agent.outbox) and time.monotonic() - t0 < 120:
            await asyncio.sleep(0.1)
        assert len(agent.outbox) == 0, (uplink.connects, uplink.failures, uplink.last_error)  # type: ignore[attr-defined]
        expected = list(range(1, agent.outbox.next_id))
        firsts: list = []
        for _ in range(200):
            firsts = []
            for m in service.received("dev-1/essential"):
                mid = json.loads(m[1])["id"]
                if mid not in firsts:
                    firsts.append(mid)
            if sorted(firsts) == expected:
                break
            await asyncio.sleep(0.1)
        assert sorted(firsts) == expected  # all arrived, at least once
        assert firsts == expected  # and in order
        assert proxy.lost > 0.2 * proxy.segments  # the loss really happened
        connects = uplink.connects  # type: ignore[attr-defined]
        print("%s: %d retransmissions for %d segments, %d connects" % (kind, proxy.lost, proxy.segments, connects))
    finally:
        deliver.cancel()
        await uplink.stop()  # type: ignore[attr-defined]
        await proxy.stop()
        service.close()
