"""Any appliance simulated from its profile: a fridge no code knows (tests/profiles/fridge.yaml) is
checked, simulated with each kind of fault and the fault found, on CPython and on the MicroPython
unix port with the same events; any valid profile simulates within its channels' ranges; the
simulation section is checked like the rest of the profile; the built-in models are unchanged."""

import copy
import csv
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import host, profile_loader
from agent.cli import main
from agent.core import limits
from agent.core import profile as core_profile
from agent.core.errors import ConfigError, ProfileError, SensorError
from agent.sim import engine, profile_model
from agent.sim.appliances import FAULTS, make
from tests import micropython_unix, sim_scenario

FRIDGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles", "fridge.yaml")
HOUR_MS = 3_600_000
ONSET_MS = 4 * HOUR_MS  # the fridge's faults by hours start here (the profile says so)
RUN_HOURS = 8  # four healthy hours to learn from, four with the fault
HEAP = 512 * 1024  # the unix port's fixed heap for the fridge runs (205 KB live after each; 384 KB ran out)
# The runs compared on both runtimes: no fault, and one of each kind the pipeline can see.
SCENARIOS = ([], ["compressor_wear"], ["sensor_drift"], ["probe_lost"])


@pytest.fixture(scope="module")
def fridge() -> dict:
    return profile_loader.load(FRIDGE)


@pytest.fixture(scope="module")
def fridge_json(fridge: dict) -> bytes:
    return profile_loader.compile_json(fridge)


def _kinds(events: list, kind: str, channel: str | None = None) -> list:
    return [e for e in events if e[0] == kind and (channel is None or e[1] == channel)]


# -- the fridge: checked, simulated, its faults found ----------------------------------------------
def test_the_fridge_profile_is_checked_and_its_compiled_form_is_the_same(
    fridge: dict, fridge_json: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "check", FRIDGE]) == 0
    assert "valid profile for Frostwerk KS 300 (3 channels" in capsys.readouterr().out
    assert core_profile.from_json(fridge_json) == fridge
    assert fridge["simulation"]["faults"][0]["id"] == "compressor_wear"
    # Its channels name real sensors (onewire, i2c): the simulator takes them all the same.
    assert [c["driver"] for c in fridge["channels"]] == ["onewire", "i2c", "sim"]


def test_the_fridge_runs_its_program_from_the_profile(fridge: dict) -> None:
    sim = profile_model.build(fridge, 1)
    phases: list = []
    temps = []
    for t in range(0, 12 * HOUR_MS, 10_000):
        phase = sim.phase(t)
        if not phases or phases[-1] != phase:
            phases.append(phase)
        temps.append(sim.read("cabinet_temp", t))
    assert set(phases) == {"idle", "cooling", "defrost"}
    # Every sixth cycle defrosts after cooling; the compressor cycles with the thermostat.
    cycles = phases.count("cooling")
    assert phases.count("defrost") == cycles // 6 and cycles >= 12
    assert 2.0 < min(temps) and max(temps) < 12.0  # the cabinet stays cold, about 3 to 7 degC
    assert sim.read("compressor_current", 12 * HOUR_MS) >= 0.0


def test_the_fridge_healthy_makes_no_alarm_and_each_fault_is_found_after_its_onset(fridge_json: bytes) -> None:
    healthy = sim_scenario.events(fridge_json, [], RUN_HOURS, 1)
    assert _kinds(healthy, "anomaly") == [] and _kinds(healthy, "sensor_fault") == []
    # A failing compressor: it draws more current while cooling; the anomaly detector finds it.
    worn = sim_scenario.events(fridge_json, ["compressor_wear"], RUN_HOURS, 1)
    found = _kinds(worn, "anomaly")
    assert [e[1] for e in found] == ["compressor_current"] and found[0][3] == "cooling"
    assert ONSET_MS <= found[0][2] < ONSET_MS + HOUR_MS
    # A drifting thermometer (2 degC an hour): the cycle feature (mean while cooling) finds it.
    drift = _kinds(sim_scenario.events(fridge_json, ["sensor_drift"], RUN_HOURS, 1), "anomaly")
    assert drift and {e[1] for e in drift} == {"cabinet_temp"} and {e[4] for e in drift} == {"cycle_feature"}
    assert drift[0][2] > ONSET_MS
    # A lost probe: one sensor-fault alert naming the reason, from the onset on, however long it lasts.
    lost = sim_scenario.events(fridge_json, ["probe_lost"], RUN_HOURS, 1)
    faults = _kinds(lost, "sensor_fault", "cabinet_temp")
    assert len(faults) == 1 and faults[0][4] == "absent" and faults[0][2] >= ONSET_MS
    assert _kinds(lost, "anomaly") == []


