"""Opening and closing a device on the host: the agent plus its stored data.

`open_device` builds the Agent for a profile and brings back what the device holds
(consent, learned state, sent log, recent events, waiting messages); `close_device`
stores it again. The CLI's run, consent and data commands all go through here.
"""

import json
import math
import os

from agent.core import limits
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.events import Event
from agent.core.outbox import Outbox
from agent.core.pipeline import Agent
from agent.device_data import DeviceData
from agent.outbox_files import FileStore


class _NoSensor:
    """For a device opened to read or change its data, not to measure."""

    def read(self, t_ms: int) -> float:
        return math.nan


def open_device(profile: dict, data_dir: str | None, device_id: str, drivers: dict | None = None,
                clock: object = None, phases: object = None, observer: object = None,
                choices: dict | None = None) -> tuple:  # fmt: skip
    """(agent, data or None, messages for the user)."""
    data = DeviceData(data_dir) if data_dir else None
    ledger = ConsentLedger(profile["data_categories"], device_id)
    messages = []
    key = b""
    if data is not None:
        messages += ["Consent: " + m for m in data.load_consent(ledger)]
        key = data.pseudonym_key()
    drivers = drivers or {ch["id"]: _NoSensor() for ch in profile["channels"]}
    outbox = None
    if data is not None:
        outbox = Outbox(limits.OUTBOX_LEN, FileStore(os.path.join(data.root, "outbox")))
        messages += ["Outbox: " + m for m in outbox.problems]
    agent = Agent(profile, device_id, drivers, clock or ManualClock(), phases, None, ledger, observer,  # type: ignore[arg-type]
                  choices, key, outbox)  # fmt: skip
    if data is not None:
        saved, problem = data.load_state()
        if problem:
            messages.append("State: " + problem + "; the device starts with fresh models.")
        saved = saved or {}
        messages += ["State: " + m for m in agent.restore_consumables(saved.get("consumables", {}))]
        for stock in agent.stock:  # a choice given now wins over the stored one
            if choices and stock.tracker.id in choices:
                stock.tracker.choice = choices[stock.tracker.id]
        messages += ["State: " + m for m in agent.commands.restore(saved.get("command_seq", 0))]
        for item in saved.get("sent", []):
            agent.sent_log.push(item)
        for item in saved.get("events", []):
            try:
                agent.local_events.push(Event.from_dict(item))
            except (KeyError, TypeError):
                messages.append("State: a stored event could not be read and was left out.")
    return agent, data, messages


def close_device(agent: Agent, data: DeviceData | None) -> None:
    """Store what the device learned and logged (also after each change on the local page)."""
    if data is None:
        return
    data.save_state({
        "consumables": agent.consumable_state(),
        "sent": agent.sent_log.items(),
        "events": [e.as_dict() for e in agent.local_events.items()],
        "command_seq": agent.commands.last_seq,
    })  # fmt: skip
    agent.outbox.sync()


def set_consent(agent: Agent, data: DeviceData | None, category: str, allowed: bool, t_ms: int, wall_s: int) -> dict:
    """The user's choice: checked, stored in the journal, then put into effect."""
    receipt = agent.consent_receipt(category, allowed, t_ms, wall_s)
    if data is not None:
        data.append_receipt(receipt)
    if agent.apply_consent(receipt) and data is not None:
        data.rewrite_consent(agent.consent.history)
    return receipt


def export_text(agent: Agent) -> str:
    """Everything the device holds about its use, as the export file (docs/export.md)."""
    return json.dumps(agent.export(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def erase(agent: Agent, data: DeviceData | None, t_ms: int) -> int:
    """Wipe what the device holds about its use, on flash too, and ask upstream to erase;
    a fresh pseudonym key from now on. Returns how many erasure requests wait to go."""
    agent.erase(t_ms)
    if data is not None:
        data.erase()
        agent.gate.key = data.pseudonym_key()
        close_device(agent, data)
    return len([m for m in agent.outbox.items() if b'"erasure_request"' in m[1]])
