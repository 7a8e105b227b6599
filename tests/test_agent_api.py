"""Host code uses the Agent only through its public API (Agent.API): the CLI, the device's
storage, the local page, firmware and benchmarks never reach into the agent's parts.

An AST scan of agent/ (outside agent/core), firmware/ and bench/: every attribute taken
from an agent (a name `agent`, `self.agent`, a parameter annotated Agent, a name bound to
Agent(...)) must be in Agent.API, and nothing taken from its `rights` may start with `_`.
Code that benchmarks run on MicroPython as text is scanned too.
"""

import ast
import os

from agent.core.pipeline import Agent
from agent.core.rights import DataRights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_DIRS = ("agent", "firmware", "bench")
CORE = os.path.join("agent", "core")


def _host_files() -> list:
    out = []
    for top in HOST_DIRS:
        for folder, dirs, names in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            rel = os.path.relpath(folder, ROOT)
            if rel == CORE or rel.startswith(CORE + os.sep):
                continue
            out += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    return out


def _is_agent_annotation(node: ast.expr | None) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.strip('"') == "Agent"
    return isinstance(node, ast.Name) and node.id == "Agent"


def _agent_names(tree: ast.AST) -> set:
    """Names that hold an agent in this module (by convention, annotation or binding)."""
    names = {"agent"}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and _is_agent_annotation(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if _is_agent_annotation(node.annotation):
                names.add(node.target.id)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == "Agent":
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _is_agent(node: ast.expr, names: set) -> bool:
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and node.attr == "agent"


def _is_module(node: ast.Attribute) -> bool:
    """agent.sim where `agent` is the package (import agent.sim), not an Agent."""
    package = os.path.join(ROOT, "agent", node.attr)
    return isinstance(node.value, ast.Name) and (os.path.isdir(package) or os.path.isfile(package + ".py"))


def violations(source: str, where: str = "<source>") -> list:
    """Each use of an agent beyond Agent.API in this source, as "where:line: what"."""
    tree = ast.parse(source)
    names = _agent_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_agent(node.value, names):
            if node.attr not in Agent.API and not _is_module(node):
                found.append("%s:%d: agent.%s is not in Agent.API" % (where, node.lineno, node.attr))
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "rights" and _is_agent(node.value.value, names)
                and node.attr.startswith("_")):  # fmt: skip
            found.append("%s:%d: agent.rights.%s is private" % (where, node.lineno, node.attr))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and node.args
                and _is_agent(node.args[0], names)):  # fmt: skip
            found.append("%s:%d: %s() on an agent hides what it reaches" % (where, node.lineno, node.func.id))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "agent" in node.value:
            # Code a benchmark runs elsewhere (the MicroPython unix port) as text; "%r" is
            # where it is filled in.
            try:
                inner = ast.parse(node.value.replace("%r", "None"))
            except SyntaxError:
                continue
            found += violations(ast.unparse(inner), "%s:%d (code in a string)" % (where, node.lineno))
    return found


def test_host_code_uses_only_the_agents_public_api() -> None:
    files = _host_files()
    assert len(files) > 20 and any(f.endswith(os.path.join("bench", "uplink.py")) for f in files)
    found = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            found += violations(f.read(), os.path.relpath(path, ROOT))
    assert found == []


def test_the_scan_finds_an_intruder() -> None:
    """The check fails on each way host code has reached in before (and would again)."""
    intruder = '''
from agent.core.pipeline import Agent


def bench(agent):
    agent._judge(event)
    agent.outbox.sync()


class Page:
    def show(self):
        return len(self.agent.consent.history)


def run(box: "Agent", prof):
    a = Agent(prof, "d", {}, None)
    a.gate.key = b"k"
    box.rights._room_for(2)
    return getattr(box, "stock")

WEEK = """
agent.set_consent("maintenance", True, 0)
print(%r + str(len(agent.outbox)))
"""
'''
    found = violations(intruder)
    assert sorted(f.split(": ", 1)[1] for f in found) == sorted(
        [
            "agent._judge is not in Agent.API",
            "agent.outbox is not in Agent.API",
            "agent.consent is not in Agent.API",
            "agent.gate is not in Agent.API",
            "agent.rights._room_for is private",
            "getattr() on an agent hides what it reaches",
            "agent.set_consent is not in Agent.API",
            "agent.outbox is not in Agent.API",
        ]
    ), found
    # The same code through the API passes.
    assert violations("def f(agent):\n    agent.rights.set_consent('maintenance', True, 0)\n    agent.sync()\n") == []


