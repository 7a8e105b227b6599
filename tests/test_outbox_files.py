"""The outbox on real files: torn at any byte it recovers what was whole; on a full disk
it reports the error and keeps what it has."""

import os
import random
import subprocess

import pytest

from agent.core.outbox import CRITICAL, LOW, Outbox
from agent.outbox_files import FileStore


def _fill(directory: str, n: int) -> None:
    box = Outbox(1000, FileStore(directory))
    for i in range(n):
        box.push("wichtel/v1/dev-1/maintenance", b'{"n":%d}' % i, "maintenance")
    box.sync()


def test_torn_at_random_bytes_recovers_the_whole_records(tmp_path: str) -> None:
    rng = random.Random(9)
    for trial in range(30):
        d = os.path.join(str(tmp_path), "t%d" % trial)
        _fill(d, 40)
        path = os.path.join(d, "outbox-000001.log")
        size = os.path.getsize(path)
        cut = rng.randrange(1, size)
        with open(path, "r+b") as f:
            f.truncate(cut)
        box = Outbox(1000, FileStore(d))
        n = len(box)
        assert 0 <= n < 40
        assert [p for _, p, _ in box.items()] == [b'{"n":%d}' % i for i in range(n)]
        assert box.problems and "cut off" in box.problems[0]
        assert box.next_id == n + 1  # ids continue after the last whole message
        box.push("t", b"after", "essential")
        box.sync()
        again = Outbox(1000, FileStore(d))
        assert again.items()[-1] == ("t", b"after", "essential") and again.problems == []


def test_segments_are_deleted_once_delivered_and_ids_survive(tmp_path: str) -> None:
    d = str(tmp_path)
    box = Outbox(5000, FileStore(d))
    for _i in range(3000):
        box.push("t", b"x" * 40, "maintenance")
    box.sync()
    assert len(FileStore(d).segments()) > 2
    while len(box):
        box.ack()
    box.sync()
    assert len(FileStore(d).segments()) == 1
    assert Outbox(5000, FileStore(d)).next_id == 3001


def test_overflow_drops_the_oldest_of_the_lowest_priority_never_receipts(tmp_path: str) -> None:
    box = Outbox(4, FileStore(str(tmp_path)))
    box.push("t", b"stat1", "usage_statistics", LOW)
    box.push("t", b"receipt", "essential", CRITICAL)
    box.push("t", b"stat2", "usage_statistics", LOW)
    box.push("t", b"alert", "maintenance")
    box.push("t", b"alert2", "maintenance")
    assert [p for _, p, _ in box.items()] == [b"receipt", b"stat2", b"alert", b"alert2"]
    box.sync()
    assert [p for _, p, _ in Outbox(4, FileStore(str(tmp_path))).items()] == [b"receipt", b"stat2", b"alert", b"alert2"]


def test_full_disk_is_reported_and_nothing_is_lost(tmp_path: str) -> None:
    mnt = os.path.join(str(tmp_path), "small")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt], capture_output=True).returncode:
        pytest.fail("could not mount a small tmpfs (the suite runs as root in CI)")
    try:
        box = Outbox(100_000, FileStore(mnt))
        synced = 0
        for i in range(1000):
            box.push("wichtel/v1/dev-1/maintenance", b"y" * 200, "maintenance")
            if i % 50 == 49:
                box.sync()
                if not box.problems:
                    synced = i + 1
        # The disk filled: said plainly, and every message is still there to be sent.
        assert any("No space left on device" in p for p in box.problems), box.problems
        assert len(box) == 1000 and 0 < synced < 1000
        # What was synced before the disk filled is there after a restart.
        assert len(Outbox(100_000, FileStore(mnt))) >= synced
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
