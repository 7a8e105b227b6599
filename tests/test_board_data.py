"""The board's own data (firmware/board_data.py) on CPython: opened as firmware/main.py opens
it (agent/core/device.py), kept across restarts, the same files as the host's, and every
damage said and acted on as on the host. The same on the MicroPython unix port:
tests/test_firmware_main.py."""

import os
from collections.abc import Iterator

import pytest

from agent import profile_loader
from agent.core import device as core_device
from agent.core import journal, limits, state_file
from agent.core.clock import ManualClock
from agent.core.consent import ConsentLedger
from agent.core.consumables import ReorderChoice
from agent.core.errors import StorageError
from agent.core.pipeline import Agent
from agent.core.stored_data import JOURNAL, KEY, STATE, decode_key
from agent.device_data import DeviceData
from firmware import board_data
from firmware.board_data import BoardData
from firmware.flash_store import FlashStore

PROFILE = profile_loader.load(profile_loader.example("washing_machine"))
OPTIONAL = "usage_statistics"


class _NoSensor:
    def read(self, t_ms: int) -> float:
        return float("nan")


_STORES: list = []


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    """The outbox segment files a test's boards left open, closed after it."""
    yield
    while _STORES:
        _STORES.pop().close()


def _open(root: str) -> tuple:
    """(agent, data, messages): the board's device opened as firmware/main.py operate() opens it."""
    data = BoardData(root)
    ledger = ConsentLedger(PROFILE["data_categories"], "dev-1")
    saved, key, lost, messages = core_device.load(data, ledger)
    _STORES.append(FlashStore(root))
    outbox, said = core_device.outbox(_STORES[-1], ledger, saved, limits.ESP32)
    drivers = {ch["id"]: _NoSensor() for ch in PROFILE["channels"]}
    agent = Agent(PROFILE, "dev-1", drivers, ManualClock(), None, None, ledger, pseudonym_key=key, outbox=outbox,
                  board=limits.ESP32)  # fmt: skip
    return agent, data, messages + said + core_device.settle(agent, data, saved, lost)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def used(tmp_path: str) -> tuple:
    """A board that was given consent and a reorder choice, then stopped: (its directory, key)."""
    root = os.path.join(str(tmp_path), "data")
    agent, data, messages = _open(root)
    assert messages == []
    core_device.set_consent(agent, data, OPTIONAL, True, 1_000, 1_800_000_000)
    agent.set_reorder_choice("detergent", ReorderChoice("share", "EcoWash", "Corner shop"))
    assert core_device.close(agent, data) == []
    return root, decode_key(_read(os.path.join(root, KEY)))[0]


def test_a_restart_keeps_consent_receipts_learned_state_and_the_key(used: tuple) -> None:
    root, key = used
    agent, _, messages = _open(root)
    assert messages == []
    assert agent.snapshot().choices[OPTIONAL] == "on"
    assert [r["seq"] for r in agent.snapshot().receipts] == [1]
    assert agent.consumable("detergent").choice.product == "EcoWash"
    assert decode_key(_read(os.path.join(root, KEY)))[0] == key  # not replaced
    assert sorted(os.listdir(root)) == [JOURNAL, "outbox-000001.log", KEY, STATE]  # no temporary file left


def test_the_board_and_the_host_read_each_others_files(used: tuple, tmp_path: str) -> None:
    root, key = used
    host = DeviceData(root)
    state, problem = host.load_state()
    assert problem is None and state["consent_seq"] == 1
    ledger = ConsentLedger(PROFILE["data_categories"], "dev-1")
    assert host.load_consent(ledger, 1) == ([], False) and ledger.allows(OPTIONAL)
    assert host.load_pseudonym_key(True) == (key, None)
    # And back: what the host writes, the board reads.
    assert host.save_state({"consent_seq": 1, "sent": [{"id": 7}]}) is None
    assert BoardData(root).load_state() == ({"consent_seq": 1, "sent": [{"id": 7}]}, None)


def test_a_missing_journal_the_state_says_was_stored_is_a_withdrawal(used: tuple) -> None:
    root, _ = used
    os.remove(os.path.join(root, JOURNAL))
    agent, _, messages = _open(root)
    assert agent.snapshot().choices[OPTIONAL] == "off"
    assert any("the consent journal is missing, but receipt 1 had been stored" in m and "counts as withdrawn" in m
               for m in messages), messages  # fmt: skip
    assert agent.rights.erasures_waiting() >= 1  # upstream is asked to erase what the lost consent let out


def test_a_damaged_journal_is_a_withdrawal(used: tuple) -> None:
    root, _ = used
    path = os.path.join(root, JOURNAL)
    raw = bytearray(_read(path))
    raw[journal.HEADER + 3] ^= 0x20  # inside the first record: its checksum fails
    with open(path, "wb") as f:
        f.write(raw)
    agent, _, messages = _open(root)
    assert agent.snapshot().choices[OPTIONAL] == "off"
    assert any("Consent: the consent journal is damaged" in m for m in messages), messages


def test_a_torn_last_record_is_ignored_and_said(used: tuple) -> None:
    root, _ = used
    agent, data, _ = _open(root)
    core_device.set_consent(agent, data, OPTIONAL, False, 2_000, 1_800_000_100)
    path = os.path.join(root, JOURNAL)
    raw = _read(path)
    with open(path, "wb") as f:  # a power cut in the middle of the withdrawal's record
        f.write(raw[:-5])
    with open(os.path.join(root, STATE), "wb") as f:  # the state stored before the withdrawal
        f.write(state_file.encode({"consent_seq": 1}))
    agent, _, messages = _open(root)
    assert agent.snapshot().choices[OPTIONAL] == "on"  # the change that never completed did not happen
    assert [r["seq"] for r in agent.snapshot().receipts] == [1]
    assert any("the last consent change was not completely written" in m for m in messages), messages
    assert journal.decode(_read(path))[2] is None  # rewritten without the torn record


