"""Hostile profile files: each class gets exit 2 and one paragraph naming file and line, in bounded time and memory.

The CLI runs in a subprocess with an address-space limit, as an attacker's file would meet it.
Fuzzing runs WICHTEL_FUZZ_EXAMPLES examples per property (default 150; set it higher to search longer).
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.core import limits
from agent.core import profile as core_profile
from agent.core.errors import ProfileError, describe
from tests.conftest import EXAMPLES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASHER = profile_loader.example("washing_machine")
PORT = "  port: 8883\n"
MEMORY_LIMIT = 512 * 1024 * 1024  # the alias bomb alone once took 4.4 GB
CLI_TIMEOUT_S = 60  # a whole interpreter start on a busy machine; a refusal itself takes well under a second
FUZZ_EXAMPLES = int(os.environ.get("WICHTEL_FUZZ_EXAMPLES", "150"))
FUZZ_SECONDS = 10  # per example, far above the worst seen (0.3 s) and far below an exponential blow-up


def _washer() -> str:
    with open(WASHER, encoding="utf-8") as f:
        return f.read()


def _line_of(text: str, part: str) -> int:
    return text[: text.index(part)].count("\n") + 1


def _at_port(new: str, later: int = 0) -> tuple[bytes, int]:
    """The example with the uplink's port line replaced; the line of the change (+ later)."""
    text = _washer()
    return text.replace(PORT, new, 1).encode(), _line_of(text, PORT) + later


def _alone(text: str, line: int = 1) -> tuple[bytes, int]:
    return text.encode(), line


def _appended(tail: str, later: int = 0) -> tuple[bytes, int]:
    text = _washer()
    return (text + tail).encode(), text.count("\n") + 1 + later


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    def bounded() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        preexec_fn=bounded,
        cwd=ROOT,
    )


def _one_paragraph(stderr: str) -> str:
    err = stderr.strip()
    assert "Traceback" not in err and "\n" not in err, err
    return err


# The classic "billion laughs": nine aliases of nine aliases ... (a 342-byte file).
_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    "%s: &%s [%s]\n" % (n, n, ",".join(["*" + p] * 9)) for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
_UNCLOSED_AT_END = _appended("extra: [1, 2,\n\n\n")
# Old Mac line ends: YAML counts a lone CR as a line break, and so does the message.
_CR_ONLY = (_washer().replace("\n", "\r").replace("  port: 8883", "  port: \x00").encode(), _line_of(_washer(), PORT))
_DEEP_BLOCK = "  port:\n" + "".join(" " * (3 + i) + "k:\n" for i in range(40))