@pytest.mark.heavy  # twelve runs of eight hours: `make test`, not the quick tier
def test_across_seeds_the_compressor_fault_is_found_every_time() -> None:
    """Not one lucky seed: six households, each with and without the worn compressor. A healthy
    run may make an early alarm while the detectors learn (seed 4 does, in the first hour; of
    seeds 1 to 12 only that one); the worn compressor is found within an hour of its onset in
    every one (in each of seeds 1 to 12 too, measured once; six keep the test short)."""
    data = profile_loader.compile_json(profile_loader.load(FRIDGE))
    early = 0
    for seed in range(1, 7):
        healthy = _kinds(sim_scenario.events(data, [], RUN_HOURS, seed), "anomaly")
        assert all(e[2] < HOUR_MS for e in healthy), (seed, healthy)
        early += len(healthy)
        worn = _kinds(sim_scenario.events(data, ["compressor_wear"], RUN_HOURS, seed), "anomaly", "compressor_current")
        assert worn and ONSET_MS <= worn[0][2] < ONSET_MS + HOUR_MS, (seed, worn)
    assert early <= 1


@pytest.mark.heavy
def test_the_fridge_gives_the_same_events_on_the_micropython_unix_port(fridge_json: bytes, tmp_path: str) -> None:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    path = os.path.join(str(tmp_path), "fridge.json")
    with open(path, "wb") as f:
        f.write(fridge_json)
    code = (
        "import gc, json\n"
        "from tests import sim_scenario\n"
        "with open(%r, 'rb') as f:\n"
        "    data = f.read()\n"
        "for faults in %r:\n"
        "    gc.collect()\n"
        "    for e in sim_scenario.events(data, faults, %d, 1):\n"
        "        print(json.dumps(e))\n"
        "    print('END')\n"
        # A phase without a name is shown capitalised (MicroPython's str has no capitalize).
        "from agent.core import processors\n"
        "print(json.dumps(processors.ChannelInfo({'id': 'x', 'unit': 'A'}, ['idle', 'pre_wash'], {}, None)"
        ".phase_name('PRE_wash')['en']))\n" % (path, [list(s) for s in SCENARIOS], RUN_HOURS)
    )
    out = micropython_unix.run(code, heap=HEAP)
    runs: list = [[]]
    for line in out.splitlines():
        if line == "END":
            runs.append([])
        else:
            runs[-1].append(json.loads(line))
    expected = [json.loads(json.dumps(sim_scenario.events(fridge_json, s, RUN_HOURS, 1))) for s in SCENARIOS]
    assert runs[-1] == ["Pre wash"]
    assert runs[:-1] == expected
    assert _kinds(runs[1], "anomaly", "compressor_current")  # found there too, not only equal


# -- each fault kind, on the readings --------------------------------------------------------------
def _pair(profile: dict, fault: str, channels: tuple, hours: float = 8, step_ms: int = 5000) -> list:
    """[(t, phase, {channel: healthy}, {channel: faulty or the SensorError})] at every step_ms,
    the same seed with and without the fault."""
    clean = profile_model.build(profile, 3)
    broken = profile_model.build(profile, 3, [fault])
    out = []
    for t in range(0, int(hours * HOUR_MS), step_ms):
        phase = clean.phase(t)
        assert broken.phase(t) == phase  # a sensor fault never changes the appliance
        a = {ch: clean.read(ch, t) for ch in channels}
        b: dict = {}
        for ch in channels:
            try:
                b[ch] = broken.read(ch, t)
            except SensorError as e:
                b[ch] = e
        out.append((t, phase, a, b))
    return out


CHANNELS = ("cabinet_temp", "compressor_current", "door")


def test_step_adds_its_size_in_its_phase_only_from_the_onset(fridge: dict) -> None:
    rows = _pair(fridge, "compressor_wear", CHANNELS)
    stepped = 0
    for t, phase, a, b in rows:
        assert a["cabinet_temp"] == b["cabinet_temp"] and a["door"] == b["door"]  # the others untouched
        diff = b["compressor_current"] - a["compressor_current"]
        if t >= ONSET_MS and phase == "cooling":
            assert diff == pytest.approx(1.2)
            stepped += 1
        else:
            assert diff == 0
    assert stepped > 100