def test_a_damaged_state_starts_fresh_models_and_keeps_consent(used: tuple) -> None:
    root, key = used
    path = os.path.join(root, STATE)
    raw = _read(path)
    with open(path, "wb") as f:
        f.write(raw.replace(b"EcoWash", b"EcoWasH"))
    agent, _, messages = _open(root)
    assert "State: %s is corrupted (checksum mismatch); the device starts with fresh models." % path in messages
    assert agent.consumable("detergent").choice.product == ""  # fresh
    assert agent.snapshot().choices[OPTIONAL] == "on"  # the journal is intact: consent stays
    assert decode_key(_read(os.path.join(root, KEY)))[0] == key


@pytest.mark.parametrize("damage", [b"", b"WPK1" + bytes(40), b"x" * 32])
def test_a_damaged_key_is_replaced_and_said(used: tuple, damage: bytes) -> None:
    root, key = used
    with open(os.path.join(root, KEY), "wb") as f:
        f.write(damage)
    _, _, messages = _open(root)
    assert any(m.startswith("Pseudonym key: pseudonym.key is damaged") and "A new key was made" in m
               for m in messages), messages  # fmt: skip
    new = decode_key(_read(os.path.join(root, KEY)))[0]
    assert new is not None and new != key


def test_a_missing_key_on_a_board_with_data_is_replaced_and_said(used: tuple) -> None:
    root, _ = used
    os.remove(os.path.join(root, KEY))
    _, _, messages = _open(root)
    assert any("pseudonym.key is missing although the device holds data" in m for m in messages), messages


def test_erase_removes_the_files_and_makes_a_new_key(used: tuple) -> None:
    root, key = used
    agent, data, _ = _open(root)
    core_device.erase(agent, data, 5_000)
    assert not os.path.exists(os.path.join(root, JOURNAL))
    assert decode_key(_read(os.path.join(root, KEY)))[0] not in (None, key)
    agent, _, messages = _open(root)
    assert messages == [] and agent.snapshot().receipts == [] and agent.snapshot().choices[OPTIONAL] == "off"
    assert agent.consumable("detergent").choice.product == ""


class _FullFlash:
    """A file being written on a full flash: a write takes half of its bytes, then raises ENOSPC."""

    def __init__(self, path: str, mode: str = "r") -> None:
        self.f = open(path, mode)  # closed in __exit__: the board's code opens its files in `with`

    def __enter__(self) -> "_FullFlash":
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)  # type: ignore[no-any-return]

    def write(self, data: bytes) -> int:
        if "r" not in self.f.mode:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError(28, "ENOSPC")
        return 0

    def flush(self) -> None:
        self.f.flush()


def test_a_consent_change_the_flash_refuses_changes_nothing(used: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = used
    agent, data, _ = _open(root)
    journal_before = _read(os.path.join(root, JOURNAL))
    state_before = _read(os.path.join(root, STATE))
    monkeypatch.setattr(board_data, "open", _FullFlash, raising=False)
    with pytest.raises(StorageError, match="the consent change could not be stored"):
        core_device.set_consent(agent, data, OPTIONAL, False, 2_000, 0)
    assert agent.snapshot().choices[OPTIONAL] == "on"
    assert data.save_state(agent.save()).startswith("cannot store the learned state")  # type: ignore[union-attr]
    monkeypatch.undo()
    assert _read(os.path.join(root, JOURNAL)) == journal_before  # no torn record: the old journal
    assert _read(os.path.join(root, STATE)) == state_before  # the old state intact
    assert [n for n in os.listdir(root) if n.endswith(".tmp")] == []
    assert data.save_state(agent.save()) == "the learned state and the sent log are stored again"


def test_a_state_over_the_boards_bound_is_refused_and_the_old_one_kept(used: tuple) -> None:
    root, _ = used
    data = BoardData(root)
    before = _read(os.path.join(root, STATE))
    problem = data.save_state({"events": ["x" * state_file.BOARD_MAX_BYTES]})
    assert problem is not None and "larger than %d" % state_file.BOARD_MAX_BYTES in problem
    assert _read(os.path.join(root, STATE)) == before
    # A host-sized file on the board's flash is damage, said, never read whole.
    with open(os.path.join(root, STATE), "wb") as f:
        f.write(state_file.encode({"events": ["x" * (2 * state_file.BOARD_MAX_BYTES)]}))
    assert data.load_state()[1] == "%s/%s is larger than a state file can be" % (root, STATE)


def test_no_memory_for_the_state_is_said_and_the_run_goes_on(used: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """A board's fragmented heap may lack a block for the state's text at a checkpoint: said,
    the stored state kept, tried again (a MemoryError must not end the checkpoint task)."""
    root, _ = used
    data = BoardData(root)
    before = _read(os.path.join(root, STATE))

    def no_memory(data: dict, max_bytes: int = 0) -> bytes:
        raise MemoryError("memory allocation failed, allocating 8072 bytes")

    monkeypatch.setattr(state_file, "encode", no_memory)
    problem = data.save_state({"consent_seq": 1})
    assert problem is not None and "(memory allocation failed, allocating 8072 bytes)" in problem and data.unsaved
    assert _read(os.path.join(root, STATE)) == before
    monkeypatch.undo()
    assert data.save_state({"consent_seq": 1}) == "the learned state and the sent log are stored again"
