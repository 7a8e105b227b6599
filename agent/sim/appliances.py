"""The three example appliances and the faults each can be given.

Numbers are plausible for household machines (currents in A, flows in l/min,
temperatures in degC); they are chosen to look real, not measured from one product.
"""

from agent.core.errors import ConfigError
from agent.sim.engine import ApplianceSim, Fault

WASHING_MACHINE = {
    "program": [
        ("fill", 150),
        ("heat", 1500),
        ("wash", 1800),
        ("drain", 90),
        ("spin", 240),
        ("fill", 120),
        ("wash", 600),
        ("drain", 90),
        ("spin", 480),
    ],
    "idle_s": (16200, 5400),
    "channels": {
        "motor_current": {
            "idle": (0.02, 0.005),
            "fill": (0.1, 0.02),
            "heat": (0.6, 0.1),
            "wash": (1.2, 0.25),
            "drain": (0.45, 0.04),
            "spin": (3.6, 0.3),
        },
        "drum_vibration": {
            "idle": (0.01, 0.003),
            "fill": (0.02, 0.005),
            "heat": (0.08, 0.02),
            "wash": (0.25, 0.06),
            "drain": (0.03, 0.01),
            "spin": (0.7, 0.08),
        },
        "inlet_flow": {"idle": (0.0, 0.0), "fill": (8.0, 0.4)},
    },
    "thermal": {
        "channel": "heater_temp",
        "phase": "heat",
        "ambient": 18.0,
        "target": 40.0,
        "rate_c_per_s": 0.03,
        "cool_tau_s": 2400.0,
        "sd": 0.2,
    },
    "levels": {
        "detergent_level": {
            "capacity": 1500.0,
            "dose": 65.0,
            "dose_phase": "wash",
            "refill_below": 150.0,
            "sd": 4.0,
        },
    },
}

COFFEE_MACHINE = {
    "program": [("heatup", 90), ("grind", 12), ("brew", 28), ("ready", 60)],
    "idle_s": (2400, 1500),
    "channels": {
        "pump_pressure": {"idle": (0.0, 0.02), "brew": (9.0, 0.3)},
        "descaling_state": {"idle": (0.0, 0.0)},
    },
    "thermal": {
        "channel": "boiler_temp",
        "phase": "heatup",
        "ambient": 60.0,
        "target": 93.0,
        "rate_c_per_s": 0.6,
        "cool_tau_s": 1800.0,
        "sd": 0.3,
    },
    "levels": {
        "water_tank": {"capacity": 1800.0, "dose": 150.0, "dose_phase": "brew", "refill_below": 300.0, "sd": 8.0},
        "bean_hopper": {"capacity": 500.0, "dose": 9.0, "dose_phase": "grind", "refill_below": 40.0, "sd": 1.5},
    },
}

DISHWASHER = {
    "program": [
        ("fill", 90),
        ("prewash", 600),
        ("drain", 60),
        ("fill", 90),
        ("heat", 1800),
        ("wash", 1800),
        ("drain", 60),
        ("fill", 90),
        ("rinse", 900),
        ("drain", 60),
        ("dry", 1800),
    ],
    "idle_s": (30000, 9000),
    "channels": {
        "inlet_flow": {"idle": (0.0, 0.0), "fill": (6.0, 0.3)},
    },
    "thermal": {
        "channel": "heater_temp",
        "phase": "heat",
        "ambient": 20.0,
        "target": 55.0,
        "rate_c_per_s": 0.025,
        "cool_tau_s": 3000.0,
        "sd": 0.2,
    },
    "levels": {
        "salt_level": {"capacity": 1000.0, "dose": 18.0, "dose_phase": "prewash", "refill_below": 100.0, "sd": 5.0},
        "rinse_aid_level": {"capacity": 110.0, "dose": 3.0, "dose_phase": "rinse", "refill_below": 12.0, "sd": 0.5},
    },
}

MODELS = {"washing_machine": WASHING_MACHINE, "coffee_machine": COFFEE_MACHINE, "dishwasher": DISHWASHER}

# fault name -> (appliance kinds it applies to, effects). Effects are at full severity.
FAULTS = {
    # A clogging drain pump: draining takes longer and the pump draws more current.
    "pump_clog": (
        ("washing_machine", "dishwasher"),
        {
            "duration": {"drain": 1.2},
            "offset": {"motor_current@drain": 0.35},
        },
    ),
    # A failing or scaled heater: heating slows down.
    "heater_fail": (("washing_machine", "dishwasher"), {"heat_rate": {"all": -0.6}}),
    # A worn drum bearing: more vibration when the drum turns fast.
    "bearing_wear": (
        ("washing_machine",),
        {
            "offset": {"drum_vibration@spin": 0.6, "drum_vibration@wash": 0.15},
        },
    ),
    # A leaking inlet valve: water flows while the machine is idle.
    "leak_idle": (("washing_machine", "dishwasher"), {"offset": {"inlet_flow@idle": 0.5}}),
    # Scale in a coffee machine: slower heat-up, higher pump pressure.
    "scale_buildup": (
        ("coffee_machine",),
        {
            "heat_rate": {"all": -0.5},
            "offset": {"pump_pressure@brew": 2.0},
        },
    ),
}


def make(kind: str, seed: int = 1, faults: list | None = None, onset: int = 2, ramp: int = 2,
         idle_s: tuple | None = None) -> ApplianceSim:  # fmt: skip
    """A simulator for an appliance kind with named faults starting at cycle onset; idle_s
    (mean, spread in seconds between two cycles) for a household that uses it more or less
    often than the model's."""
    if kind not in MODELS:
        raise ConfigError("no simulator for appliance kind " + repr(kind) + "; known: " + ", ".join(sorted(MODELS)))
    active = []
    for name in faults or []:
        if name not in FAULTS or kind not in FAULTS[name][0]:
            known = ", ".join(faults_of(kind))
            raise ConfigError("fault " + repr(name) + " does not apply to " + kind + "; known: " + known)
        active.append(Fault(name, FAULTS[name][1], onset, ramp))
    model = MODELS[kind]
    if idle_s is not None:
        model = dict(model)
        model["idle_s"] = idle_s
    return ApplianceSim(model, seed, active)


def faults_of(kind: str) -> list:
    """The names of the built-in faults that apply to an appliance kind (none for a kind
    without a built-in model)."""
    return [f for f in sorted(FAULTS) if kind in FAULTS[f][0]]
