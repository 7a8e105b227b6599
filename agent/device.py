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
                choices: dict | None = None, board: str = limits.PI) -> tuple:  # fmt: skip
    """(agent, data or None, messages for the user). board: what the agent keeps in
    memory is sized for it (limits.BOARD_SIZES). Every damage found in the stored
    data is among the messages, and is acted on before anything can be sent: consent
    that cannot be shown counts as withdrawn (waiting messages of categories that are
    off are deleted, upstream is asked to erase them), and a damaged pseudonym key is
    replaced, never used."""
    data = DeviceData(data_dir) if data_dir else None
    ledger = ConsentLedger(profile["data_categories"], device_id)
    messages = []
    key = b""
    saved: dict = {}
    lost = False
    if data is not None:
        had_data = data.holds_data()
        state, problem = data.load_state()
        if problem:
            messages.append("State: " + problem + "; the device starts with fresh models.")
        saved = state or {}
        problems, lost = data.load_consent(ledger, _count(saved, "consent_seq"))
        messages += ["Consent: " + m for m in problems]
        key, problem = data.load_pseudonym_key(had_data)
        if problem:
            messages.append("Pseudonym key: " + problem)
    drivers = drivers or {ch["id"]: _NoSensor() for ch in profile["channels"]}
    outbox = None
    if data is not None:
        store = FileStore(os.path.join(data.root, "outbox"))
        sizes = limits.board_sizes(board)
        outbox = Outbox(sizes["outbox"], store, tuple(ledger.essential), _count(saved, "outbox_last_id"),
                        sizes["outbox_reserve"])  # fmt: skip
        messages += ["Outbox: " + m for m in outbox.problems]
    agent = Agent(profile, device_id, drivers, clock or ManualClock(), phases, None, ledger, observer,  # type: ignore[arg-type]
                  choices, key, outbox, board)  # fmt: skip
    if data is not None:
        messages += ["State: " + m for m in agent.restore(saved, choices)]  # a choice given now wins
        damaged = agent.snapshot().outbox_damaged
        said = agent.rights.enforce_consent(lost, agent.clock.now_ms(), damaged)
        messages += ["Consent: " + m for m in said]
        if lost or damaged:
            # Stored at once: the erasure requests, and a state that no longer expects the lost receipts.
            messages += close_device(agent, data)
    return agent, data, messages


def _count(saved: dict, name: str) -> int:
    """A counter from the stored state (0 when absent or not a whole number >= 0)."""
    value = saved.get(name, 0)
    return value if type(value) is int and value > 0 else 0


def close_device(agent: Agent, data: DeviceData | None) -> list:
    """Store what the device learned and logged (also after each change on the local page
    and now and then during a run). Returns problems for the user; a state that cannot
    be stored (a full disk) leaves the one stored before intact, and the agent goes on
    with the new one in memory: the next call tries again."""
    if data is None:
        return []
    problem = data.save_state(agent.save())
    return ["State: " + problem] if problem else []


def set_consent(agent: Agent, data: DeviceData | None, category: str, allowed: bool, t_ms: int, wall_s: int) -> dict:
    """The user's choice: checked, stored in the journal, then put into effect."""
    receipt = agent.rights.consent_receipt(category, allowed, t_ms, wall_s)
    if data is not None:
        data.append_receipt(receipt)  # StorageError here: nothing changed
    trimmed = agent.rights.apply_consent(receipt)
    if data is not None:
        if trimmed:
            data.rewrite_consent(agent.snapshot().receipts)
        # The state names the receipt and the last message id, so a journal or outbox that
        # later loses them is found out (a failure is in data.problems).
        close_device(agent, data)
    return receipt


def export_text(agent: Agent) -> str:
    """Everything the device holds about its use, as the export file (docs/export.md)."""
    return json.dumps(agent.rights.export(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def erase(agent: Agent, data: DeviceData | None, t_ms: int) -> int:
    """Wipe what the device holds about its use, on flash too, and ask upstream to erase;
    a fresh pseudonym key from now on. Returns how many erasure requests wait to go."""
    agent.rights.erase(t_ms)
    if data is not None:
        data.erase()
        agent.rights.use_pseudonym_key(data.new_pseudonym_key()[0])  # a key that cannot be stored is in data.problems
        close_device(agent, data)  # a state that cannot be stored is in data.problems
    return agent.rights.erasures_waiting()
