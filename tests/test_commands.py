"""Inbound commands through the real broker: valid ones are carried out and answered,
bad ones change nothing, get an error reply, and never stop the agent."""

import asyncio
import json
import os

import pytest
import yaml

from agent import profile_loader
from agent.core.clock import ScaledClock
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.uplink_paho import PahoUplink, UplinkConfig
from provisioning.local_broker import Service
from tests.test_asyncapi import validator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd(seq: object, args: object = None, device: str = "dev-1") -> bytes:
    return json.dumps({"device": device, "seq": seq, "args": args if args is not None else {}}).encode()


@pytest.mark.asyncio
async def test_commands_valid_and_invalid(broker: object) -> None:
    with open(os.path.join(ROOT, "docs", "asyncapi.yaml")) as f:
        spec = yaml.safe_load(f)
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    crt, key = broker.certs["dev-1"]  # type: ignore[attr-defined]
    service = Service(broker)  # type: ignore[arg-type]
    agent_box: list = []
    uplink = PahoUplink(UplinkConfig("localhost", broker.port, "dev-1", broker.ca_path, crt, key),  # type: ignore[attr-defined]
                        on_command=lambda t, p: agent_box[0].on_command(t, p))  # fmt: skip
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in prof["channels"]}
    agent = Agent(prof, "dev-1", drivers, ScaledClock(1.0), None, uplink, ConsentLedger(prof["data_categories"]))
    agent_box.append(agent)
    uplink.start()
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        await asyncio.wait_for(uplink.connected.wait(), 10)
        await asyncio.sleep(0.3)
        base = "wichtel/v1/dev-1/cmd/"
        sends = [
            (base + "status_report", _cmd(1)),
            (base + "status_report", _cmd(1)),  # replayed
            (base + "status_report", _cmd(2, device="dev-2")),  # for another device
            (base + "status_report", b"\xff\x00 not json"),
            (base + "status_report", b"x" * 2000),  # larger than a command may be
            (base + "consent_on", _cmd(3, {"category": "usage_statistics"})),
            (base + "config", _cmd(4, {"consent": "on"})),
            (base + "reboot", _cmd(5)),
            (base + "config", _cmd(6, {"status_interval_h": 999})),
            (base + "config", _cmd(7, {"status_interval_h": 6})),
            (base + "erasure_ack", _cmd(8, {"category": "usage_statistics"})),
        ]
        for topic, payload in sends:
            await asyncio.to_thread(service.send, topic, payload)
        replies: list = []
        for _ in range(200):
            replies = [json.loads(p) for t, p, _, _ in service.received("/essential") if b"command_reply" in p]
            if len(replies) >= len(sends):
                break
            await asyncio.sleep(0.05)
        assert len(replies) == len(sends), replies
        oks = [r["data"]["ok"] for r in replies]
        assert oks == [True, False, False, False, False, False, False, False, False, True, True]
        errors = [r["data"].get("error", "") for r in replies]
        assert "replayed or old" in errors[1] and "for device 'dev-2'" in errors[2]
        assert "not JSON" in errors[3] and "at most 1024" in errors[4]
        assert "consent is changed only on the device" in errors[5] and "consent is changed only" in errors[6]
        assert "unknown command 'reboot'" in errors[7] and "from 1 to 168" in errors[8]
        for r in replies:
            validator(spec, "commandReply").validate(r)
        # Nothing was switched on, the valid config took effect, a status was sent on request.
        assert not agent.consent.allows("usage_statistics")
        assert agent.status_interval_h == 6 and agent.commands.last_seq == 8
        assert any(b'"kind":"status"' in p for _, p, _, _ in service.received("/essential"))
        assert len(agent.commands.log) == len(sends)
    finally:
        deliver.cancel()
        await uplink.stop()
        service.close()
