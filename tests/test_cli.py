"""The wichtel command end to end: demo, run on each example, record and replay, bad input."""

import json
import os
import subprocess
import sys

import pytest

from agent import profile_loader
from agent.cli import main
from tests import timeouts
from tests.conftest import EXAMPLES


def _wichtel(*args: str) -> subprocess.CompletedProcess[str]:
    return timeouts.run([sys.executable, "-m", "agent", *args], 120, capture_output=True, text=True)


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """One run of `wichtel demo`, which the tests of its output share."""
    return _wichtel("demo")


def test_demo_runs_to_completion_and_finds_the_clogging_pump(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "measured (phase" in out
    assert "decided: maintenance alert on motor_current, phase drain (cycle_feature" in out
    assert "en: Draining took 30% longer than usual over the last 3 cycles" in out
    assert "de: Abpumpen dauerte 30 % länger als üblich (in den letzten 3 Zyklen)" in out
    assert "would send to wichtel/v1/dev-1/maintenance" in out and "why: you switched on 'maintenance'" in out
    assert "Off (the default, nothing optional leaves without consent): usage_statistics, consumables" in out
    # Nothing but the consented category would leave, and it arrived at the local broker.
    sends = [line for line in out.splitlines() if "would send to" in line]
    assert sends and all("/maintenance:" in line for line in sends)
    assert "A local Mosquitto listens on port" in out
    # One alert for the clogging pump: raised by the first finding, joined by the others.
    assert "Arrived upstream at the operator's service: " in out and "3 maintenance" in out
    upstream = [line for line in out.splitlines() if line.startswith("  wichtel/v1/dev-1/maintenance ")]
    states = [json.loads(line.split(" ", 3)[3])["data"]["state"] for line in upstream]
    assert states[0] == "raised" and set(states[1:]) <= {"joined", "worse"}


def test_demo_prints_each_message_once_and_its_counts_agree(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    # Each message once: a consented event when it is decided, the device's own when it leaves.
    printed = [line.split("dev-1/", 1)[1] for line in out.splitlines()
               if "would send to wichtel/v1/dev-1/" in line or "] sent to wichtel/v1/dev-1/" in line]  # fmt: skip
    ids = [json.loads(line.split(": ", 1)[1])["id"] for line in printed]
    assert ids and len(ids) == len(set(ids)), printed
    took = int(out.split("the broker took ")[1].split()[0])
    arrived = int(out.split("Arrived upstream at the operator's service: ")[1].split()[0])
    assert took == arrived == len(ids), (took, arrived, len(ids))


def _demo_args(tmp: str, page: str) -> object:
    import argparse

    return argparse.Namespace(
        profile=profile_loader.example("washing_machine"), replay=None, seed=7, fault=[], fault_onset=8, fault_ramp=4,
        consent=[], device_id="dev-1", speed=0.0, hours=0.2, broker=None, page=page, demo_setup_code=True,
        stay=False, data_dir=tmp,
    )  # fmt: skip


def test_the_demo_page_binds_before_it_prints_its_address_and_code(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from agent import cli

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        with pytest.raises(cli.UsageError, match="another program uses this port: choose another, or port 0"):
            cli.run_device(_demo_args(os.path.join(tmp_path, "a"), "127.0.0.1:%d" % busy.getsockname()[1]))
    finally:
        busy.close()
    out = capsys.readouterr().out
    assert "Setup code" not in out and "The local privacy page" not in out  # nothing to type into another program
    assert cli.run_device(_demo_args(os.path.join(tmp_path, "b"), "127.0.0.1:0")) == 0  # any free port
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("The local privacy page: http://127.0.0.1:"))
    port = int(lines[at].split("127.0.0.1:")[1].split("/")[0])
    assert port > 0 and lines[at + 1].startswith("Setup code of the demo device (printed on its label): ")


def test_demo_shows_the_reorder_suggestion_kept_local(demo: subprocess.CompletedProcess[str]) -> None:
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    found = [k for k, line in enumerate(lines) if "decided: reorder suggested for detergent" in line]
    assert found, demo.stdout[-2000:]
    for i in found:
        # Brand-neutral, in both languages; it says so when a delivery would come too late.
        assert "reorder Liquid detergent from any shop you like" in lines[i + 1]
        assert "Flüssigwaschmittel bei einem Händler Ihrer Wahl" in lines[i + 2]
        days = int(lines[i + 1].split("runs out in about ")[1].split()[0])
        assert ("before a delivery could arrive (3 days)" in lines[i + 1]) == (days < 3), lines[i + 1]
        assert "shown on the local page only (your choice for reorders: remind me); nothing leaves" in lines[i + 3]
    assert not any("would send to wichtel/v1/dev-1/consumables" in line for line in lines)


@pytest.mark.parametrize("kind", EXAMPLES)
def test_run_simulates_each_example(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--profile", profile_loader.example(kind), "--simulate", "--hours", "12", "--seed", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Done:" in out and "0 messages would be sent" in out  # no consent given


def test_replayed_trace_gives_the_same_decisions_as_the_live_simulation(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = profile_loader.example("washing_machine")
    trace = os.path.join(str(tmp_path), "trace.csv")
    # A day in which the clogging drain pump is found (at 22:34 of day 0).
    common = ["--hours", "24", "--seed", "1", "--fault", "pump_clog", "--fault-onset", "3", "--fault-ramp", "1"]
    assert main(["simulate", "--profile", prof, "--output", trace, *common]) == 0
    capsys.readouterr()
    assert main(["run", "--profile", prof, "--simulate", "--consent", "maintenance", *common]) == 0
    live = [line for line in capsys.readouterr().out.splitlines() if "decided:" in line]
    # Without --hours the replay runs to the end of its trace: the same day.
    assert main(["run", "--profile", prof, "--replay", trace, "--consent", "maintenance"]) == 0
    out = capsys.readouterr().out
    replayed = [line for line in out.splitlines() if "decided:" in line]
    assert any("maintenance alert on motor_current, phase drain" in line for line in live), live
    assert replayed == live
    assert "over 24 simulated hours" in out


def test_a_replay_runs_to_the_end_of_its_trace_unless_hours_says_otherwise(
    tmp_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = profile_loader.example("washing_machine")
    trace = os.path.join(str(tmp_path), "trace.csv")
    assert main(["simulate", "--profile", prof, "--output", trace, "--hours", "2"]) == 0
    assert "2 simulated hours" in capsys.readouterr().out
    assert main(["run", "--profile", prof, "--replay", trace]) == 0
    # Every row was sampled at the profile's rates (2.75 a second): two hours of them.
    assert "Done: %d samples over 2 simulated hours" % (2.75 * 7200) in capsys.readouterr().out
    assert main(["run", "--profile", prof, "--replay", trace, "--hours", "3"]) == 0
    assert "Done: %d samples over 3 simulated hours" % (2.75 * 10800) in capsys.readouterr().out
    assert main(["simulate", "--profile", prof, "--output", trace]) == 0
    assert "72 simulated hours" in capsys.readouterr().out  # the default of a simulation


def test_a_trace_with_a_phase_the_profile_lacks_is_refused(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    trace = os.path.join(str(tmp_path), "fridge.csv")
    with open(trace, "w") as f:
        f.write("t_ms,phase,motor_current,drum_vibration,inlet_flow,heater_temp,detergent_level\n"
                "0,idle,0.1,0.0,0.0,18.0,1400\n1000,defrost,0.1,0.0,0.0,18.0,1400\n")  # fmt: skip
    code = main(["run", "--profile", profile_loader.example("washing_machine"), "--replay", trace])
    err = capsys.readouterr().err
    assert code == 2
    assert trace + ":3: phase 'defrost' is not one of the profile's phases (idle, fill, heat, wash, drain, spin)" in err


@pytest.mark.parametrize(
    "content,words",
    [
        ("time,value\n1,2\n", ":1: expected the header t_ms,phase"),
        ("t_ms,phase,motor_current\n0,idle,1.0\n1000,idle\n", ":3: expected 3 cells, got 2"),
        ("t_ms,phase,motor_current\n0,idle,1.0\nsoon,idle,1.0\n", ":3: t_ms 'soon' is not a whole number"),
        ("t_ms,phase,motor_current\n0,idle,1.0\n0,idle,1.0\n", ":3: t_ms 0 is not after"),
        ("t_ms,phase,motor_current\n0,idle,lots\n", ":2: motor_current 'lots' is not a finite number"),
        ("t_ms,phase,motor_current\n0,idle,inf\n", ":2: motor_current 'inf' is not a finite number"),
        ("t_ms,phase,motor_current\n", ":2: no rows after the header: nothing to replay"),
    ],
)
def test_bad_trace_names_the_line(content: str, words: str, tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    trace = os.path.join(str(tmp_path), "bad.csv")
    with open(trace, "w") as f:
        f.write(content)
    code = main(["run", "--profile", profile_loader.example("washing_machine"), "--replay", trace, "--hours", "1"])
    err = capsys.readouterr().err
    assert code == 2 and trace + words in err


def test_trace_missing_a_channel(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    trace = os.path.join(str(tmp_path), "t.csv")
    with open(trace, "w") as f:
        f.write("t_ms,phase,motor_current\n0,idle,1.0\n")
    code = main(["run", "--profile", profile_loader.example("washing_machine"), "--replay", trace])
    assert code == 2 and "no column for channel 'drum_vibration'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,words",
    [
        (["--consent", "marketing"], "no data category 'marketing'; known: consumables, essential"),
        (["--consent", "essential"], None),
        (["--fault", "scale_buildup"], "does not apply to washing_machine"),
    ],
)
def test_bad_run_arguments(args: list, words: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--profile", profile_loader.example("washing_machine"), "--simulate", "--hours", "1", *args])
    if words is None:  # switching on what is always on is harmless
        assert code == 0
        return
    assert code == 2 and words in capsys.readouterr().err


def test_speed_runs_faster_than_real_time(capsys: pytest.CaptureFixture[str]) -> None:
    # 2 simulated minutes at 600x: well under a second of real time, all channels sampled.
    code = main(["run", "--profile", profile_loader.example("coffee_machine"), "--simulate", "--speed", "600",
                 "--hours", "0.0334"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    samples = int(out.split("Done: ", 1)[1].split(" ", 1)[0])
    # 3.21 samples per simulated second for 120 s: never more (no slot sampled twice);
    # slots missed on a busy machine are skipped, so how many fewer depends on the load.
    assert 0 < samples <= 390


def test_the_narrator_explains_every_reason_the_gate_gives() -> None:
    import io

    from agent.core import gate
    from agent.core.events import ANOMALY, Event
    from agent.demo import Narrator

    reasons = [v for k, v in vars(gate).items() if k.isupper() and isinstance(v, str) and k != "DAY_MS"]
    assert "over_budget" in reasons and "before_consent" in reasons
    prof = profile_loader.load(profile_loader.example("washing_machine"))
    out = io.StringIO()
    narrator = Narrator(prof, out=out)
    fields = {"detector": "anomaly", "score": 0.9, "explanation_en": "en", "explanation_de": "de"}
    for reason in reasons:
        if reason != gate.SENT:
            narrator(
                "decision", Event(ANOMALY, "maintenance", "motor_current", 0, "drain", fields), gate.Decision(reason)
            )
    assert out.getvalue().count("decided:") == len(reasons) - 1