# (name, (file bytes, line the message must name or None), words the message must contain)
HOSTILE = [
    ("alias bomb", _alone(_BOMB), "anchor (&a)"),
    ("alias bomb inside a profile", _at_port("  port: &p [1, 2]\n  keepalive_s: *p\n"), "anchor (&p)"),
    ("alias without anchor", _at_port("  port: *somewhere\n"), "alias (*somewhere)"),
    ("5000-digit integer", _at_port("  port: " + "9" * 5000 + "\n"), "number written with 5000 characters"),
    ("5000-digit hex integer", _at_port("  port: 0x" + "f" * 5000 + "\n"), "number written with 5002 characters"),
    ("5000-digit float", _at_port("  port: 1." + "0" * 5000 + "\n"), "number written with 5002 characters"),
    ("5000-digit sexagesimal", _at_port("  port: " + "1:" * 2500 + "1\n"), "number written with 5001 characters"),
    ("infinite float", _at_port("  port: 1.0e+99999\n"), "got inf (float)"),
    ("50,000 nested brackets", _at_port("  port: " + "[" * 50_000 + "\n"), "17 lists and mappings within"),
    ("50,000 closed brackets", _alone("[" * 30_000 + "]" * 30_000), "17 lists and mappings within"),
    ("50,000 nested braces", _at_port("  port: " + "{" * 50_000 + "\n"), "17 lists and mappings within"),
    ("deep block nesting", _at_port(_DEEP_BLOCK, later=15), "17 lists and mappings within"),
    ("deep block sequences", _alone("- " * 30_000), "17 lists and mappings within"),
    ("5000-character text", _at_port("  port: " + "x" * 5000 + "\n"), "a value of 5000 characters"),
    ("5000-character quoted text", _at_port('  port: "' + "\\x41" * 2000 + '"\n'), "a value of 2000 characters"),
    ("10,000 items", _at_port("  port: [" + "1, " * 10_000 + "]\n"), "more than 8192 keys, values and items"),
    ("larger than the bound", (_washer().encode() + b"#" * 70_000, None), "at most 65536 bytes"),
    ("not UTF-8", (_washer().replace(PORT, "  port: 88\udce983\n").encode("utf-8", "surrogateescape"),
                   _line_of(_washer(), PORT)), "byte 0xE9"),
    ("UTF-16", (_washer().encode("utf-16"), 1), "not UTF-8"),
    ("byte order mark", (b"\xef\xbb\xbf" + _washer().encode(), 1), "byte order mark"),
    ("NUL byte", _at_port("  port: 88\x0083\n"), "U+0000"),
    ("terminal escape", _at_port("  port: \x1b[2J8883\n"), "U+001B"),
    ("line separator", _at_port("  port: 8883\u2028\n"), "U+2028"),
    ("direction override", _at_port("  port: \u202e3888\n"), "U+202E"),
    ("NUL after carriage-return line ends", _CR_ONLY, "U+0000"),
    ("JSON nested deep", _alone('{"wichtel_profile": ' + "[" * 20_000 + "]" * 20_000 + "}"), "17 lists and mappings"),
    ("JSON 5000-digit number", _alone('{"wichtel_profile": ' + "9" * 5000 + "}"), "number written with 5000"),
    ("a list, not a mapping", _alone("- wichtel_profile: 1\n- appliance: {}\n"), "(top level): got [{"),
    ("a scalar, not a mapping", _alone("wichtel profile one\n"), "(top level): got 'wichtel profile one' (str)"),
    ("a number, not a mapping", _alone("1\n"), "(top level): got 1 (int)"),
    ("two documents", _appended("---\nwichtel_profile: 1\n"), "a second YAML document"),
    ("two documents, the second broken", _appended("--- [\n"), "a second YAML document"),
    ("duplicate key", _at_port(PORT + "  port: 1883\n", later=1), "uplink.port: got the key given twice"),
    ("integer key", _at_port("  8883: port\n"), "the key '8883', which YAML reads as a whole number"),
    ("boolean key", _at_port("  on: 8883\n"), "the key 'on', which YAML reads as true or false"),
    ("null key", _at_port("  ~: 8883\n"), "the key '~', which YAML reads as null"),
    ("date key", _at_port("  2024-01-01: 8883\n"), "which YAML reads as a date"),
    ("list key", _at_port("  [port]: 8883\n"), "a list as a key"),
    ("mapping key", _at_port("  ? {port: 1}\n  : 8883\n"), "a mapping as a key"),
    ("merge key", _at_port("  <<: {port: 8883}\n"), "which YAML reads as a merge key"),
    ("value key", _at_port("  port: =\n"), "which YAML reads as a value key"),
    ("python object tag", _at_port("  port: !!python/object/apply:os.system ['true']\n"), "tag !!python/object"),
    ("python name tag", _at_port("  port: !!python/name:os.system ''\n"), "tag !!python/name:os.system"),
    ("local tag", _at_port("  port: !port 8883\n"), "tag !port"),
    ("binary tag", _at_port("  port: !!binary aGVsbG8=\n"), "tag !!binary"),
    ("standard tag with a bad value", _at_port("  port: !!int '0x'\n"), "tag !!int"),
    ("tag through a directive", (b"%TAG !p! tag:yaml.org,2002:python/\n---\n"
                                 + _washer().replace(PORT, "  port: !p!name:os.system x\n").encode(),
                                 _line_of(_washer(), PORT) + 2), "tag !!python/name:os.system"),
    ("number that cannot be one", _at_port("  port: 0x_\n"), "'0x_', which YAML reads as a whole number but cannot"),
    ("date that cannot be one", _at_port("  port: 2024-13-45\n"), "reads as a date but cannot be one"),
    ("unclosed bracket", _at_port("  port: [8883\n"), "in the list [ that begins on this line: expected ',' or ']'"),
    # The parser gives up at the end of the file; the message names the bracket's line first.
    ("unclosed bracket at the end", _UNCLOSED_AT_END,
     "in the list [ that begins on this line: expected the node content, but found '<stream end>' (the parser gave "
     "up on line %d)" % (_UNCLOSED_AT_END[1] + 3)),
    ("unclosed brace", _at_port("  port: {a: 1\n"), "in the mapping { that begins on this line"),
    ("unclosed quote", _at_port("  port: '8883\n"), "quoted scalar that begins on this line"),
    ("unclosed double quote", _at_port('  port: "8883\n'), "quoted scalar that begins on this line"),
    ("tab indentation", _at_port("\tport: 8883\n"), "'\\t'"),
    ("wrong indentation", _at_port("   port: 8883\n"), "not valid YAML"),
    ("empty", _alone("", 0), "the file is empty"),
    ("only comments", _alone("# nothing\n" * 100, 0), "the file is empty"),
]  # fmt: skip


