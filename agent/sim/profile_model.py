"""Any appliance simulated from its profile: the model from the profile's simulation section,
with what it leaves out derived from the channels' units and ranges and the profile's phases.

Portable (the board's runtime simulates its own profile): plain data in, an ApplianceSim out.
The built-in models (appliances.py) stay what they were for their kinds unless the section
describes a program or channels of its own.
"""

from agent.core.errors import ConfigError
from agent.sim.appliances import FAULTS, MODELS, faults_of
from agent.sim.engine import ApplianceSim, Fault, SensorFault

# A derived program: each phase after the resting one, in the profile's order, this long; and
# the time between two cycles (mean, spread). A plausible appliance, not a measured one.
DEFAULT_STEP_S = 600
DEFAULT_IDLE_S = (3600, 1200)
# A derived channel model, as shares of the channel's span (high - low): its noise in the rest
# phase and in the others; the active phases lie from LOW to LOW + SPREAD of the way from the
# rest value to the top of the range, one level per phase, so each phase looks different.
_REST_SD = 0.002
_ACTIVE_SD = 0.01
_ACTIVE_LOW = 0.2
_ACTIVE_SPREAD = 0.4
# Units of quantities that are zero while an appliance rests (a current, a flow, a pressure, a
# vibration, a speed), and of temperatures (a room's 20 degC at rest). Any other unit rests at
# the middle of its range.
_ZERO_AT_REST = ("a", "ma", "w", "kw", "l/min", "l/h", "l/s", "ml/min", "ml/s", "bar", "kpa", "pa", "g", "m/s2",
                 "m/s^2", "rpm", "hz", "pulses/s")  # fmt: skip
_ROOM = {"degc": 20.0, "°c": 20.0, "c": 20.0, "celsius": 20.0, "degf": 68.0, "°f": 68.0, "f": 68.0, "k": 293.15}
_LEVEL_SHARE = 0.05  # a derived level model: a dose of this share of the capacity per cycle
_REFILL_SHARE = 0.1  # refilled when below this share of the capacity


def uses_builtin(profile: dict) -> bool:
    """Whether the profile runs its kind's built-in model: the kind has one, the profile's
    phases are the model's (resting in idle, and every phase of its program among them), and
    the simulation section (if any) describes neither a program nor channels."""
    sec = profile.get("simulation") or {}
    builtin: dict | None = MODELS.get(profile["appliance"]["kind"])
    if builtin is None or sec.get("program") or sec.get("channels"):
        return False
    phases = profile["phases"]
    return bool(phases[0] == "idle" and all(step[0] in phases for step in builtin["program"]))


def fault_names(profile: dict) -> tuple:
    """(the profile's fault names, the built-in fault names that apply) for --fault."""
    sec = profile.get("simulation") or {}
    own = [f["id"] for f in sec.get("faults") or []]
    return own, faults_of(profile["appliance"]["kind"]) if uses_builtin(profile) else []


def build(profile: dict, seed: int = 1, faults: list | None = None, onset: int = 2, ramp: int = 2) -> ApplianceSim:
    """The simulated appliance of a validated profile with the named faults: the profile's
    own (they say when they start) or built-in ones of its kind's model (from cycle onset,
    full after ramp cycles). ConfigError for a name neither knows, listing both."""
    own, builtin = fault_names(profile)
    sec = profile.get("simulation") or {}
    specs = {f["id"]: f for f in sec.get("faults") or []}
    effects: list = []
    sensors: list = []
    for name in faults or []:
        if name in own and name in builtin:
            raise ConfigError("fault " + repr(name) + " is both one of the profile's and a built-in one; "
                              "rename the profile's")  # fmt: skip
        if name in own:
            f = specs[name]
            sensors.append(SensorFault(name, f["kind"], f["channel"], f["size"], f["phase"], f["onset_cycle"],
                                       f["onset_h"], seed * 31 + len(sensors) + 1))  # fmt: skip
        elif name in builtin:
            effects.append(Fault(name, FAULTS[name][1], onset, ramp))
        else:
            kind = profile["appliance"]["kind"]
            raise ConfigError("fault " + repr(name) + " does not apply to " + kind + "; known: the profile's: "
                              + (", ".join(own) or "none") + "; built-in: "
                              + (", ".join(builtin) or "none for this appliance"))  # fmt: skip
    return ApplianceSim(model(profile), seed, effects, 0, sensors)


