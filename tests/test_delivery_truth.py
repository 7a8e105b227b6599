"""Delivery truth through a real Mosquitto: the sent log never claims what the backend did
not receive. Under MQTT 3.1.1 the broker acknowledges a publish its ACL denied, so consent
receipts and erasure requests stay in the outbox until the backend confirms their ids;
under MQTT 5 a refusal is retried after growing waits, not in a tight loop."""

import asyncio
import itertools
import json
import time

import pytest

from agent import profile_loader
from agent.core import limits
from agent.core.clock import ScaledClock
from agent.core.consent import ConsentLedger
from agent.core.pipeline import BROKER_ACCEPTED, CONFIRMED, Agent
from provisioning.local_broker import Service
from tests.test_uplink_agent import _uplink

WASHER = profile_loader.example("washing_machine")


def _agent(uplink: object) -> Agent:
    prof = profile_loader.load(WASHER)
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    return Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ConsentLedger(prof["data_categories"]))  # type: ignore[arg-type]


async def _until(cond: object, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return bool(cond())  # type: ignore[operator]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["paho-mqtt311", "portable"])
async def test_a_receipt_the_broker_acl_denied_is_never_called_delivered(
    kind: str, broker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "CONFIRM_WAIT_MS", 300)  # offered again soon, so the test sees it
    service = Service(broker)  # type: ignore[arg-type]
    # dev-1's agent with dev-2's certificate: the broker's ACL denies every write into dev-1's tree.
    denied = _uplink(kind, broker, cert="dev-2")
    agent = _agent(denied)
    denied.start()  # type: ignore[attr-defined]
    deliver = asyncio.ensure_future(agent.deliver())
    good = None
    try:
        agent.rights.set_consent("maintenance", True, 0)
        agent.rights.set_consent("maintenance", False, 1)  # a withdrawal: a receipt and an erasure request
        owed = sorted(e[0] for e in agent.outbox.pending)
        assert len(owed) == 3
        # The broker acknowledged them (MQTT 3.1.1 has no way to say no): "accepted by broker", no more.
        assert await _until(lambda: len(agent.sent_log) == 3, 30), list(agent.sent_log.items())
        assert await _until(lambda: all(s.offers >= 2 for s in agent.outbox.awaiting.values()), 30), (
            agent.outbox.awaiting
        )
        assert sorted(agent.outbox.awaiting) == owed and [e[0] for e in agent.outbox.pending] == owed
        assert {e["status"] for e in agent.sent_log.items()} == {BROKER_ACCEPTED}
        assert len(agent.sent_log) == 3  # offered again, logged once
        assert service.received("wichtel/v1/dev-1/") == []  # the backend has none of it
        page = agent.rights.export()
        assert len(page["outbox"]) == 3
        # The device with its own certificate: the backend receives and confirms them.
        await denied.stop()  # type: ignore[attr-defined]
        good = _uplink(kind, broker, on_command=lambda t, p: agent.on_command(t, p))
        agent.uplink = good  # type: ignore[assignment]
        good.start()  # type: ignore[attr-defined]
        assert await _until(lambda: not len(agent.outbox), 30), (agent.outbox.awaiting, agent.commands.log[-3:])
        assert [e["status"] for e in agent.sent_log.items()] == [CONFIRMED] * 3
        assert agent.outbox.confirmed == 3
        got = sorted({json.loads(m[1])["id"] for m in service.received("wichtel/v1/dev-1/essential")})
        assert got == owed
        assert [c[2] for c in service.confirms] and {i for c in service.confirms for i in c[2]} == set(owed)
    finally:
        deliver.cancel()
        await asyncio.gather(deliver, return_exceptions=True)
        if good is not None:
            await good.stop()  # type: ignore[attr-defined]
        service.close()


@pytest.mark.asyncio
async def test_mqtt5_refusals_are_retried_after_growing_waits(broker: object) -> None:
    lines: list = []
    uplink = _uplink("paho-mqtt5", broker, cert="dev-2", report=lines.append)
    attempts: list = []
    publish = uplink.publish  # type: ignore[attr-defined]

    async def counted(topic: str, payload: bytes, msg_id: int = 0) -> bool:
        attempts.append(time.monotonic())
        return await publish(topic, payload, msg_id)  # type: ignore[no-any-return]

    uplink.publish = counted  # type: ignore[attr-defined]
    agent = _agent(uplink)
    uplink.start()  # type: ignore[attr-defined]
    assert await _until(lambda: uplink.connected.is_set(), 20)  # type: ignore[attr-defined]
    for i in range(6):
        agent.rights.set_consent("maintenance", i % 2 == 0, i)
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        await asyncio.sleep(12)
    finally:
        deliver.cancel()
        await asyncio.gather(deliver, return_exceptions=True)
        await uplink.stop()  # type: ignore[attr-defined]
    # Every publish was refused (reason code 0x87): nothing is taken, nothing logged as sent.
    assert len(agent.sent_log) == 0 and len(agent.outbox.pending) == 9 and not agent.outbox.awaiting
    assert any("refused" in line for line in lines), lines[:3]
    # One full window, then one probe per round after waits of 1, 2, 4, 8 s: a handful in
    # 12 s where a loop without backoff made hundreds.
    first_round = [t for t in attempts if t - attempts[0] < 0.5]
    probes = attempts[len(first_round) :]
    assert len(first_round) == 9 and 2 <= len(probes) <= 4, [round(t - attempts[0], 2) for t in attempts]
    gaps = [b - a for a, b in itertools.pairwise([first_round[-1], *probes])]
    assert all(b > a * 1.5 for a, b in itertools.pairwise(gaps)), gaps
    assert agent.failed_rounds >= 3


class _Taking:
    """An uplink the broker side of which takes every message at once."""

    connects = 1

    def __init__(self) -> None:
        self.sent: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.sent.append(json.loads(payload))
        return True


@pytest.mark.asyncio
async def test_a_confirm_that_arrives_twice_leaves_the_receipt_confirmed_and_its_refusal_only_accepted() -> None:
    """QoS 1 is at least once: a broker restart can cost the backend its PUBACK, and it sends
    the same confirm again. The second is refused (its seq is old) and answered; the receipt
    stays confirmed, and the answer, owed to nobody, says only "accepted by broker"."""
    uplink = _Taking()
    agent = _agent(uplink)
    agent.rights.set_consent("maintenance", True, 0)
    assert await agent.flush()
    receipt = uplink.sent[0]
    assert receipt["kind"] == "consent_receipt"
    confirm = json.dumps({"device": "dev-1", "seq": 1, "args": {"ids": [receipt["id"]]}}).encode()
    topic = "wichtel/v1/dev-1/cmd/confirm"
    agent.on_command(topic, confirm)
    agent.on_command(topic, confirm)  # the same command, delivered again
    assert await agent.flush()
    assert len(agent.outbox) == 0
    by_kind = {json.loads(e["content"])["kind"]: e["status"] for e in agent.sent_log.items()}
    assert by_kind == {"consent_receipt": CONFIRMED, "command_reply": BROKER_ACCEPTED}
    reply = [m for m in uplink.sent if m["kind"] == "command_reply"]
    assert len(reply) == 1 and reply[0]["data"]["ok"] is False and reply[0]["data"]["last_seq"] == 1
