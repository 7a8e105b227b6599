"""Consent on the host: the journal survives power cuts, the CLI records receipts, export
and erasure work, and the minimization benchmark reports its interface."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agent import profile_loader
from agent.cli import main
from agent.core import journal, limits
from agent.core.consent import ConsentLedger
from agent.device import close_device, open_device
from agent.device import set_consent as device_set_consent
from agent.device_data import JOURNAL, DeviceData
from tests.benchmarks import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASHER = profile_loader.example("washing_machine")
PROFILE = profile_loader.load(WASHER)


def _ledger() -> ConsentLedger:
    return ConsentLedger(PROFILE["data_categories"], "dev")


def _with_receipts(root: str, choices: list) -> bytes:
    data = DeviceData(root)
    led = _ledger()
    for cat, on in choices:
        data.append_receipt(led.set(cat, on, 0))
    with open(os.path.join(root, JOURNAL), "rb") as f:
        return f.read()


def test_journal_round_trip(tmp_path: str) -> None:
    _with_receipts(str(tmp_path), [("maintenance", True), ("usage_statistics", True), ("usage_statistics", False)])
    led = _ledger()
    assert DeviceData(str(tmp_path)).load_consent(led) == ([], False)
    assert led.choices()["maintenance"] == "on" and led.choices()["usage_statistics"] == "off"
    assert len(led.history) == 3


def test_the_journal_stays_within_its_bound_and_keeps_every_choice(tmp_path: str) -> None:
    root = str(tmp_path)
    agent, data, _ = open_device(PROFILE, root, "dev")
    try:
        device_set_consent(agent, data, "consumables", True, 0, 0)
        for i in range(3 * limits.CONSENT_HISTORY_LEN):
            while len(agent.outbox):  # as if delivered: receipts are never dropped, so the outbox would fill
                agent.outbox.ack()
            device_set_consent(agent, data, "maintenance", i % 2 == 0, 0, 0)
            # The file never holds more than the bound (plus the one just appended).
            with open(os.path.join(root, JOURNAL), "rb") as f:
                assert len(journal.decode(f.read())[0]) <= limits.CONSENT_HISTORY_LEN + 1
    finally:
        close_device(agent, data)
    led = _ledger()
    assert DeviceData(root).load_consent(led) == ([], False)
    assert led.choices() == agent.consent.choices()
    assert led.choices()["consumables"] == "on" and led.choices()["maintenance"] == "off"
    assert [r["seq"] for r in led.history] == [r["seq"] for r in agent.consent.history]
    # A journal written longer than the bound (an older version) is trimmed at load.
    long = _with_receipts(str(tmp_path / "old"), [("maintenance", i % 2 == 0) for i in range(100)])
    assert len(journal.decode(long)[0]) == 100
    led = _ledger()
    assert DeviceData(str(tmp_path / "old")).load_consent(led) == ([], False)
    with open(os.path.join(str(tmp_path / "old"), JOURNAL), "rb") as f:
        assert len(journal.decode(f.read())[0]) == len(led.history) <= limits.CONSENT_HISTORY_LEN
    assert led.choices()["maintenance"] == "off"


def test_a_write_cut_at_any_byte_loses_only_that_change(tmp_path: str) -> None:
    full = _with_receipts(str(tmp_path), [("maintenance", True), ("usage_statistics", True)])
    first = len(journal.encode(ConsentLedger.record(_ledger().set("maintenance", True, 0))))
    for cut in range(first, len(full)):
        with open(os.path.join(str(tmp_path), JOURNAL), "wb") as f:
            f.write(full[:cut])
        led = _ledger()
        problems, lost = DeviceData(str(tmp_path)).load_consent(led)
        assert not lost
        assert led.choices()["maintenance"] == "on"
        assert led.choices()["usage_statistics"] == ("on" if cut == len(full) else "off")
        assert (problems == []) == (cut in (first, len(full)))
        if problems:
            assert "not completely written" in problems[0]


def test_a_damaged_journal_falls_back_to_privacy_by_default(tmp_path: str) -> None:
    full = _with_receipts(str(tmp_path), [("maintenance", True), ("usage_statistics", True)])
    damaged = bytearray(full)
    damaged[20] ^= 0xFF  # inside the first record
    with open(os.path.join(str(tmp_path), JOURNAL), "wb") as f:
        f.write(bytes(damaged))
    led = _ledger()
    problems, lost = DeviceData(str(tmp_path)).load_consent(led)
    assert lost and problems and "damaged" in problems[0] and "all optional categories are off" in problems[0]
    assert led.choices() == {"essential": "on", "maintenance": "off", "usage_statistics": "off", "consumables": "off"}
    # The bad journal was replaced: the next start is clean.
    assert DeviceData(str(tmp_path)).load_consent(_ledger()) == ([], False)


_WRITER = """
import sys
sys.path.insert(0, %r)
from agent import profile_loader
from agent.core.consent import ConsentLedger
from agent.device_data import DeviceData
prof = profile_loader.load(profile_loader.example("washing_machine"))
led = ConsentLedger(prof["data_categories"], "dev")
data = DeviceData(sys.argv[1])
i = 0
while True:
    i += 1
    data.append_receipt(led.set("maintenance", i %% 2 == 1, i))
    print(i, flush=True)
