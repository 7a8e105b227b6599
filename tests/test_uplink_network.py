"""A bad network between device and broker: a black hole (the proxy stops forwarding but
keeps the connection open) and a 2-second delay. Nothing is lost; a dead link is found
by keepalive and the uplink reconnects. (Keepalive must exceed the time a connection
takes to come up: with 2 s each way a TLS connect takes about 12 s, so 15 s here.)"""

import asyncio
import time

import pytest

from agent import profile_loader
from agent.core.clock import ScaledClock
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.local_broker import Service, free_port
from agent.uplink_paho import PahoUplink, UplinkConfig


class Proxy:
    """A loopback TCP proxy that can swallow traffic or delay it."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.black_hole = False
        self.delay = 0.0
        self.server: asyncio.AbstractServer | None = None
        self.conns: list = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        self.conns += [writer, up_w]
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                if self.black_hole:
                    continue  # swallowed: the connection stays open, nothing arrives
                if self.delay:
                    # Latency, not a bottleneck: every chunk arrives `delay` later, in order.
                    loop.call_later(self.delay, self._forward, w, data)
                else:
                    w.write(data)
                    await w.drain()
        finally:
            loop.call_later(self.delay, w.close)

    @staticmethod
    def _forward(w: asyncio.StreamWriter, data: bytes) -> None:
        if not w.is_closing():
            w.write(data)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.conns:
            w.close()


@pytest.mark.asyncio
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # paho's socket of a dead link
async def test_black_hole_and_delay_lose_nothing(broker: object) -> None:
    proxy = Proxy(broker.port)  # type: ignore[attr-defined]
    await proxy.start()
    service = Service(broker)  # type: ignore[arg-type]
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    uplink = PahoUplink(UplinkConfig("localhost", proxy.port, "dev-1", broker.ca_path, crt, key, keepalive=15))  # type: ignore[attr-defined]
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    agent = Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ConsentLedger(prof["data_categories"]))
    uplink.start()
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        await asyncio.wait_for(uplink.connected.wait(), 10)
        for i in range(5):
            agent.set_consent("maintenance", i % 2 == 0, 0)
        await asyncio.sleep(1)
        proxy.black_hole = True
        t0 = time.monotonic()
        for i in range(5, 10):
            agent.set_consent("maintenance", i % 2 == 0, 0)
        # Keepalive finds the dead link within about two keepalive periods.
        while uplink.connected.is_set() and time.monotonic() - t0 < 40:
            await asyncio.sleep(0.1)
        assert not uplink.connected.is_set()
        assert time.monotonic() - t0 < 30  # 1.5 keepalive periods, plus a check interval
        proxy.black_hole = False
        proxy.delay = 2.0
        for i in range(10, 15):
            agent.set_consent("maintenance", i % 2 == 0, 0)
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