@pytest.mark.parametrize("name,content,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file_gets_exit_2_and_one_paragraph_naming_the_line(
    name: str, content: tuple, words: str, tmp_path: str
) -> None:
    data, line = content
    path = os.path.join(str(tmp_path), "hostile.yaml")
    with open(path, "wb") as f:
        f.write(data)
    proc = _run_cli("profile", "check", path)
    err = _one_paragraph(proc.stderr)
    assert proc.returncode == 2 and proc.stdout == "", err
    where = path + (":" + str(line) if line else "") + ": "
    assert err.startswith("wichtel: profile error in " + where), (where, err)
    assert words in err, err


@pytest.mark.parametrize("name", ["alias bomb", "50,000 nested brackets", "5000-digit integer", "NUL byte"])
def test_hostile_file_is_refused_by_compile_too(name: str, tmp_path: str) -> None:
    data, line = next(h[1] for h in HOSTILE if h[0] == name)
    path = os.path.join(str(tmp_path), "hostile.yaml")
    out = os.path.join(str(tmp_path), "out.json")
    with open(path, "wb") as f:
        f.write(data)
    proc = _run_cli("profile", "compile", path, "-o", out)
    err = _one_paragraph(proc.stderr)
    assert proc.returncode == 2 and err.startswith("wichtel: profile error in %s:%d: " % (path, line))
    assert not os.path.exists(out)


def _padded_to(size: int) -> bytes:
    """The example, then a comment that makes the file exactly size bytes."""
    data = _washer().encode()
    return data + b"#" + b"x" * (size - len(data) - 2) + b"\n"


def test_file_size_at_the_bound_loads_and_one_byte_more_is_refused(tmp_path: str) -> None:
    path = os.path.join(str(tmp_path), "p.yaml")
    with open(path, "wb") as f:
        f.write(_padded_to(profile_loader.MAX_YAML_BYTES))
    assert os.path.getsize(path) == profile_loader.MAX_YAML_BYTES
    proc = _run_cli("profile", "check", path)
    assert proc.returncode == 0 and "valid profile" in proc.stdout, proc.stderr
    with open(path, "wb") as f:
        f.write(_padded_to(profile_loader.MAX_YAML_BYTES + 1))
    proc = _run_cli("profile", "check", path)
    err = _one_paragraph(proc.stderr)
    assert proc.returncode == 2
    assert err == "wichtel: profile error in %s: got %d bytes or more; expected a profile of at most %d bytes" % (
        path, profile_loader.MAX_YAML_BYTES + 1, profile_loader.MAX_YAML_BYTES,
    )  # fmt: skip


def _load_error(text: str) -> str:
    with pytest.raises(profile_loader.ProfileFileError) as e:
        profile_loader.load_text(text, "p.yaml")
    return str(e.value)


