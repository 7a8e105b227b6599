"""Uplink benchmark: the full path gate -> outbox (files, fsync batching) -> paho -> Mosquitto
(TLS, loopback) -> a subscriber.

Reports messages per second, latency from event to subscriber (p50/p99 at 100 msg/s),
time from a broker restart to the first delivered message, and MQTT bytes per message.
The same for the portable client (agent/core/mqtt.py) on CPython: messages go straight
from it to the broker (16 in flight), without the agent around it; its reconnect time
is from the broker's start to a successful connect and delivery, retrying every 100 ms.

usage: python bench/uplink.py [--messages N] [--json out.json]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from agent.core.clock import ScaledClock  # noqa: E402
from agent.core.consent import ConsentLedger  # noqa: E402
from agent.core.events import ANOMALY, Event  # noqa: E402
from agent.core.outbox import Outbox  # noqa: E402
from agent.core.pipeline import Agent  # noqa: E402
from agent.outbox_files import FileStore  # noqa: E402
from agent.uplink_paho import PahoUplink, UplinkConfig  # noqa: E402
from bench import report  # noqa: E402
from provisioning import local_broker  # noqa: E402


class _Flat:
    def read(self, t_ms: int) -> float:
        return 1.0


def _agent(broker: local_broker.Broker, tmp: str) -> tuple:
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    for cat in prof["data_categories"]:
        cat["daily_budget_bytes"] = 1_000_000  # the benchmark measures the path, not the budget
    crt, key = broker.certs["dev-1"]
    uplink = PahoUplink(UplinkConfig("localhost", broker.port, "dev-1", broker.ca_path, crt, key))
    ledger = ConsentLedger(prof["data_categories"], "dev-1")
    ledger.set("maintenance", True, 0)
    drivers = {ch["id"]: _Flat() for ch in prof["channels"]}
    outbox = Outbox(100_000, FileStore(os.path.join(tmp, "outbox")))
    return Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ledger, outbox=outbox), uplink


def _event(i: int) -> Event:
    fields = {"detector": "anomaly", "value": 0.5 + i % 7, "baseline": 0.45, "score": 0.9}
    return Event(ANOMALY, "maintenance", "motor_current", i, "drain", fields)


async def _run(broker: local_broker.Broker, service: local_broker.Service, tmp: str, n: int) -> dict:
    agent, uplink = _agent(broker, tmp)
    uplink.start()
    await asyncio.wait_for(uplink.connected.wait(), 10)
    deliver = asyncio.ensure_future(agent.deliver())
    out: dict = {}
    try:
        # Throughput: n events as fast as they come, one fsync per batch of 100.
        t0 = time.perf_counter()
        for i in range(n):
            agent.judge(_event(i))
            if i % 100 == 99:
                agent.sync()
                await asyncio.sleep(0)
        agent.sync()
        while agent.waiting_messages():
            await asyncio.sleep(0.001)
        got = await asyncio.to_thread(service.wait_for, n, 60, "/maintenance")
        out["msgs_per_s"] = len(got) / (time.perf_counter() - t0)
        sizes = [2 + 2 + len(t) + len(p) + 12 for t, p, _, _ in got]  # + MQTT 5 properties (id, expiry)
        out["bytes_per_message"] = statistics.mean(sizes)
        # Latency at 100 msg/s: event made -> subscriber has it.
        sent_at: dict = {}
        base = len(service.received("/maintenance"))
        first = len(service.messages)
        for i in range(300):
            ev = _event(10_000_000 + i)
            ev.fields["value"] = float(i)
            sent_at[float(i)] = time.perf_counter()
            agent.judge(ev)
            agent.sync()
            await asyncio.sleep(0.01)
        await asyncio.to_thread(service.wait_for, base + 300, 30, "/maintenance")
        lat = []
        with service.lock:
            arrivals = list(zip(service.messages[first:], service.times[first:], strict=True))
        for (topic, payload, _, _), t_recv in arrivals:
            if topic.endswith("/maintenance"):
                v = json.loads(payload)["data"]["value"]
                if v in sent_at:
                    lat.append((t_recv - sent_at.pop(v)) * 1000)
        lat.sort()
        out["p50_ms_at_100_per_s"] = lat[len(lat) // 2]
        out["p99_ms_at_100_per_s"] = lat[int(len(lat) * 0.99) - 1]
        # Reconnect: the broker restarts; how long from its start to the first delivery.
        broker.stop()
        await asyncio.sleep(0.5)
        agent.judge(_event(20_000_000))
        agent.sync()
        before = len(service.received("/maintenance"))
        t_start = time.perf_counter()
        await asyncio.to_thread(broker.start)
        while len(service.received("/maintenance")) <= before and time.perf_counter() - t_start < 60:
            await asyncio.sleep(0.01)
        out["reconnect_s"] = time.perf_counter() - t_start
    finally:
        deliver.cancel()
        await uplink.stop()
        agent.sync()
    return out


async def _portable(broker: local_broker.Broker, service: local_broker.Service, n: int) -> dict:
    import ssl

    from agent.core.mqtt import PortableMqttClient

    crt, key = broker.certs["dev-1"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(broker.ca_path)
    ctx.load_cert_chain(crt, key)
    out: dict = {}

    async def connect() -> tuple:
        client = PortableMqttClient("dev-1", keepalive=30)
        await client.open("localhost", broker.port, ctx)
        return client, asyncio.ensure_future(client.pump())

    client, pump = await connect()
    try:
        topic = "wichtel/v1/dev-1/usage_statistics"
        base = len(service.received(topic))
        t0 = time.perf_counter()
        for start in range(0, n, 16):
            oks = await asyncio.gather(
                *[client.publish(topic, b'{"i":%d}' % i) for i in range(start, min(n, start + 16))]
            )
            assert all(oks)
        # Acknowledged by the broker (the subscriber's own pace is not the client's).
        out["msgs_per_s"] = n / (time.perf_counter() - t0)
        await asyncio.to_thread(service.wait_for, base + n, 60, topic)
        first = len(service.messages)
        sent_at = {}
        for i in range(300):
            sent_at[i] = time.perf_counter()
            await client.publish(topic, b'{"lat":%d}' % i)
            await asyncio.sleep(0.01)
        await asyncio.to_thread(service.wait_for, base + n + 300, 30, topic)
        with service.lock:
            arrivals = list(zip(service.messages[first:], service.times[first:], strict=True))
        lat = sorted((t - sent_at[json.loads(p)["lat"]]) * 1000 for (tp, p, _, _), t in arrivals if b'"lat"' in p)
        out["p99_ms_at_100_per_s"] = lat[int(len(lat) * 0.99) - 1]
    finally:
        await client.close()
        pump.cancel()
    broker.stop()
    t_start = time.perf_counter()
    await asyncio.to_thread(broker.start)
    while True:
        try:
            client, pump = await connect()
            if await client.publish("wichtel/v1/dev-1/essential", b"{}"):
                break
        except OSError:
            await asyncio.sleep(0.1)
    out["reconnect_s"] = time.perf_counter() - t_start
    await client.close()
    pump.cancel()
    return out


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Messages per second, latency and reconnect through Mosquitto.")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    if not local_broker.available():
        print("mosquitto is not installed; run `make test` or `apt-get install mosquitto`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        broker = local_broker.Broker(tmp)
        broker.start()
        service = local_broker.Service(broker)
        try:
            result = asyncio.run(_run(broker, service, tmp, args.messages))
            portable = asyncio.run(_portable(broker, service, args.messages))
            for key, value in portable.items():
                result["portable_" + key] = value
        finally:
            service.close()
            broker.stop()
    print("paho uplink, TLS on loopback, %d messages:" % args.messages)
    print("  %.0f msg/s; p50 %.1f ms and p99 %.1f ms at 100 msg/s; reconnect %.2f s after the broker is back;"
          " %.0f MQTT bytes per message" % (result["msgs_per_s"], result["p50_ms_at_100_per_s"],
                                             result["p99_ms_at_100_per_s"], result["reconnect_s"],
                                             result["bytes_per_message"]))  # fmt: skip
    figures = (result["portable_msgs_per_s"], result["portable_p99_ms_at_100_per_s"], result["portable_reconnect_s"])
    print("portable client on CPython: %.0f msg/s; p99 %.1f ms at 100 msg/s; reconnect %.2f s" % figures)
    report.emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
