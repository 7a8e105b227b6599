"""The portable MQTT client (agent/core/mqtt.py) on CPython against the real Mosquitto."""

import asyncio
import ssl

import pytest

from agent.core import limits, mqtt
from provisioning.local_broker import Service


def _ctx(broker: object, name: str = "dev-1") -> ssl.SSLContext:
    crt, key = broker.certs[name]  # type: ignore[attr-defined]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(broker.ca_path)  # type: ignore[attr-defined]
    ctx.load_cert_chain(crt, key)
    return ctx


@pytest.mark.asyncio
async def test_portable_client_publishes_and_receives_commands(broker: object) -> None:
    service = Service(broker)  # type: ignore[arg-type]
    got: list = []
    client = mqtt.PortableMqttClient("dev-1", keepalive=10, on_message=lambda t, p: got.append((t, p)))
    await client.open("localhost", broker.port, _ctx(broker), "wichtel/v1/dev-1/status/availability", b"offline")  # type: ignore[attr-defined]
    pump = asyncio.ensure_future(client.pump())
    try:
        await client.subscribe("wichtel/v1/dev-1/cmd/#")
        for i in range(20):
            assert await client.publish("wichtel/v1/dev-1/maintenance", b'{"n":%d}' % i)
        arrived = await asyncio.to_thread(service.wait_for, 20, 10, "dev-1/maintenance")
        assert [p for _, p, _, _ in arrived] == [b'{"n":%d}' % i for i in range(20)]
        # Into another device's tree: the broker takes it (MQTT 3.1.1 has no refusal) and drops it.
        assert await client.publish("wichtel/v1/dev-2/maintenance", b"forged")
        await asyncio.to_thread(service.send, "wichtel/v1/dev-1/cmd/status_report", b"{}")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got == [("wichtel/v1/dev-1/cmd/status_report", b"{}")]
        assert not service.received("dev-2/")
    finally:
        await client.close()
        pump.cancel()
        service.close()


@pytest.mark.asyncio
async def test_portable_client_refuses_a_wrong_ca(broker: object) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(broker.other_ca_path)  # type: ignore[attr-defined]
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    ctx.load_cert_chain(crt, key)
    client = mqtt.PortableMqttClient("dev-1")
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.open("localhost", broker.port, ctx)  # type: ignore[attr-defined]


class _Writer:
    """The writing half of a link, in memory: what the client sent, packet by packet."""

    def __init__(self, drain_forever: bool = False) -> None:
        self.sent: list = []
        self.drain_forever = drain_forever
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    async def drain(self) -> None:
        if self.drain_forever:
            await asyncio.sleep(3600)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


def _client(keepalive: int = 10, on_message: object = None, report: object = None) -> tuple:
    client = mqtt.PortableMqttClient("dev-1", keepalive, on_message, report)
    reader = asyncio.StreamReader()
    client.reader, client.writer = reader, _Writer()
    client.connected = True
    return client, reader


@pytest.mark.asyncio
async def test_cancelling_the_pump_as_a_packet_arrives_ends_it() -> None:
    # The hang found in the broker-restart test: the pump read inside asyncio.wait_for, and
    # on CPython 3.11 a cancellation that meets a packet arriving in the same turn of the
    # loop is lost there; the pump read on and the uplink's stop() waited for it forever.
    client, reader = _client()
    pump = asyncio.ensure_future(client.pump())
    await asyncio.sleep(0.05)  # the pump waits for a packet
    reader.feed_data(bytes([mqtt.PINGRESP, 0]))
    pump.cancel()
    done, _ = await asyncio.wait({pump}, timeout=2)
    assert pump in done, "the pump went on after it was cancelled"
    assert not client.connected


@pytest.mark.asyncio
async def test_a_packet_split_across_a_keepalive_tick_is_read_whole() -> None:
    # A read that a keepalive timer cancels half-way through a packet leaves the stream in
    # the middle of it: every later packet is misread, acknowledgements are lost, and pings
    # keep the link looking alive. The reader is never cancelled by a timer.
    client, reader = _client(keepalive=2)
    pump = asyncio.ensure_future(client.pump())
    try:
        publish = asyncio.ensure_future(client.publish("wichtel/v1/dev-1/essential", b"{}", 1, False, 5.0))
        await asyncio.sleep(0.1)
        reader.feed_data(bytes([mqtt.PUBACK]))  # the first byte, then nothing past a keepalive tick (1 s)
        await asyncio.sleep(1.3)
        assert bytes([mqtt.PINGREQ, 0]) in client.writer.sent  # the tick went by and pinged
        reader.feed_data(bytes([2, 0, 1]))
        assert await asyncio.wait_for(publish, 3) is True
        assert client.connected
    finally:
        await client.close()
        await asyncio.wait({pump}, timeout=2)


@pytest.mark.asyncio
async def test_a_silent_broker_ends_the_link_after_the_keepalive() -> None:
    client, _ = _client(keepalive=1)
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(mqtt.MqttError, match="nothing from the broker"):
        await asyncio.wait_for(client.pump(), 5)
    assert asyncio.get_running_loop().time() - t0 < 2.5
    assert bytes([mqtt.PINGREQ, 0]) in client.writer.sent


@pytest.mark.asyncio
async def test_a_failing_handler_is_contained_and_the_link_goes_on() -> None:
    lines: list = []

    def handler(topic: str, payload: bytes) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    client, reader = _client(on_message=handler, report=lines.append)
    pump = asyncio.ensure_future(client.pump())
    try:
        for i in range(200):
            reader.feed_data(mqtt.publish_packet("wichtel/v1/dev-1/cmd/status_report", b"[" * 1020, 1, i + 1))
        publish = asyncio.ensure_future(client.publish("wichtel/v1/dev-1/essential", b"{}", 1, False, 5.0))
        await asyncio.sleep(0.05)
        reader.feed_data(mqtt.puback_packet(next(iter(client._acks))))
        assert await asyncio.wait_for(publish, 3) is True
        assert client.handler_faults == 200 and client.connected
        assert mqtt.puback_packet(200) in client.writer.sent  # each message was acknowledged
        assert len(lines) <= limits.LOG_BURST + 1 and "RecursionError" in lines[0]
    finally:
        await client.close()
        await asyncio.wait({pump}, timeout=2)


@pytest.mark.asyncio
async def test_a_link_that_takes_no_data_fails_the_publish_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "SEND_TIMEOUT_MS", 200)
    client, _ = _client()
    client.writer = _Writer(drain_forever=True)
    assert await asyncio.wait_for(client.publish("wichtel/v1/dev-1/essential", b"{}", 1, False, 60.0), 2) is False