def test_the_api_names_what_the_agent_has() -> None:
    """Every name in Agent.API exists and is public; the rights it exposes are a DataRights."""
    assert len(set(Agent.API)) == len(Agent.API)
    attributes = {"profile", "device_id", "clock", "observer", "rights"}
    for name in Agent.API:
        assert not name.startswith("_"), name
        assert name in attributes or callable(getattr(Agent, name, None)), name
    from agent import profile_loader
    from agent.core.clock import ManualClock

    prof = profile_loader.load(profile_loader.example("washing_machine"))
    agent = Agent(prof, "d", {ch["id"]: None for ch in prof["channels"]}, ManualClock())
    for name in attributes:
        assert hasattr(agent, name), name
    assert isinstance(agent.rights, DataRights)


def _washer_agent() -> Agent:
    from agent import host, profile_loader
    from agent.core.clock import ManualClock

    prof = profile_loader.load(profile_loader.example("washing_machine"))
    drivers, sim = host.simulated(prof, 1, [])
    return Agent(prof, "dev-1", drivers, ManualClock(), sim)


def test_a_snapshot_shows_the_agent_and_cannot_change_it() -> None:
    from agent.core.events import ANOMALY, Event

    agent = _washer_agent()
    agent.rights.set_consent("maintenance", True, 0)
    agent.judge(Event(ANOMALY, "maintenance", "motor_current", 5, "drain", {"value": 1.0, "score": 0.9}))
    snap = agent.snapshot()
    assert snap.device_id == "dev-1" and snap.choices["maintenance"] == "on" and len(snap.receipts) == 1
    assert (snap.waiting, snap.awaiting, snap.made) == (len(agent.outbox), 0, agent.outbox.next_id - 1) == (2, 0, 2)
    assert [e.t_ms for e in snap.events] == [5] and snap.decisions == agent.decisions
    assert [c.id for c in snap.consumables] == ["detergent"] and snap.consumable("detergent").level > 0
    # What the snapshot holds are copies: changing them changes nothing in the agent.
    snap.receipts.clear()
    snap.events.clear()
    snap.choices["maintenance"] = "off"
    snap.decisions.clear()
    again = agent.snapshot()
    assert len(again.receipts) == 1 and len(again.events) == 1 and again.choices["maintenance"] == "on"
    assert again.decisions and agent.consent.allows("maintenance")


def test_save_and_restore_bring_back_the_state() -> None:
    from agent.core.events import ANOMALY, Event

    agent = _washer_agent()
    agent.rights.set_consent("maintenance", True, 0)
    agent.judge(Event(ANOMALY, "maintenance", "motor_current", 5, "drain", {"value": 1.0, "score": 0.9}))
    saved = agent.save()
    assert saved["consent_seq"] == 1 and saved["outbox_last_id"] == 2 and len(saved["events"]) == 1
    fresh = _washer_agent()
    assert fresh.restore(saved) == []
    again = fresh.save()
    # The consent ledger and the outbox are the host's to store (journal, outbox files).
    assert {k: v for k, v in again.items() if k not in ("consent_seq", "outbox_last_id")} == {
        k: v for k, v in saved.items() if k not in ("consent_seq", "outbox_last_id")
    }
    # A stored part that cannot be read is said, and left out.
    saved["events"].append({"kind": "anomaly"})
    assert _washer_agent().restore(saved) == ["a stored event could not be read and was left out."]
    del saved["events"][-1]
    # Alert numbers go on after a restart; a damaged one starts them from 1 again, said.
    saved["alert_last_id"] = 41
    restarted = _washer_agent()
    assert restarted.restore(saved) == [] and restarted.save()["alert_last_id"] == 41
    saved["alert_last_id"] = "x"
    assert _washer_agent().restore(saved) == [
        "the stored alert number 'x' is not a whole number from 0; alerts are numbered from 1 again"
    ]
