"""What every scenario stands on: a provisioned device for the test broker, the operator's
backend (the Service) listening, and what the device sent as the backend holds it.

A scenario gets a Testbed from a target, the running broker (provisioning/local_broker.py:
Mosquitto with TLS and per-device ACLs) and a working directory of its own.
"""

import json
import os
import time

from bench.micropython_uplink import write_bundle
from hil_tests.targets import DeviceRun, Target
from provisioning.local_broker import Broker, Service

DEVICE = "dev-1"
TREE = "wichtel/v1/%s/" % DEVICE
OPTIONAL = ("maintenance", "usage_statistics", "consumables")  # the washing machine's optional categories
SETTLE_S = 0.5  # the backend has all the broker had once nothing more came for this long


class Testbed:
    """The device's bundle, its data directory and the backend, for one scenario."""

    def __init__(self, target: Target, broker: Broker, work: str, port: int = 0, confirming: bool = True) -> None:
        """port: where the device's bundle points (a relay's port; the broker's by default)."""
        self.target = target
        self.broker = broker
        self.work = work
        self.bundle = write_bundle(os.path.join(work, "bundle"), broker, port or broker.port, DEVICE)
        self.data_dir = os.path.join(work, "data")
        self.service = Service(broker, confirming=confirming)
        self.runs = 0

    def start(self, *options: str, data_dir: str = "") -> DeviceRun:
        """A start of the device with runtime.py's options; its output in work/run-N.out."""
        self.runs += 1
        out = os.path.join(self.work, "run-%d.out" % self.runs)
        return self.target.start(self.bundle, data_dir or self.data_dir, list(options), out)

    def close(self) -> None:
        self.service.close()

    # -- what the backend received ----------------------------------------------------------------
    def messages(self) -> list:
        """(topic, body) of every message of the device the backend received, in arrival
        order, duplicates included; its availability (not an agent message) left out."""
        out = []
        for topic, payload, _, _ in self.service.received(TREE):
            if "/status/" not in topic and "/cmd/" not in topic:
                out.append((topic, json.loads(payload)))
        return out

    def wait_for(self, check: object, timeout_s: float = 30, what: str = "") -> list:
        """messages() once check(messages) is true; AssertionError naming what after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.messages()
            if check(got):  # type: ignore[operator]
                return got
            if time.monotonic() > deadline:
                raise AssertionError("the backend did not get %s within %.0f s; it has %d messages: %s"
                                     % (what, timeout_s, len(got), [b.get("id") for _, b in got][-20:]))  # fmt: skip
            time.sleep(0.05)

    def settle(self) -> list:
        """messages() once nothing more came for SETTLE_S (what was in flight has arrived)."""
        count = -1
        while True:
            got = self.messages()
            if len(got) == count:
                return got
            count = len(got)
            time.sleep(SETTLE_S)

    def send_command(self, name: str, payload: bytes) -> None:
        """The backend sends payload on the device's command topic `name`."""
        self.service.send(TREE + "cmd/" + name, payload)


def by_id(messages: list) -> dict:
    """id -> the list of bodies received with it; AssertionError when one id came with
    different bodies (an id reused for another message: the receiver would drop it as a
    duplicate and lose it)."""
    seen: dict = {}
    for topic, body in messages:
        seen.setdefault(body["id"], []).append((topic, body))
    for mid, copies in seen.items():
        first = copies[0]
        for other in copies[1:]:
            assert other == first, "message id %d came with two different messages: %r and %r" % (mid, first, other)
    return seen


def unique(messages: list) -> list:
    """(topic, body) of each id once, in id order: what a receiver keeps after dropping
    duplicates by id (the delivery is at least once)."""
    return [copies[0] for _, copies in sorted(by_id(messages).items())]