def test_nesting_at_the_bound_reaches_the_schema_and_one_level_more_is_refused() -> None:
    depth = limits.PROFILE_MAX_DEPTH
    # The document's mapping is the first level; the lists under x the others.
    at = "x: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"
    assert "x: got 'x' (str); expected one of the known keys" in _load_error(at)
    over = "x:\n  " + "[" * depth + "]" * depth + "\n"
    assert _load_error(over) == (
        "profile error in p.yaml:2: x" + "[0]" * (depth - 1) + ": got %d lists and mappings within each other; "
        "expected at most %d levels" % (depth + 1, depth)
    )


def test_number_length_at_the_bound_loads_and_one_character_more_is_refused() -> None:
    digits = limits.PROFILE_MAX_NUMBER_CHARS
    text = _washer()
    assert "    sample_hz: 0.5\n" in text
    at = text.replace("    sample_hz: 0.5\n", "    sample_hz: 0." + "5" + "0" * (digits - 3) + "\n")
    assert profile_loader.load_text(at, "p.yaml")["channels"][2]["sample_hz"] == 0.5
    over = text.replace("    sample_hz: 0.5\n", "    sample_hz: 0." + "5" + "0" * (digits - 2) + "\n")
    line = _line_of(text, "    sample_hz: 0.5\n")
    assert _load_error(over) == (
        "profile error in p.yaml:%d: channels[2].sample_hz: got a number written with %d characters; "
        "expected at most %d characters" % (line, digits + 1, digits)
    )


def test_text_length_at_the_bound_reaches_the_schema_and_one_character_more_is_refused() -> None:
    most = profile_loader.MAX_SCALAR_CHARS
    text = _washer()
    at = _load_error(text.replace("  model: WM 8 Eco\n", "  model: " + "m" * most + "\n"))
    assert "appliance.model: got 'mmm" in at and "expected a non-empty text of at most 200 characters" in at
    over = _load_error(text.replace("  model: WM 8 Eco\n", "  model: " + "m" * (most + 1) + "\n"))
    assert over.endswith("appliance.model: got a value of %d characters; expected a value of at most %d characters"
                         % (most + 1, most))  # fmt: skip


def test_node_count_at_the_bound_reaches_the_schema_and_one_more_is_refused() -> None:
    most = profile_loader.MAX_NODES
    # The document's mapping, the key x, its list: three nodes besides the items.
    at = "x: [" + "1," * (most - 3) + "]\n"
    assert "x: got 'x' (str); expected one of the known keys" in _load_error(at)
    over = "x: [" + "1," * (most - 2) + "]\n"
    assert "x[%d]: got more than %d keys, values and items" % (most - 3, most) in _load_error(over)


def test_loader_refuses_rather_than_expands_aliases() -> None:
    # The bomb is refused at its first anchor, before PyYAML resolves a single alias.
    started = time.process_time()
    assert _load_error(_BOMB) == (
        "profile error in p.yaml:1: a: got an anchor (&a); expected the value written out: "
        "a profile has no anchors or aliases"
    )
    assert time.process_time() - started < FUZZ_SECONDS


def test_loader_is_the_safe_loader() -> None:
    # Only the safe constructors exist: even a tag that slipped past the checks could make no object.
    assert issubclass(profile_loader._ProfileYAML, profile_loader.yaml.SafeLoader)
    constructors = profile_loader._ProfileYAML.yaml_constructors
    assert not [tag for tag in constructors if tag and "python" in tag]


# --- Fuzzing the loader -------------------------------------------------------------------------

_EXAMPLE_TEXTS = []
for _kind in EXAMPLES:
    with open(profile_loader.example(_kind), encoding="utf-8") as _f:
        _EXAMPLE_TEXTS.append(_f.read())

# Pieces of YAML that have broken parsers before: structure, anchors, tags, odd numbers and characters.
_SNIPPETS = [
    "[", "]", "{", "}", ",", ":", ": ", "- ", "? ", "&a ", "*a", "&a [*a, *a]", "!!python/object:os.system ",
    "!t ", "!!binary ", "!!int ", "<<: ", "=", "---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "|\n",
    ">-\n", "'", '"', "\\", "#", "\t", "\r", "\n", "\x00", "\x85", "\u2028", "\ufeff", "\udce9", "0x", "0b",
    "0o", "1:2:3", "9" * 40, "1e999", ".nan", "-.inf", "~", "null", "on", "yes", "2024-13-45", "0x_",
    "\u00e9", "\U0001f600", " " * 9, "[" * 40, "{a: " * 20, "  - ",
]  # fmt: skip