def test_drift_grows_by_its_size_per_hour_from_the_onset(fridge: dict) -> None:
    rows = _pair(fridge, "sensor_drift", CHANNELS)
    since = min(t for t, _, _, _ in rows if t >= ONSET_MS)
    for t, _, a, b in rows:
        expected = 0.0 if t < ONSET_MS else 2.0 * (t - since) / HOUR_MS
        assert b["cabinet_temp"] - a["cabinet_temp"] == pytest.approx(expected, abs=1e-9)
        assert a["compressor_current"] == b["compressor_current"]
    # A drifting reading is not kept within the range: 4 hours at 2 degC/h from about 5 degC.
    assert rows[-1][3]["cabinet_temp"] > 12


def test_stuck_repeats_the_last_reading_before_its_onset_cycle(fridge: dict) -> None:
    sim = profile_model.build(fridge, 3, ["sensor_stuck"])
    before = []
    after = []
    for t in range(0, 8 * HOUR_MS, 5000):
        value = sim.read("cabinet_temp", t)
        (after if sim.cycle >= 3 else before).append(value)
    assert len(set(before)) > 100  # a live sensor before
    assert set(after) == {before[-1]} and len(after) > 1000


def test_noise_adds_noise_of_its_size(fridge: dict) -> None:
    rows = _pair(fridge, "clamp_noise", CHANNELS, hours=12, step_ms=2000)
    diffs = [b["compressor_current"] - a["compressor_current"] for t, _, a, b in rows if t >= ONSET_MS]
    assert all(b["compressor_current"] == a["compressor_current"] for t, _, a, b in rows if t < ONSET_MS)
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs))
    assert abs(mean) < 0.02 and 0.28 < sd < 0.32, (mean, sd)
    assert min(b["compressor_current"] for _, _, _, b in rows) < 0  # noise may leave the range


def test_the_simulator_knows_the_fault_kinds_the_profile_allows_and_no_other() -> None:
    assert engine.SENSOR_FAULT_KINDS == core_profile.SIM_FAULT_KINDS
    with pytest.raises(ConfigError, match="sensor fault kind 'melt'; known: drift, step, stuck, noise, dropout"):
        engine.SensorFault("f", "melt", "door")


def test_dropout_gives_no_reading_as_absent_and_a_share_when_sized(fridge: dict) -> None:
    rows = _pair(fridge, "probe_lost", CHANNELS)
    for t, _, a, b in rows:
        if t < ONSET_MS:
            assert b["cabinet_temp"] == a["cabinet_temp"]
        else:
            assert isinstance(b["cabinet_temp"], SensorError) and b["cabinet_temp"].reason == "absent"
            assert "probe_lost" in str(b["cabinet_temp"])
        assert b["door"] == a["door"]
    half = copy.deepcopy(fridge)
    half["simulation"]["faults"][4]["size"] = 0.25
    lost = [isinstance(b["cabinet_temp"], SensorError) for t, _, _, b in _pair(half, "probe_lost", CHANNELS)
            if t >= ONSET_MS]  # fmt: skip
    assert 0.2 < sum(lost) / len(lost) < 0.3


# -- the command line ---------------------------------------------------------------------------------
def test_run_simulate_takes_the_profiles_fault_and_finds_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--profile", FRIDGE, "--simulate", "--hours", "8", "--fault", "compressor_wear"]) == 0
    out = capsys.readouterr().out
    assert "1 unusual readings" in out and "Compressor current" in out
    assert main(["run", "--profile", FRIDGE, "--simulate", "--hours", "8"]) == 0
    assert "; 0 unusual readings" in capsys.readouterr().out


