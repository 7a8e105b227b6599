"""The setup code: fresh codes, hashes that verify only the right code, damaged records."""

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import setup_code as sc


def test_new_codes_are_grouped_from_the_unambiguous_alphabet() -> None:
    codes = {sc.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == sc.LENGTH + 1 and code[sc.GROUP] == "-"
        assert all(c in sc.ALPHABET for c in sc.normalize(code))
        assert not set("01OIL") & set(code)


def test_the_right_code_verifies_however_it_is_typed() -> None:
    code = sc.new_code()
    record = sc.hash_code(code, iterations=sc.MIN_ITERATIONS)
    assert code not in json.dumps(record) and sc.normalize(code) not in json.dumps(record)
    assert sc.verify(code, record)
    assert sc.verify(" " + code.lower().replace("-", " ") + " ", record)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=14))
def test_no_other_input_verifies(typed: str) -> None:
    record = sc.hash_code("ABCDE-23456", iterations=sc.MIN_ITERATIONS, salt=b"s" * sc.SALT_BYTES)
    assert sc.verify(typed, record) == (sc.normalize(typed) == "ABCDE23456")


def test_same_code_different_salt_different_hash() -> None:
    a = sc.hash_code("ABCDE-23456", iterations=sc.MIN_ITERATIONS)
    b = sc.hash_code("ABCDE-23456", iterations=sc.MIN_ITERATIONS)
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]


def test_too_few_iterations_refused() -> None:
    with pytest.raises(sc.SetupCodeError, match="iterations 100"):
        sc.hash_code("ABCDE-23456", iterations=100)


def test_record_round_trip_and_damage(tmp_path) -> None:
    record = sc.hash_code("ABCDE-23456", iterations=sc.MIN_ITERATIONS)
    sc.write_record(str(tmp_path), record)
    assert sc.read_record(str(tmp_path)) == record
    path = tmp_path / sc.FILE_NAME
    path.write_text('{"alg": "md5"}')
    with pytest.raises(sc.SetupCodeError, match="alg 'md5'"):
        sc.read_record(str(tmp_path))
    path.write_text("{not json")
    with pytest.raises(sc.SetupCodeError, match="not JSON"):
        sc.read_record(str(tmp_path))
    broken = dict(record, hash="zz")
    with pytest.raises(sc.SetupCodeError, match="hash 'zz'"):
        sc.verify("ABCDE-23456", broken)
    path.unlink()
    with pytest.raises(sc.SetupCodeError, match="cannot read"):
        sc.read_record(str(tmp_path))


def test_the_record_is_written_0600_whatever_the_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        path = sc.write_record(str(tmp_path), sc.hash_code("ABCDE-23456", iterations=sc.MIN_ITERATIONS))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(str(tmp_path)) == [sc.FILE_NAME]  # no temporary file left