"""


def test_killed_while_writing_consent_the_journal_still_loads(tmp_path: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER % ROOT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(50):
        proc.stdout.readline()
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    led = _ledger()
    problems, lost = DeviceData(str(tmp_path)).load_consent(led)
    assert not lost
    last = led.history[-1]["seq"]  # receipt i switched maintenance on when i is odd
    assert last >= 50 and len(led.history) <= limits.CONSENT_HISTORY_LEN
    # Whatever was last completely written is the state; nothing else.
    assert led.choices()["maintenance"] == ("on" if last % 2 == 1 else "off")
    assert all("not completely written" in p for p in problems)


def test_cli_consent_export_and_erase(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    base = ["--profile", WASHER, "--data-dir", d]
    assert main(["consent", "show", *base]) == 0
    assert "maintenance        off" in capsys.readouterr().out
    assert main(["consent", "set", "maintenance", "on", *base]) == 0
    assert "maintenance is now on (receipt 1" in capsys.readouterr().out
    assert main(["consent", "set", "essential", "off", *base]) == 2
    assert "cannot be off" in capsys.readouterr().err
    assert main(["run", "--profile", WASHER, "--simulate", "--hours", "26", "--data-dir", d, "--consent",
                 "usage_statistics"]) == 0  # fmt: skip
    assert main(["consent", "set", "usage_statistics", "off", *base]) == 0
    out = os.path.join(d, "export.json")
    assert main(["data", "export", *base, "-o", out]) == 0
    with open(out) as f:
        exported = json.load(f)
    assert exported["format"] == "wichtel-export/1"
    assert exported["consent"]["current"] == {"essential": "on", "maintenance": "on", "usage_statistics": "off",
                                              "consumables": "off"}  # fmt: skip
    assert [r["choice"] for r in exported["consent"]["history"]] == ["on", "on", "off"]
    assert exported["events"] and exported["learned"]["consumables"]["detergent"]["usage"][0] > 0
    kinds = [json.loads(m["payload"])["kind"] for m in exported["outbox"]]
    assert "erasure_request" in kinds and not any(m["category"] == "usage_statistics" for m in exported["outbox"])
    capsys.readouterr()
    assert main(["data", "erase", *base]) == 0
    said = capsys.readouterr().out
    # One per optional category, and the one still waiting from switching statistics off.
    assert "All optional categories are off" in said and "4 erasure requests wait" in said
    assert main(["data", "export", *base, "-o", out]) == 0
    with open(out) as f:
        after = json.load(f)
    assert after["consent"]["history"] == [] and after["events"] == [] and after["sent"] == []
    assert after["consent"]["current"]["maintenance"] == "off"


def test_minimization_benchmark_interface(tmp_path: str) -> None:
    _, result = run_bench("minimization.py", str(tmp_path), "--days", "0.1")
    assert set(result) == {"washing_machine", "coffee_machine", "dishwasher"}
    for r in result.values():
        for key in ("raw_bytes", "essential_bytes", "all_bytes", "telemetry_300s_bytes", "faults_injected",
                    "faults_delivered"):  # fmt: skip
            assert key in r
        assert r["all_bytes"] < r["telemetry_300s_bytes"] < r["raw_bytes"]


def test_factory_reset_keeps_only_permanent_identity(tmp_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    ident = os.path.join(d, "identity")
    os.makedirs(ident)
    for name in ("device.crt", "device.key", "factory-id.txt"):
        with open(os.path.join(ident, name), "w") as f:
            f.write(name)
    with open(os.path.join(ident, "permanent.json"), "w") as f:
        json.dump(["factory-id.txt"], f)
    base = ["--profile", WASHER, "--data-dir", d]
    assert main(["consent", "set", "maintenance", "on", *base]) == 0
    assert main(["data", "factory-reset", *base]) == 0
    out = capsys.readouterr().out
    assert "Identity material removed: device.crt, device.key." in out
    assert sorted(os.listdir(ident)) == ["factory-id.txt", "permanent.json"]
    led = _ledger()
    assert DeviceData(d).load_consent(led) == ([], False) and led.choices()["maintenance"] == "off"