def test_simulate_writes_a_trace_with_dropouts_as_empty_cells(tmp_path: str) -> None:
    out = os.path.join(str(tmp_path), "fridge.csv")
    assert main(["simulate", "--profile", FRIDGE, "--output", out, "--hours", "6", "--fault", "probe_lost"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t_ms", "phase", "cabinet_temp", "compressor_current", "door"]
    at_ten_s = [r for r in rows[1:] if int(r[0]) % 10_000 == 0]  # cabinet_temp is due every 10 s
    assert all(r[2] != "" for r in at_ten_s if int(r[0]) < ONSET_MS)
    assert all(r[2] == "" for r in at_ten_s if int(r[0]) >= ONSET_MS) and at_ten_s[-1][3] != ""


@pytest.mark.parametrize(
    "profile,fault,words",
    [
        (FRIDGE, "pump_clog", "fault 'pump_clog' does not apply to fridge; known: the profile's: compressor_wear, "
         "sensor_drift, sensor_stuck, clamp_noise, probe_lost; built-in: none for this appliance"),
        (profile_loader.example("washing_machine"), "probe_lost", "fault 'probe_lost' does not apply to "
         "washing_machine; known: the profile's: none; built-in: bearing_wear, heater_fail, leak_idle, pump_clog"),
    ],
)  # fmt: skip
def test_a_fault_neither_knows_is_refused_listing_both(profile: str, fault: str, words: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert main(["run", "--profile", profile, "--simulate", "--hours", "1", "--fault", fault]) == 2
    assert words in capsys.readouterr().err


def test_a_profile_fault_named_like_a_built_in_one_is_refused_when_chosen() -> None:
    washer = profile_loader.load(profile_loader.example("washing_machine"))
    washer["simulation"] = {"program": None, "idle_s": None, "channels": [], "faults": [
        {"id": "pump_clog", "kind": "step", "channel": "motor_current", "size": 1, "phase": None, "onset_cycle": 1,
         "onset_h": None}]}  # fmt: skip
    washer = core_profile.validate(washer)
    with pytest.raises(ConfigError, match="'pump_clog' is both one of the profile's and a built-in one"):
        profile_model.build(washer, 1, ["pump_clog"])


# -- the built-in models are what they were --------------------------------------------------------
@pytest.mark.parametrize("kind", ["washing_machine", "coffee_machine", "dishwasher"])
def test_a_built_in_kind_simulates_as_before_whatever_its_drivers(kind: str) -> None:
    prof = profile_loader.load(profile_loader.example(kind))
    for ch in prof["channels"]:
        ch["driver"] = "adc"  # a real profile, tried on the simulator before the hardware exists
    faults = [f for f in sorted(FAULTS) if kind in FAULTS[f][0]][:1]
    drivers, phases = host.simulated(prof, 9, faults, 1, 2)
    before = make(kind, 9, faults, 1, 2)
    for t in range(0, 20 * HOUR_MS, 7000):
        assert phases.phase(t) == before.phase(t)
        for ch in prof["channels"]:
            assert drivers[ch["id"]].read(t) == before.read(ch["id"], t)


def test_a_built_in_model_takes_a_profiles_fault_beside_its_own() -> None:
    washer = profile_loader.load(profile_loader.example("washing_machine"))
    washer["simulation"] = {"faults": [{"id": "probe_lost", "kind": "dropout", "channel": "heater_temp",
                                        "onset_h": 2}]}  # fmt: skip
    washer = core_profile.validate(washer)
    assert profile_model.fault_names(washer) == (["probe_lost"], ["bearing_wear", "heater_fail", "leak_idle",
                                                                   "pump_clog"])  # fmt: skip
    drivers, _ = host.simulated(washer, 4, ["pump_clog", "probe_lost"], 1, 1)
    before = make("washing_machine", 4, ["pump_clog"], 1, 1)
    lost = 0
    for t in range(0, 10 * HOUR_MS, 5000):
        for ch in washer["channels"]:
            expected = before.read(ch["id"], t)
            if ch["id"] == "heater_temp" and t >= 2 * HOUR_MS:
                with pytest.raises(SensorError, match="absent"):
                    drivers["heater_temp"].read(t)
                lost += 1
            else:
                assert drivers[ch["id"]].read(t) == expected
    assert lost == 8 * HOUR_MS // 5000


def test_a_built_in_kind_with_a_channel_its_model_lacks_gets_a_derived_one() -> None:
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    extra = dict(prof["channels"][0], id="door_lock", unit="V", range=[0, 12], processors=[])
    prof["channels"].append(extra)
    sim = profile_model.build(core_profile.validate(prof), 2)
    values = {sim.phase(t): sim.read("door_lock", t) for t in range(0, 30 * HOUR_MS, 30_000)}
    assert set(values) == set(prof["phases"])
    assert all(0 <= v <= 12 for v in values.values()) and values["idle"] == pytest.approx(6, abs=0.2)


# -- defaults: every valid profile simulates ------------------------------------------------------------
_COFFEE = profile_loader.load(profile_loader.example("coffee_machine"))
_UNITS = ("A", "mA", "W", "l/min", "bar", "g", "rpm", "degC", "°C", "degF", "K", "ml", "%", "open", "lux", "ppm")


# Options each driver takes (the profile check refuses a linux_iio, adc or i2c channel without them).
_OPTIONS = {"linux_iio": {"device": 0, "input": 0}, "adc": {"pin": 34}, "i2c": {"chip": "ads1115", "address": 72}}


@st.composite
def profiles(draw: st.DrawFn) -> dict:
    """A valid profile of random channels and phases, with a random part of a simulation section."""
    phases = draw(st.lists(st.sampled_from(["idle", "rest", "heat", "wash", "spin", "cool", "brew", "dry", "a1"]),
                           min_size=1, max_size=5, unique=True))  # fmt: skip
    n = draw(st.integers(1, 6))
    channels = []
    for i in range(n):
        lo = draw(st.floats(-500, 500, allow_nan=False))
        span = draw(st.floats(0.01, 2000, allow_nan=False))
        driver = draw(st.sampled_from(core_profile.DRIVERS))
        channels.append({"id": "ch%d" % i, "unit": draw(st.sampled_from(_UNITS)), "driver": driver,
                         "driver_options": dict(_OPTIONS.get(driver, {})), "sample_hz": 1,
                         "range": [lo, lo + span]})  # fmt: skip
    prof = copy.deepcopy(_COFFEE)
    prof.update(phases=phases, channels=channels, consumables=[], phase_names={}, cycle_model=None)
    prof["appliance"]["kind"] = draw(st.sampled_from(["kettle", "fridge", "washing_machine", "oven"]))
    active = phases[1:]
    sim: dict = {"channels": [], "faults": []}
    if active and draw(st.booleans()):
        steps = draw(st.lists(st.sampled_from(active), min_size=1, max_size=6))
        sim["program"] = [{"phase": p, "seconds": draw(st.integers(1, 3000)), "every": draw(st.integers(1, 3))}
                          for p in steps]  # fmt: skip
        active = sorted(set(steps))
    if draw(st.booleans()):
        sim["idle_s"] = [draw(st.integers(60, 5000)), draw(st.integers(0, 3000))]
    for ch in channels:
        lo, hi = ch["range"]
        inside = st.floats(lo, hi, allow_nan=False)
        model = draw(st.sampled_from(["none", "phases", "thermal", "level", "switch"]))
        if model == "phases":
            table = {p: [draw(inside), draw(st.floats(0, (hi - lo), allow_nan=False))] for p in
                     draw(st.lists(st.sampled_from(phases), max_size=3, unique=True))}  # fmt: skip
            sim["channels"].append({"channel": ch["id"], "phases": table})
        elif model == "thermal" and active:
            ambient, target = draw(inside), draw(inside)
            if ambient != target:
                sim["channels"].append({"channel": ch["id"], "thermal": {
                    "phase": draw(st.sampled_from(active)), "ambient": ambient, "target": target,
                    "rate_per_s": draw(st.floats(1e-4, 10)), "sd": draw(st.floats(0, hi - lo))}})  # fmt: skip
        elif model == "level" and active and hi > 0.001:
            cap = draw(st.floats(max(lo, 0.001), hi))
            sim["channels"].append({"channel": ch["id"], "level": {
                "phase": draw(st.sampled_from(active)), "capacity": cap, "dose": draw(st.floats(0, cap))}})  # fmt: skip
        elif model == "switch":
            sim["channels"].append({"channel": ch["id"], "switch": {
                "per_hour": draw(st.floats(0.01, 100)), "high": draw(inside), "low": draw(inside)}})  # fmt: skip
    if draw(st.booleans()):
        prof["simulation"] = sim
    else:
        prof.pop("simulation", None)
    return core_profile.validate(prof)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prof=profiles(), seed=st.integers(0, 2**31))
def test_any_valid_profile_simulates_in_range(prof: dict, seed: int) -> None:
    drivers, phases = host.simulated(prof, seed, [])
    for t in range(0, 30 * HOUR_MS, 97_000):
        assert phases.phase(t) in prof["phases"]
        for ch in prof["channels"]:
            lo, hi = ch["range"]
            assert lo <= drivers[ch["id"]].read(t) <= hi


_FAULT_SIZES = {"drift": 5.0, "step": -3.0, "stuck": None, "noise": 2.0, "dropout": 0.5}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prof=profiles(), seed=st.integers(0, 2**31), kind=st.sampled_from(core_profile.SIM_FAULT_KINDS))
def test_a_fault_takes_readings_out_of_range_only_as_its_kind_says(prof: dict, seed: int, kind: str) -> None:
    sec = prof["simulation"] or {"program": None, "idle_s": None, "channels": []}
    sec["faults"] = [{"id": "f", "kind": kind, "channel": prof["channels"][0]["id"], "size": _FAULT_SIZES[kind],
                      "phase": None, "onset_cycle": None, "onset_h": 1}]  # fmt: skip
    prof["simulation"] = sec
    prof = core_profile.validate(prof)
    drivers, _ = host.simulated(prof, seed, ["f"])
    for t in range(0, 10 * HOUR_MS, 61_000):
        for ch in prof["channels"]:
            try:
                value = drivers[ch["id"]].read(t)
            except SensorError as e:
                assert kind == "dropout" and ch is prof["channels"][0] and t >= HOUR_MS and e.reason == "absent"
                continue
            if ch is not prof["channels"][0] or kind in ("stuck", "dropout") or t < HOUR_MS:
                assert ch["range"][0] <= value <= ch["range"][1]
            else:
                assert math.isfinite(value)


# -- the simulation section is checked like the rest of the profile ------------------------------------
def _with(change: object) -> dict:
    doc = profile_loader.load(FRIDGE)
    change(doc["simulation"])  # type: ignore[operator]
    return doc


def _set(path: tuple, value: object) -> object:
    def change(sim: dict) -> None:
        where = sim
        for key in path[:-1]:
            where = where[key]
        where[path[-1]] = value

    return change


def _ch(i: int) -> tuple:
    return ("channels", i)


@pytest.mark.parametrize(
    "change,where,expected",
    [
        (_set(("program", 0, "phase"), "idle"), "simulation.program[0].phase", "other than the resting one (idle)"),
        (_set(("program", 0, "phase"), "thaw"), "simulation.program[0].phase", "one of phases other than"),
        (_set(("program", 0, "seconds"), 0), "simulation.program[0].seconds", "a number from 1 to 86400"),
        (_set(("program", 1, "every"), 1.5), "simulation.program[1].every", "a whole number from 1 to 1000"),
        (_set(("program",), []), "simulation.program", "a list of 1 to 32 items"),
        (_set(("idle_s",), [10, 1]), "simulation.idle_s[0]", "a number from 60 to 86400"),
        (_set(("idle_s",), [600, -1]), "simulation.idle_s[1]", "a number from 0 to"),
        (_set(("idle_s",), 600), "simulation.idle_s", "a pair [mean, sd] of numbers"),
        (_set(_ch(0) + ("channel",), "freezer_temp"), "simulation.channels[0].channel", "the id of one of channels"),
        (_set(_ch(1) + ("channel",), "cabinet_temp"), "simulation.channels[1].channel", "not described earlier"),
        (_set(_ch(0) + ("phases",), {"cooling": [1, 0]}), "simulation.channels[0]", "exactly one model"),
        (_set(_ch(1) + ("phases",), None), "simulation.channels[1]", "exactly one model"),
        (
            _set(_ch(1) + ("phases", "cooling"), [7, 0.1]),
            "simulation.channels[1].phases.cooling[0]",
            "within the channel's range [0, 6]",
        ),
        (_set(_ch(1) + ("phases", "thaw"), [1, 0.1]), "simulation.channels[1].phases.thaw", "one of phases"),
        (_set(_ch(1) + ("phases", "cooling"), [1]), "simulation.channels[1].phases.cooling", "a pair [mean, sd]"),
        (_set(_ch(0) + ("thermal", "target"), 22), "simulation.channels[0].thermal.target", "other than ambient"),
        (_set(_ch(0) + ("thermal", "ambient"), 40), "simulation.channels[0].thermal.ambient", "within the channel"),
        (_set(_ch(0) + ("thermal", "start"), -20), "simulation.channels[0].thermal.start", "within the channel"),
        (_set(_ch(0) + ("thermal", "phase"), "idle"), "simulation.channels[0].thermal.phase", "the resting one"),
        (_set(_ch(0) + ("thermal", "rate_per_s"), 0), "simulation.channels[0].thermal.rate_per_s", "1e-06"),
        (_set(_ch(0) + ("thermal", "cold"), 1), "simulation.channels[0].thermal.cold", "one of the known keys"),
        (_set(_ch(2) + ("switch", "high"), 2), "simulation.channels[2].switch.high", "within the channel's range"),
        (_set(_ch(2) + ("switch", "per_hour"), 0), "simulation.channels[2].switch.per_hour", "0.01 to 3600"),
        (_set(("faults", 0, "channel"), "fan"), "simulation.faults[0].channel", "the id of one of channels"),
        (_set(("faults", 0, "phase"), "thaw"), "simulation.faults[0].phase", "one of phases"),
        (_set(("faults", 1, "id"), "compressor_wear"), "simulation.faults[1].id", "not used earlier"),
        (_set(("faults", 0, "kind"), "melt"), "simulation.faults[0].kind", "one of drift, dropout, noise, step"),
        (_set(("faults", 0, "onset_cycle"), 2), "simulation.faults[0]", "either onset_cycle or onset_h"),
        (_set(("faults", 0, "onset_h"), None), "simulation.faults[0]", "either onset_cycle or onset_h"),
        (_set(("faults", 0, "onset_h"), -1), "simulation.faults[0].onset_h", "a number from 0"),
        (_set(("faults", 0, "size"), None), "simulation.faults[0].size", "the size of the step"),
        (_set(("faults", 2, "size"), 1), "simulation.faults[2].size", "no size: a stuck sensor"),
        (_set(("faults", 3, "size"), 0), "simulation.faults[3].size", "standard deviation, above 0"),
        (_set(("faults", 4, "size"), 2), "simulation.faults[4].size", "above 0 and at most 1"),
        (_set(("faults", 4, "size"), 0), "simulation.faults[4].size", "above 0 and at most 1"),
        (_set(("speed",), 2), "simulation.speed", "one of the known keys"),
    ],
)
def test_a_bad_simulation_section_is_refused_naming_where(change: object, where: str, expected: str) -> None:
    with pytest.raises(ProfileError) as e:
        core_profile.validate(_with(change))
    assert str(e.value).startswith(where + ": got "), str(e.value)
    assert expected in str(e.value)


def test_a_thermal_or_level_phase_must_run_in_the_program() -> None:
    def change(sim: dict) -> None:
        sim["program"] = [{"phase": "defrost", "seconds": 600}]

    expected = r"simulation.channels\[0\].thermal.phase: got 'cooling' \(str\); expected a phase of simulation.program"
    with pytest.raises(ProfileError, match=expected + r" \(defrost\)"):
        core_profile.validate(_with(change))

    def level(sim: dict) -> None:
        sim["channels"][2] = {"channel": "door", "level": {"phase": "cooling", "capacity": 2, "dose": 0.1}}

    expected = r"simulation.channels\[2\].level.capacity: got 2 \(int\); expected a value within the channel"
    with pytest.raises(ProfileError, match=expected):
        core_profile.validate(_with(level))


def _faults(n: int) -> object:
    def change(sim: dict) -> None:
        sim["faults"] = [{"id": "f%d" % i, "kind": "stuck", "channel": "door", "onset_cycle": i} for i in range(n)]

    return change


def _steps(n: int) -> object:
    def change(sim: dict) -> None:
        sim["program"] = [{"phase": "cooling", "seconds": 60}] * n

    return change


def test_the_sections_lists_at_their_bounds() -> None:
    assert len(core_profile.validate(_with(_faults(limits.SIM_MAX_FAULTS)))["simulation"]["faults"]) == 16
    with pytest.raises(ProfileError, match=r"simulation.faults: got .*; expected a list of 0 to 16 items"):
        core_profile.validate(_with(_faults(limits.SIM_MAX_FAULTS + 1)))
    assert len(core_profile.validate(_with(_steps(limits.SIM_MAX_PROGRAM_STEPS)))["simulation"]["program"]) == 32
    with pytest.raises(ProfileError, match=r"simulation.program: got .*; expected a list of 1 to 32 items"):
        core_profile.validate(_with(_steps(limits.SIM_MAX_PROGRAM_STEPS + 1)))
    at_most = _with(_set(("program", 0, "seconds"), limits.SIM_MAX_SECONDS))
    assert core_profile.validate(at_most)["simulation"]["program"][0]["seconds"] == 86_400