_mutation = st.tuples(
    st.floats(0, 1),  # where, as a share of the text
    st.sampled_from(["insert", "replace", "delete", "repeat-line"]),
    st.one_of(st.sampled_from(_SNIPPETS), st.text(max_size=8)),
    st.integers(1, 40),  # how many characters to delete or replace
)


def _mutate(text: str, mutations: list) -> str:
    for where, kind, piece, span in mutations:
        at = int(where * len(text))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "replace":
            text = text[:at] + piece + text[at + span :]
        elif kind == "delete":
            text = text[:at] + text[at + span :]
        else:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            line = text[start : (end if end >= 0 else len(text))] + "\n"
            text = text[:start] + line * span + text[start:]
    return text


def _loads_or_refuses(text: str) -> None:
    started = time.process_time()
    try:
        prof = profile_loader.load_text(text, "fuzz.yaml")
    except profile_loader.ProfileFileError as e:
        message = str(e)
        assert message.startswith("profile error in fuzz.yaml") and "\n" not in message, message
    else:
        assert isinstance(prof, dict) and prof["wichtel_profile"] == 1
        assert len(profile_loader.compile_json(prof)) <= limits.PROFILE_JSON_MAX_BYTES
    assert time.process_time() - started < FUZZ_SECONDS


_FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(text=st.text(max_size=400))
def test_fuzz_any_text_loads_or_is_refused(text: str) -> None:
    _loads_or_refuses(text)


@_FUZZ
@given(pieces=st.lists(st.sampled_from([*_SNIPPETS, "a", "b", "1", " ", "  ", "\n", "\n  ", "\n- "]), max_size=60))
def test_fuzz_yaml_pieces_load_or_are_refused(pieces: list) -> None:
    _loads_or_refuses("".join(pieces))


@_FUZZ
@given(base=st.sampled_from(_EXAMPLE_TEXTS), mutations=st.lists(_mutation, min_size=1, max_size=6))
def test_fuzz_mutated_examples_load_or_are_refused(base: str, mutations: list) -> None:
    _loads_or_refuses(_mutate(base, mutations))


@_FUZZ
@given(base=st.sampled_from(_EXAMPLE_TEXTS), at=st.floats(0, 1), junk=st.binary(min_size=1, max_size=8))
def test_fuzz_bytes_of_a_file_load_or_are_refused(base: str, at: float, junk: bytes) -> None:
    data = base.encode()
    cut = int(at * len(data))
    fd, path = tempfile.mkstemp(suffix=".yaml")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data[:cut] + junk + data[cut:])
        try:
            profile_loader.load(path)
        except profile_loader.ProfileFileError as e:
            assert str(e).startswith("profile error in " + path) and "\n" not in str(e)
    finally:
        os.unlink(path)


# --- The compiled JSON a device reads -----------------------------------------------------------

_json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet='[]{}"\\0123456789e.-+ ,:ab', max_size=12),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=30,
)  # fmt: skip


_COMPILED = profile_loader.compile_json(profile_loader.load(WASHER))


@_FUZZ
@given(value=_json_values, junk=st.binary(max_size=8), at=st.floats(0, 1))
def test_fuzz_compiled_profile_loads_or_is_refused(value: object, junk: bytes, at: float) -> None:
    good = _COMPILED
    for data in (json.dumps(value).encode(), good[: int(at * len(good))] + junk + good[int(at * len(good)) :]):
        try:
            core_profile.from_json(data)
        except ProfileError as e:
            assert "\n" not in str(e)


@_FUZZ
@given(value=_json_values, big=st.integers(min_value=10**59, max_value=10**6000), nest=st.integers(0, 5000))
def test_fuzz_error_descriptions_are_short_for_any_value(value: object, big: int, nest: int) -> None:
    deep: list = [value, big, -big]
    for _ in range(nest):
        deep = [deep]
    for v in (value, big, -big, deep, {"k": deep}):
        text = describe(v)
        assert len(text) <= 60 + len(" (") + len(type(v).__name__) + 1
