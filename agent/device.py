"""Opening and closing a device on the host: the agent plus its stored data.

`open_device` builds the Agent for a profile and brings back what the device holds
(consent, learned state, sent log, recent events, waiting messages); `close_device`
stores it again. The CLI's run, consent and data commands all go through here. The rules
are agent/core/device.py's, which a board follows too (firmware/main.py); this module
gives them the host's files (agent/device_data.py, agent/outbox_files.py).
"""

import json
import math
import os

from agent.core import device as core_device
from agent.core import limits
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.pipeline import Agent
from agent.device_data import DeviceData
from agent.outbox_files import FileStore


class _NoSensor:
    """For a device opened to read or change its data, not to measure."""

    def read(self, t_ms: int) -> float:
        return math.nan


def open_device(profile: dict, data_dir: str | None, device_id: str, drivers: dict | None = None,
                clock: object = None, phases: object = None, observer: object = None,
                choices: dict | None = None, board: str = limits.PI) -> tuple:  # fmt: skip
    """(agent, data or None, messages for the user). board: what the agent keeps in
    memory is sized for it (limits.BOARD_SIZES). Every damage found in the stored
    data is among the messages, and is acted on before anything can be sent: consent
    that cannot be shown counts as withdrawn (waiting messages of categories that are
    off are deleted, upstream is asked to erase them), and a damaged pseudonym key is
    replaced, never used."""
    data = DeviceData(data_dir) if data_dir else None
    ledger = ConsentLedger(profile["data_categories"], device_id)
    messages: list = []
    key = b""
    saved: dict = {}
    lost = False
    outbox = None
    if data is not None:
        saved, key, lost, messages = core_device.load(data, ledger)
        data.outbox_files = FileStore(os.path.join(data.root, "outbox"))
        outbox, said = core_device.outbox(data.outbox_files, ledger, saved, board)
        messages += said
    drivers = drivers or {ch["id"]: _NoSensor() for ch in profile["channels"]}
    agent = Agent(profile, device_id, drivers, clock or ManualClock(), phases, None, ledger, observer,  # type: ignore[arg-type]
                  choices, key, outbox, board)  # fmt: skip
    if data is not None:
        messages += core_device.settle(agent, data, saved, lost, choices)
    return agent, data, messages


def close_device(agent: Agent, data: DeviceData | None) -> list:
    """Store what the device learned and logged (agent/core/device.py close), and close the
    outbox's open files (a later message opens them again)."""
    problems = core_device.close(agent, data)
    if data is not None and data.outbox_files is not None:
        try:
            data.outbox_files.sync()  # durable, and every segment closed (an append opens its segment again)
        except OSError as e:
            problems.append("Outbox: %s" % e)
    return problems


def set_consent(agent: Agent, data: DeviceData | None, category: str, allowed: bool, t_ms: int, wall_s: int) -> dict:
    """The user's choice: checked, stored in the journal, then put into effect."""
    return core_device.set_consent(agent, data, category, allowed, t_ms, wall_s)


def export_text(agent: Agent) -> str:
    """Everything the device holds about its use, as the export file (docs/export.md)."""
    return json.dumps(agent.rights.export(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def erase(agent: Agent, data: DeviceData | None, t_ms: int) -> int:
    """Wipe what the device holds about its use, on disk too, and ask upstream to erase;
    a fresh pseudonym key from now on. Returns how many erasure requests wait to go."""
    return core_device.erase(agent, data, t_ms)
