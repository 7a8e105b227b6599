"""The device's files: one writer (agent/files.py), every file 0600 and every directory
0700 whatever the umask, and a full disk that keeps the old state and is said, not a
traceback. The disk fills for real on a small tmpfs where mounting is allowed, and by
an injected ENOSPC at the file layer everywhere."""

import argparse
import asyncio
import errno
import os
import stat
import subprocess
from collections.abc import Iterator

import pytest

from agent import cli, device, device_data, files, outbox_files, profile_loader, setup_code
from agent.core import state_file
from agent.core.outbox import Outbox
from agent.device_data import JOURNAL, KEY, STATE, DeviceData
from agent.outbox_files import FileStore
from provisioning.local_broker import free_port

WASHER = profile_loader.example("washing_machine")
PROFILE = profile_loader.load(WASHER)


# -- modes ----------------------------------------------------------------------------------
@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: every mode below comes from the code, none from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _modes(root: str) -> dict:
    out = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    out["."] = stat.S_IMODE(os.lstat(root).st_mode)
    return out


def test_every_file_a_device_makes_is_private(tmp_path: object, open_umask: None) -> None:
    root = os.path.join(str(tmp_path), "device")
    base = ["--profile", WASHER, "--data-dir", root]
    # A run with consent and the local page (whose setup code the demo device makes).
    args = argparse.Namespace(
        profile=WASHER, replay=None, seed=7, fault=[], fault_onset=2, fault_ramp=2, consent=["usage_statistics",
        "maintenance"], device_id="dev-1", speed=0.0, hours=14.0, broker=None, page="127.0.0.1:%d" % free_port(),
        demo_setup_code=True, stay=False, data_dir=root, reorder_choice=[],
    )  # fmt: skip
    assert cli.run_device(args) == 0
    assert cli.main(["consent", "set", "usage_statistics", "off", *base]) == 0
    export = os.path.join(str(tmp_path), "export.json")
    assert cli.main(["data", "export", *base, "-o", export]) == 0
    modes = _modes(root)
    for name in (JOURNAL, STATE, KEY, "outbox/outbox-000001.log", "identity/" + setup_code.FILE_NAME):
        assert name in modes, sorted(modes)
    assert {p: m for p, m in modes.items() if m != (0o700 if os.path.isdir(os.path.join(root, p)) else 0o600)} == {}
    assert not [p for p in modes if p.endswith(files.TMP_SUFFIX)]
    assert stat.S_IMODE(os.stat(export).st_mode) == 0o600  # the export is personal data too
    assert cli.main(["data", "erase", *base]) == 0
    assert {m for p, m in _modes(root).items() if not os.path.isdir(os.path.join(root, p))} == {0o600}


def test_an_older_wider_file_is_narrowed_and_a_stale_temp_file_cannot_widen(tmp_path: object, open_umask: None) -> None:
    d = str(tmp_path)
    journal = os.path.join(d, JOURNAL)
    with open(journal, "wb"):
        pass
    os.chmod(journal, 0o644)  # as an older version made it
    with files.open_append(journal) as f:
        files.write_all(f, b"x", 0)
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
    state = os.path.join(d, STATE)
    with open(state + files.TMP_SUFFIX, "wb"):
        pass
    os.chmod(state + files.TMP_SUFFIX, 0o666)  # left by a crash, readable by all
    files.write_atomic(state, b"{}")
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600 and not os.path.exists(state + files.TMP_SUFFIX)
    os.symlink(os.path.join(d, "elsewhere"), os.path.join(d, "key" + files.TMP_SUFFIX))
    with pytest.raises(OSError):  # a planted link is not followed
        files.write_atomic(os.path.join(d, "key"), b"secret")
    assert not os.path.exists(os.path.join(d, "elsewhere"))


def test_provisioning_keeps_its_modes_through_the_one_writer(tmp_path: object) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from provisioning import keys

    old = os.umask(0o077)
    try:
        cert = os.path.join(str(tmp_path), "device.crt")
        keys.write_atomic(cert, b"-----BEGIN CERTIFICATE-----\n")
        key = os.path.join(str(tmp_path), "device.key")
        keys.write_key(key, ec.generate_private_key(ec.SECP256R1()))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(cert).st_mode) == 0o644  # exactly, as before
    assert stat.S_IMODE(os.stat(key).st_mode) == keys.KEY_MODE == 0o600


# -- a full disk, injected at the file layer -------------------------------------------------
class FullDisk:
    """Stands in for `os` inside agent/files.py: writes to files whose name contains
    `match` fail with ENOSPC once `room` bytes are used (a short write, then the error,
    as a real disk does); fsync fails too when `fsync` is set."""

    def __init__(self, match: str = "", room: int = 0, fsync: bool = False) -> None:
        self.match = match
        self.room = room
        self.fail_fsync = fsync
        self.on = True
        self.paths: dict = {}
        self.refused = 0

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        fd = os.open(path, flags, mode)
        self.paths[fd] = path
        return fd

    def fdopen(self, fd: int, *args: object, **kw: object) -> object:
        f = os.fdopen(fd, *args, **kw)  # type: ignore[call-overload]
        if self.match in self.paths.get(fd, ""):
            return _Filling(f, self)
        return f

    def fsync(self, fd: int) -> None:
        if self.on and self.fail_fsync and self.match in self.paths.get(fd, "\0"):
            raise OSError(errno.EIO, "Input/output error")
        os.fsync(fd)