def model(profile: dict) -> dict:
    """The engine's model of a validated profile (see ApplianceSim)."""
    sec = profile.get("simulation") or {}
    phases = profile["phases"]
    if uses_builtin(profile):
        return _builtin_model(profile, sec)
    program: list
    if sec.get("program"):
        program = [(s["phase"], s["seconds"], s["every"]) for s in sec["program"]]
    else:
        program = [(p, DEFAULT_STEP_S) for p in phases[1:]]
    idle = sec.get("idle_s")
    out: dict = {
        "rest": phases[0],
        "program": program,
        "idle_s": DEFAULT_IDLE_S if not idle else (idle[0], idle[1]),
        "channels": {},
        "thermals": [],
        "levels": {},
        "switches": {},
        "ranges": {},
    }
    given = {m["channel"]: m for m in sec.get("channels") or []}
    for ch in profile["channels"]:
        cid = ch["id"]
        out["ranges"][cid] = (ch["range"][0], ch["range"][1])
        spec = given.get(cid)
        if spec is None:
            level = _consumable_level(profile, cid, program[0][0] if program else "")
            if level is not None:
                out["levels"][cid] = level
            else:
                out["channels"][cid] = _derived_table(ch, phases, phases[0])
        elif spec.get("phases") is not None:
            table = {}
            for name in spec["phases"]:
                table[name] = (spec["phases"][name][0], spec["phases"][name][1])
            if phases[0] not in table:
                table[phases[0]] = _derived_table(ch, phases[:1], phases[0])[phases[0]]
            out["channels"][cid] = table
        elif spec.get("thermal") is not None:
            th = spec["thermal"]
            out["thermals"].append({
                "channel": cid, "phase": th["phase"], "ambient": th["ambient"], "target": th["target"],
                "rate_c_per_s": th["rate_per_s"], "cool_tau_s": th["return_tau_s"], "sd": th["sd"],
                "until_target": th["until_target"], "start": th["start"],
            })  # fmt: skip
        elif spec.get("level") is not None:
            lv = spec["level"]
            below = lv["refill_below"]
            out["levels"][cid] = {
                "capacity": lv["capacity"], "dose": lv["dose"], "dose_phase": lv["phase"], "sd": lv["sd"],
                "refill_below": lv["capacity"] * _REFILL_SHARE if below is None else below,
            }  # fmt: skip
        else:
            out["switches"][cid] = spec["switch"]
    return out


def _builtin_model(profile: dict, sec: dict) -> dict:
    """The kind's built-in model, its numbers unchanged (same seed, same readings); the
    section's idle_s if it gives one, and derived models for channels the model lacks."""
    out: dict = dict(MODELS[profile["appliance"]["kind"]])
    if sec.get("idle_s"):
        out["idle_s"] = (sec["idle_s"][0], sec["idle_s"][1])
    known = _builtin_channels(out)
    extra = [ch for ch in profile["channels"] if ch["id"] not in known]
    if extra:  # channels the built-in model lacks get derived ones; its own stay as they were
        out["channels"] = dict(out["channels"])
        out["ranges"] = {}
        for ch in extra:
            out["channels"][ch["id"]] = _derived_table(ch, profile["phases"], out.get("rest", "idle"))
            out["ranges"][ch["id"]] = (ch["range"][0], ch["range"][1])
    return out


def _builtin_channels(m: dict) -> list:
    out = list(m["channels"]) + list(m.get("levels", {}))
    if m.get("thermal"):
        out.append(m["thermal"]["channel"])
    return out


def _rest_value(unit: str, lo: float, hi: float) -> float:
    u = unit.strip().lower()
    if u in _ZERO_AT_REST:
        return min(hi, max(lo, 0.0))
    room = _ROOM.get(u)
    if room is not None and lo <= room <= hi:
        return room
    return (lo + hi) / 2.0


def _derived_table(ch: dict, phases: list, rest: str) -> dict:
    """{phase: (mean, sd)} for a channel the section does not describe: its rest value (by
    unit) in the rest phase, and one level per other phase between it and the range's top."""
    lo, hi = ch["range"]
    span = hi - lo
    base = _rest_value(ch["unit"], lo, hi)
    table = {rest: (base, span * _REST_SD)}
    active = [p for p in phases if p != rest]
    for k, name in enumerate(active):
        share = _ACTIVE_LOW + _ACTIVE_SPREAD * (k + 1) / len(active)
        table[name] = (base + (hi - base) * share, span * _ACTIVE_SD)
    return table


def _consumable_level(profile: dict, cid: str, dose_phase: str) -> dict | None:
    """A level model for a channel a consumable's level sensor reads, from the consumable."""
    for con in profile["consumables"]:
        if con["source"] == "level_sensor" and con["channel"] == cid and dose_phase:
            cap = con["capacity"]
            dose = con["dose_per_cycle"] if con["dose_per_cycle"] is not None else cap * _LEVEL_SHARE
            return {"capacity": cap, "dose": dose, "dose_phase": dose_phase, "refill_below": cap * _REFILL_SHARE,
                    "sd": 0.0}  # fmt: skip
    return None
