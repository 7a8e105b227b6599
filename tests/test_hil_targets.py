"""The hardware-in-the-loop targets themselves (hil_tests/targets.py): a board is found by
`mpremote connect list` within a bounded time, and when none is, the serial target says
what is missing; a device run that crashes or prints no result is reported with its output."""

import os
import stat
import sys

import pytest

from hil_tests import targets


def _fake_mpremote(tmp_path: "os.PathLike[str]", monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """An `mpremote` first on PATH that runs script (shell) for `mpremote connect list`."""
    path = os.path.join(tmp_path, "mpremote")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script + "\n")
    os.chmod(path, stat.S_IRWXU)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])


def test_a_board_on_usb_is_found_and_a_pc_serial_port_is_not(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mpremote(tmp_path, monkeypatch, "echo '/dev/ttyS0 None 0000:0000 None None'\n"
                   "echo '/dev/ttyUSB0 0001 10c4:ea60 Silicon_Labs CP2102'")  # fmt: skip
    assert targets.serial_ports() == (["/dev/ttyUSB0"], None)
    monkeypatch.delenv(targets.BROKER_HOST_ENV, raising=False)
    missing = targets.SerialTarget().missing()
    assert missing is not None and "/dev/ttyUSB0" in missing and targets.BROKER_HOST_ENV in missing
    monkeypatch.setenv(targets.BROKER_HOST_ENV, "192.168.1.2")
    assert targets.SerialTarget().missing() is None
    monkeypatch.setenv(targets.PORT_ENV, "/dev/ttyACM3")
    assert "no board on WICHTEL_HIL_PORT=/dev/ttyACM3" in str(targets.SerialTarget().missing())


def test_no_board_says_what_to_attach(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mpremote(tmp_path, monkeypatch, "echo '/dev/ttyS0 None 0000:0000 None None'")
    missing = str(targets.SerialTarget().missing())
    assert missing.startswith("no board attached: `mpremote connect list` lists no serial device")
    _fake_mpremote(tmp_path, monkeypatch, "echo 'no permission' >&2; exit 3")
    assert "failed (exit 3): no permission" in str(targets.SerialTarget().missing())


def test_listing_the_ports_is_bounded_in_time(tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_mpremote(tmp_path, monkeypatch, "exec sleep 30")
    ports, problem = targets.serial_ports(timeout_s=0.5)
    assert ports == [] and "did not answer within 0 s" in str(problem)


def test_the_serial_target_copies_the_bundle_and_the_trace_and_runs_the_runtime(
    tmp_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = targets.SerialTarget()
    target._port = "/dev/ttyUSB0"
    argv, _ = target.command("/b/bundle", ["--data-dir", "/w/data", "--trace", "/g/trace.csv", "--seconds", "2"])
    assert argv[1:7] == ["connect", "/dev/ttyUSB0", "cp", "-r", "/b/bundle/", ":hil_bundle"]
    assert argv[7:11] == ["+", "cp", "/g/trace.csv", ":hil_trace.csv"]
    assert (
        argv[11:13] == ["+", "exec"] and "runtime.main(['--bundle', 'hil_bundle', '--data-dir', 'hil_data'" in argv[13]
    )


class _Crash(targets.SimTarget):
    def command(self, bundle: str, options: list) -> tuple:
        return [sys.executable, "-c", "print('log: starting'); raise SystemExit(3)"], dict(os.environ)


def test_a_run_that_ends_badly_is_reported_with_its_output(tmp_path: str) -> None:
    run = _Crash().start("bundle", "data", [], os.path.join(tmp_path, "out"))
    with pytest.raises(targets.HilError, match="exited with 3 and no result:\nlog: starting"):
        run.result(30)


def test_targets_by_name() -> None:
    assert [targets.target(n).name for n in ("sim", "micropython", "serial")] == ["sim", "micropython", "serial"]
    with pytest.raises(KeyError, match="no target 'esp'"):
        targets.target("esp")