class _Filling:
    def __init__(self, f: object, disk: FullDisk) -> None:
        self.f = f
        self.disk = disk

    def __getattr__(self, name: str) -> object:
        return getattr(self.f, name)

    def __enter__(self) -> "_Filling":
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()  # type: ignore[attr-defined]

    def write(self, data: bytes) -> int:
        disk = self.disk
        if not disk.on:
            return self.f.write(data)  # type: ignore[attr-defined,no-any-return]
        if len(data) <= disk.room:
            disk.room -= len(data)
            return self.f.write(data)  # type: ignore[attr-defined,no-any-return]
        disk.refused += 1
        part = disk.room
        disk.room = 0
        if part:
            self.f.write(data[:part])  # type: ignore[attr-defined]
            if not hasattr(self.f, "raw"):  # unbuffered: a short write, as write(2) gives
                return part
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    def fill(match: str = "", room: int = 0, fsync: bool = False) -> FullDisk:
        disk = FullDisk(match, room, fsync)
        for module in (files, outbox_files, device_data):
            monkeypatch.setattr(module, "os", disk)
        return disk

    yield fill


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_a_full_disk_keeps_the_state_stored_before_and_is_said(tmp_path: object, full_disk: object) -> None:
    root = str(tmp_path)
    agent, data, _ = device.open_device(PROFILE, root, "dev-1")
    assert device.close_device(agent, data) == []
    before = _read(os.path.join(root, STATE))
    agent.sent_log.push({"t_ms": 1, "category": "essential", "topic": "t", "size": 1, "content": "x"})
    disk = full_disk(STATE)  # type: ignore[operator]
    problems = device.close_device(agent, data)
    assert len(problems) == 1 and "cannot store the learned state and the sent log (No space left" in problems[0]
    assert "the state stored before is kept" in problems[0] and data.unsaved  # type: ignore[union-attr]
    assert _read(os.path.join(root, STATE)) == before
    assert not os.path.exists(os.path.join(root, STATE + files.TMP_SUFFIX))
    assert disk.refused == 1
    disk.on = False  # room again: the next store succeeds and says so
    assert device.close_device(agent, data) == ["State: the learned state and the sent log are stored again"]
    again, _, messages = device.open_device(PROFILE, root, "dev-1")
    assert messages == [] and again.sent_log.items()[-1]["content"] == "x"


def test_a_consent_change_the_disk_refuses_changes_nothing(
    tmp_path: object, full_disk: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path)
    base = ["--profile", WASHER, "--data-dir", root]
    assert cli.main(["consent", "set", "maintenance", "on", *base]) == 0
    before = _read(os.path.join(root, JOURNAL))
    capsys.readouterr()
    disk = full_disk(JOURNAL, room=7)  # type: ignore[operator]
    assert cli.main(["consent", "set", "usage_statistics", "on", *base]) == 1
    err = capsys.readouterr().err
    assert "the consent change could not be stored (No space left on device" in err and "nothing was changed" in err
    assert "Traceback" not in err and disk.refused == 1
    assert _read(os.path.join(root, JOURNAL)) == before  # the short write was cut back: no torn record
    disk.on = False
    assert cli.main(["consent", "set", "consumables", "on", *base]) == 0
    agent, _, messages = device.open_device(PROFILE, root, "dev-1")
    assert messages == []
    assert agent.consent.choices() == {"essential": "on", "maintenance": "on", "usage_statistics": "off",
                                       "consumables": "on"}  # fmt: skip


def test_outbox_appends_on_a_full_disk_leave_no_torn_record(tmp_path: object, full_disk: object) -> None:
    d = str(tmp_path)
    box = Outbox(1000, FileStore(d))
    for i in range(5):
        box.push("t", b"kept %d" % i, "essential")
    box.sync()
    disk = full_disk("outbox-", room=10)  # type: ignore[operator]
    for i in range(5):
        box.push("t", b"memory %d" % i, "essential")
    box.sync()
    assert any("No space left on device; messages are kept in memory only" in p for p in box.problems)
    assert len(box) == 10  # nothing lost while the agent runs
    disk.on = False
    box.push("t", b"later", "essential")
    box.sync()
    again = Outbox(1000, FileStore(d))
    assert again.problems == []  # no torn record in the middle of the segment
    assert [p for _, p, _ in again.items()] == [b"kept %d" % i for i in range(5)] + [b"later"]


