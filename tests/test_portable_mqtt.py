"""The portable MQTT client (agent/core/mqtt.py) on CPython against the real Mosquitto."""

import asyncio
import ssl

import pytest

from agent.core import mqtt
from agent.local_broker import Service


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
