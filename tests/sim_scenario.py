"""A simulated appliance from its compiled profile through the whole pipeline, in the portable
subset: the same function runs on CPython (pytest) and on the MicroPython unix port.

It returns the events the pipeline made, as plain lists, so the two runtimes can be compared.
"""

import asyncio

from agent.core import profile as core_profile
from agent.core.clock import ManualClock
from agent.core.pipeline import Agent
from agent.sim import profile_model
from agent.sim.engine import SimDriver

HOUR_MS = 3_600_000


def events(profile_json: bytes, faults: list, hours: float, seed: int = 1) -> list:
    """[kind, channel, t_ms, phase, detector or reason] of every event in `hours` simulated
    hours of the profile's appliance with these faults (the profile's or built-in names)."""
    profile = core_profile.from_json(profile_json)
    sim = profile_model.build(profile, seed, faults)
    drivers = {}
    for ch in profile["channels"]:
        drivers[ch["id"]] = SimDriver(sim, ch["id"])
    seen: list = []

    def observe(stage: str, event: object, decision: object) -> None:
        if stage == "decision":
            fields = event.fields  # type: ignore[attr-defined]
            why = fields.get("detector", fields.get("reason", ""))
            seen.append([event.kind, event.channel, event.t_ms, event.phase, why])  # type: ignore[attr-defined]

    agent = Agent(profile, "sim-1", drivers, ManualClock(), sim, observer=observe)
    asyncio.run(agent.run(int(hours * HOUR_MS)))
    return seen