def test_a_failed_fsync_cuts_the_segment_back_to_what_is_known_durable(tmp_path: object, full_disk: object) -> None:
    d = str(tmp_path)
    box = Outbox(1000, FileStore(d))
    box.push("t", b"durable", "essential")
    box.sync()
    size = os.path.getsize(os.path.join(d, "outbox-000001.log"))
    disk = full_disk("outbox-", room=1 << 20, fsync=True)  # type: ignore[operator]
    box.push("t", b"not durable", "essential")
    box.sync()
    assert any("Input/output error" in p for p in box.problems) and len(box) == 2
    assert os.path.getsize(os.path.join(d, "outbox-000001.log")) == size
    disk.on = False
    assert [p for _, p, _ in Outbox(1000, FileStore(d)).items()] == [b"durable"]


def test_a_new_pseudonym_key_the_disk_refuses_is_used_for_this_run_only(tmp_path: object, full_disk: object) -> None:
    full_disk(KEY)  # type: ignore[operator]
    agent, _, messages = device.open_device(PROFILE, str(tmp_path), "dev-1")
    assert len(agent.gate.key) == 32
    assert messages == ["Pseudonym key: the new pseudonym key could not be stored (No space left on device): it is "
                        "used until the agent stops, and the next start makes another"]  # fmt: skip
    assert not os.path.exists(os.path.join(str(tmp_path), KEY))


def test_a_run_whose_state_cannot_be_stored_says_so_and_keeps_the_old_state(
    tmp_path: object, full_disk: object, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path)
    run = ["run", "--profile", WASHER, "--simulate", "--hours", "7", "--data-dir", root]
    assert cli.main([*run, "--consent", "maintenance"]) == 0
    before = _read(os.path.join(root, STATE))
    capsys.readouterr()
    full_disk(STATE)  # type: ignore[operator]
    assert cli.main([*run, "--seed", "3"]) == 1
    out = capsys.readouterr()
    assert "State: cannot store the learned state and the sent log (No space left on device)" in out.out
    assert "the state stored before is intact" in out.out and "Done:" in out.out and "Traceback" not in out.err
    assert _read(os.path.join(root, STATE)) == before


def test_checkpoints_retry_a_failed_store_and_say_it_once(
    tmp_path: object, full_disk: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, data, _ = device.open_device(PROFILE, str(tmp_path), "dev-1")
    disk = full_disk(STATE)  # type: ignore[operator]
    monkeypatch.setattr(cli, "STATE_CHECKPOINT_S", 0.001)
    said: list = []

    class Narrator:
        def say(self, text: str) -> None:
            said.append(text)

    async def scenario() -> None:
        task = asyncio.ensure_future(cli._checkpoints(agent, data, Narrator()))  # type: ignore[arg-type]
        try:
            for _ in range(5000):
                if disk.refused >= 5:
                    break
                await asyncio.sleep(0.001)
            disk.on = False
            for _ in range(5000):
                if len(said) >= 2:
                    break
                await asyncio.sleep(0.001)
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert disk.refused >= 5  # tried again and again while the disk was full
    assert len(said) == 2 and "cannot store the learned state" in said[0], said  # said once
    assert said[1] == "State: the learned state and the sent log are stored again"
    assert os.path.exists(os.path.join(str(tmp_path), STATE))


# -- a full disk for real ----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: object) -> Iterator[str]:
    """A 64 KiB tmpfs; skipped where mounting is not permitted (not root, no CAP_SYS_ADMIN)."""
    mnt = os.path.join(str(tmp_path), "small")
    os.makedirs(mnt)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip("cannot mount a small tmpfs here (%s); test_files.py's injected ENOSPC covers this behaviour"
                    % proc.stderr.strip())  # fmt: skip
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def _fill(directory: str) -> str:
    filler = os.path.join(directory, "filler")
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0")
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def test_a_really_full_disk_keeps_the_old_state_and_the_run_goes_on(
    small_disk: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = os.path.join(small_disk, "device")
    run = ["run", "--profile", WASHER, "--simulate", "--hours", "7", "--data-dir", root]
    assert cli.main([*run, "--consent", "maintenance", "--consent", "usage_statistics"]) == 0
    before = _read(os.path.join(root, STATE))
    filler = _fill(small_disk)
    capsys.readouterr()
    assert cli.main([*run, "--seed", "4", "--hours", "13"]) == 1  # ran to the end, could not store
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Done:" in out.out
    assert "State: cannot store the learned state and the sent log (No space left on device)" in out.out
    # (The outbox's appends may still fit the page its segment has: tests/test_outbox_files.py fills it.)
    assert _read(os.path.join(root, STATE)) == before
    assert not [n for n in os.listdir(root) if n.endswith(files.TMP_SUFFIX)]
    os.remove(filler)
    agent, _, messages = device.open_device(PROFILE, root, "sim-0001")
    assert messages == []
    assert agent.consent.allows("usage_statistics")
    assert DeviceData(root).load_state() == (state_file.decode(before)[0], None)
