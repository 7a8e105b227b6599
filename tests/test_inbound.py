"""Inbound bytes on the host: the bounded JSON scanner, the command desk and the MQTT packet
parser under property tests (random bytes, deep nesting, huge numbers, unicode, valid
input), the bounds at their limits, and the agent's supervision of commands and delivery.

WICHTEL_FUZZ_EXAMPLES raises the number of generated cases (default 300 per property).
"""

import asyncio
import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import profile_loader
from agent.core import commands, inbound_json, limits, mqtt, pipeline
from agent.core.clock import ManualClock
from agent.core.commands import ALERT_ACK, ARGUMENT_CHECKS, CONFIG, CONFIRM, ERASURE_ACK, STATUS_REPORT, CommandDesk
from agent.core.consent import ConsentLedger
from agent.core.errors import CommandError, ConfigError, InboundJsonError, MqttError, WichtelError
from agent.core.gate import PrivacyGate
from agent.core.inbound_json import COMMAND_BOUNDS, JsonBounds
from agent.core.outbox import HIGH, LOW
from agent.core.pipeline import Agent

EXAMPLES = int(os.environ.get("WICHTEL_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX = "wichtel/v1/dev-1/cmd/"
WASHER = profile_loader.load(profile_loader.example("washing_machine"))


def _cmd(seq: object, args: object = None, device: object = "dev-1") -> bytes:
    return json.dumps({"device": device, "seq": seq, "args": {} if args is None else args}).encode()


def _agent(clock: ManualClock | None = None, uplink: object = None) -> Agent:
    drivers = {ch["id"]: type("D", (), {"read": lambda self, t: 1.0})() for ch in WASHER["channels"]}
    return Agent(
        WASHER, "dev-1", drivers, clock or ManualClock(), None, uplink, ConsentLedger(WASHER["data_categories"])
    )  # type: ignore[arg-type]


# -- the bounded JSON scanner ---------------------------------------------------------------------
# Pieces of JSON and of almost-JSON, so that generated text is often nearly valid.
_PIECES = st.sampled_from([
    "[", "]", "{", "}", ",", ":", '"', "\\", "\\u", "d800", "dc00", "00e9", "\\n", "\\x", "0", "1", "9" * 17, "-",
    ".", "e", "E", "+", "e999", "true", "false", "null", "tru", "NaN", "Infinity", " ", "\t", "\n", "é", "€", "𝄞",
    "\x00", "\x1f", "\x7f", "a", '"a"', '"device"', '"seq"', '"args"', "9007199254740991", "9007199254740992", "1e99",
])  # fmt: skip


def _json_like() -> st.SearchStrategy[bytes]:
    text = st.lists(_PIECES, max_size=60).map("".join).map(lambda s: s.encode("utf-8", "surrogatepass"))
    raw = st.lists(st.one_of(text, st.binary(max_size=8), st.sampled_from([b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90"])),
                   max_size=6).map(b"".join)  # fmt: skip
    return st.one_of(text, raw)


def _loads_or_refuse(data: bytes, bounds: JsonBounds = COMMAND_BOUNDS) -> object:
    try:
        return ("ok", inbound_json.loads(data, bounds))
    except InboundJsonError as e:
        return ("refused", str(e))


@FUZZ
@given(st.one_of(st.binary(max_size=1100), _json_like()))
def test_scanner_raises_nothing_but_its_own_error(data: bytes) -> None:
    outcome = _loads_or_refuse(data)
    if outcome[0] == "ok":
        # What the scanner passes is JSON that CPython reads the same, and within bounds.
        assert json.loads(data.decode("utf-8")) == outcome[1]
        assert len(data) <= limits.MAX_COMMAND_BYTES


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**16) + 1, 10**16 - 1),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)  # fmt: skip
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def _depth(v: object) -> int:
    if isinstance(v, list):
        return 1 + max([_depth(x) for x in v] + [0])
    if isinstance(v, dict):
        return 1 + max([_depth(x) for x in v.values()] + [0])
    return 0


def _longest_string(text: bytes) -> int:
    """Bytes of the longest string (as sent) in JSON text: measured independently of the scanner."""
    longest, i = 0, 0
    while i < len(text):
        if text[i] == 0x22:
            j = i + 1
            while text[j] != 0x22:
                j += 2 if text[j] == 0x5C else 1
            longest = max(longest, j - i - 1)
            i = j
        i += 1
    return longest


@FUZZ
@given(_value, st.booleans())
def test_valid_json_within_bounds_reads_as_json_loads_does(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    within = len(text) <= 1024 and _depth(value) <= 4 and _longest_string(text) <= 64
    # Escaped surrogates (a character beyond U+FFFF written as \ud8xx\udcxx) are refused by
    # design: the runtimes read them differently, and no command needs them.
    within = within and re.search(rb"\\u[dD][89abAB]", text) is None
    outcome = _loads_or_refuse(text)
    if within:
        assert outcome == ("ok", value)
    else:
        assert outcome[0] == "refused"


@pytest.mark.parametrize("text,ok", [
    ("[[[[1]]]]", True), ("[[[[[1]]]]]", False),  # depth 4 at most
    ("9007199254740991", True), ("90071992547409911", False),  # 16 digits at most
    ("1.234567890123456", True), ("1.2345678901234567", False),
    ("1e99", True), ("1e100", False), ("-1E-99", True),  # exponent of 2 digits at most
    ('"' + "a" * 64 + '"', True), ('"' + "a" * 65 + '"', False),  # 64 bytes at most
    ('"' + "é" * 32 + '"', True), ('"' + "é" * 33 + '"', False),
    ('"\\u00e9"', True), ('"\\ud834\\udd1e"', False), ('"\\x"', False), ("NaN", False), ("Infinity", False),
    ("[1 2]", False), ('{1: 2}', False), ("[1,]", False), ("01", False), ("-", False), ("1.", False), (".5", False),
    ("", False), (" ", False), ("true false", False), ('"\x01"', False), ('{"a":1,"a":2}', True),
])  # fmt: skip
def test_scanner_bounds_at_their_limits(text: str, ok: bool) -> None:
    assert _loads_or_refuse(text.encode())[0] == ("ok" if ok else "refused")


def test_size_bound_is_exact() -> None:
    at = b'"' + b"a" * 60 + b'"'
    padded = at + b" " * (limits.MAX_COMMAND_BYTES - len(at))
    assert _loads_or_refuse(padded)[0] == "ok"
    assert "JSON: got 1025 bytes; expected at most 1024" in str(_loads_or_refuse(padded + b" ")[1])


def test_deep_nesting_costs_no_recursion_and_bounded_time() -> None:
    # Bounds far larger than a command's: 2 MB of brackets is refused at the fifth one.
    wide = JsonBounds(4_000_000, 4, 16, 2, 64)
    t0 = time.perf_counter()
    for data in (b"[" * 2_000_000, b'{"a":' * 400_000, b"[" * 1020):
        outcome = _loads_or_refuse(data, wide)
        assert outcome[0] == "refused" and "nested" in str(outcome[1]), outcome
    # A megabyte of digits is scanned once, without an int being made.
    assert "digits" in str(_loads_or_refuse(b"9" * 1_000_000, wide)[1])
    assert time.perf_counter() - t0 < 5


# -- the command desk ----------------------------------------------------------------------------
_names = st.one_of(st.sampled_from(sorted(ARGUMENT_CHECKS) + ["reboot", "consent_on", "", "a/b"]), st.text(max_size=20))
_topics = st.one_of(
    _names.map(lambda n: PREFIX + n), st.text(max_size=60),
    _names.map(lambda n: "x/" + PREFIX + n), _names.map(lambda n: "wichtel/v1/dev-10/cmd/" + n),
)  # fmt: skip
_seqs = st.one_of(
    st.integers(-5, 2000), st.integers(-(10**961), 10**961), st.floats(allow_nan=True), st.booleans(), st.none(),
    st.text(max_size=5), st.just(limits.MAX_SEQ), st.just(limits.MAX_SEQ + 1),
)  # fmt: skip
_message_ids = st.lists(
    st.one_of(st.integers(-5, 40), st.sampled_from([limits.MAX_MESSAGE_ID, limits.MAX_MESSAGE_ID + 1, 2**63]),
              st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(), st.text(max_size=4),
              st.lists(st.integers(1, 3), max_size=2)),
    max_size=limits.MAX_CONFIRM_IDS + 2,
)  # fmt: skip
_args = st.one_of(
    st.dictionaries(
        st.sampled_from(["category", "status_interval_h", "consent", "ids", "x", ""]),
        st.one_of(st.integers(-5, 200), st.text(max_size=40), st.booleans(), st.none(), st.lists(st.none()),
                  _message_ids),
        max_size=3,
    ),
    _value,
)  # fmt: skip
_commands = st.builds(
    lambda seq, args, device: json.dumps({"device": device, "seq": seq, "args": args}).encode(),
    _seqs, _args, st.one_of(st.just("dev-1"), st.text(max_size=8)),
)  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(_topics, st.one_of(_commands, st.binary(max_size=1100), _json_like())), max_size=8))
def test_command_desk_raises_nothing_but_command_errors(messages: list) -> None:
    desk = CommandDesk("dev-1")
    for topic, payload in messages:
        before = desk.last_seq
        try:
            name, args, seq = desk.check(topic, payload)
        except CommandError as e:
            assert desk.last_seq == before  # a refusal changes nothing
            assert e.reply == topic.startswith(PREFIX)  # only this device's own topic is answered
            reply = desk.reply(desk.name_of(topic), error=str(e))
            assert reply["last_seq"] == before and len(reply["error"]) <= 200
            continue
        assert topic == PREFIX + name and name in ARGUMENT_CHECKS
        assert before < seq <= before + limits.MAX_SEQ_STEP and seq <= limits.MAX_SEQ and desk.last_seq == seq
        assert isinstance(args, dict) and not any("consent" in k for k in args)
        if name == CONFIRM:  # only a short list of message ids that can be ids
            ids = args["ids"]
            assert list(args) == ["ids"] and 1 <= len(ids) <= limits.MAX_CONFIRM_IDS
            assert all(type(i) is int and 1 <= i <= limits.MAX_MESSAGE_ID for i in ids)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(sorted(ARGUMENT_CHECKS)), st.integers(1, limits.MAX_SEQ_STEP)), max_size=20))
def test_valid_commands_are_taken(steps: list) -> None:
    desk = CommandDesk("dev-1")
    valid_args = {STATUS_REPORT: {}, ERASURE_ACK: {"category": "usage_statistics"}, CONFIG: {"status_interval_h": 6},
                  CONFIRM: {"ids": [1, limits.MAX_MESSAGE_ID]}, ALERT_ACK: {"alert": 3}}  # fmt: skip
    seq = 0
    for name, step in steps:
        seq += step
        assert desk.check(PREFIX + name, _cmd(seq, valid_args[name])) == (name, valid_args[name], seq)


def _refusal(desk: CommandDesk, topic: str, payload: bytes) -> CommandError:
    with pytest.raises(CommandError) as caught:
        desk.check(topic, payload)
    return caught.value


def test_seq_bounds_at_their_limits() -> None:
    desk = CommandDesk("dev-1")
    for bad in (0, -1, True, 1.0, "1", None, [1], limits.MAX_SEQ + 1):
        assert "seq must be a whole number from 1 to 9007199254740991" in str(
            _refusal(desk, PREFIX + "status_report", _cmd(bad))
        ), bad
    # The 961-digit seq of the report is refused before it is parsed: it is not a number a command may hold.
    assert "not JSON within its bounds" in str(_refusal(desk, PREFIX + "status_report", b'{"device":"dev-1","seq":'
                                                       + b"9" * 961 + b',"args":{}}'))  # fmt: skip
    assert desk.last_seq == 0
    assert (
        desk.check(PREFIX + "status_report", _cmd(limits.MAX_SEQ_STEP))[2] == limits.MAX_SEQ_STEP
    )  # a step at the bound
    assert "more than 1000 above 1000" in str(
        _refusal(desk, PREFIX + "status_report", _cmd(2 * limits.MAX_SEQ_STEP + 1))
    )
    assert "replayed or old" in str(_refusal(desk, PREFIX + "status_report", _cmd(limits.MAX_SEQ_STEP)))
    top = CommandDesk("dev-1", limits.MAX_SEQ - 1)
    assert top.check(PREFIX + "status_report", _cmd(limits.MAX_SEQ))[2] == limits.MAX_SEQ


class Backend:
    """The operator's side as docs/asyncapi.yaml asks it to behave: a counter, and on a
    refusal it goes on from the device's last_seq + 1."""

    def __init__(self, counter: int) -> None:
        self.counter = counter

    def send(self, agent: Agent, name: str, args: dict | None = None) -> dict:
        self.counter += 1
        agent.on_command(PREFIX + name, _cmd(self.counter, args))
        reply = json.loads(agent.outbox.pending[-1][4])["data"]
        if not reply["ok"]:
            self.counter = reply["last_seq"]
        return reply  # type: ignore[no-any-return]


@pytest.mark.parametrize("device_seq,backend_seq", [(500, 0), (0, 10**9), (7, 7), (limits.MAX_SEQ - 3, 12)])
def test_a_backend_whose_counter_is_behind_or_ahead_recovers_in_one_refusal(device_seq: int, backend_seq: int) -> None:
    agent = _agent()
    assert agent.commands.restore(device_seq) == []
    backend = Backend(backend_seq)
    first = backend.send(agent, "status_report")
    if backend_seq < device_seq or backend_seq > device_seq + limits.MAX_SEQ_STEP:
        assert not first["ok"] and first["last_seq"] == device_seq
        assert backend.send(agent, "status_report")["ok"]
    else:
        assert first["ok"]
    assert agent.commands.last_seq == backend.counter


def test_a_damaged_stored_seq_is_said_and_commands_start_again() -> None:
    desk = CommandDesk("dev-1")
    for stored in (10**960, "12", -1, True, 2.5, None, limits.MAX_SEQ + 1):
        problems = desk.restore(stored)
        assert len(problems) == 1 and "commands start again from 1" in problems[0] and desk.last_seq == 0
        assert len(problems[0]) < 200  # a 961-digit value is not copied into the message
    assert desk.restore(limits.MAX_SEQ) == [] and desk.last_seq == limits.MAX_SEQ
    with pytest.raises(ConfigError):
        CommandDesk("dev-1", -3)


def test_a_damaged_stored_seq_is_said_when_the_device_opens(tmp_path: str) -> None:
    from agent import device
    from agent.device_data import DeviceData

    DeviceData(str(tmp_path)).save_state({"command_seq": 10**960})
    agent, _, messages = device.open_device(WASHER, str(tmp_path), "dev-1")
    assert agent.commands.last_seq == 0
    assert [m for m in messages if "command sequence number" in m and m.startswith("State: ")]


@pytest.mark.parametrize("topic,answered", [
    (PREFIX + "status_report", True),
    ("x/" + PREFIX + "status_report", False),  # the prefix anywhere in the topic was once enough
    ("wichtel/v1/dev-10/cmd/status_report", False),
    ("wichtel/v1/dev-2/cmd/status_report", False),
    ("other/v1/dev-1/cmd/status_report", False),
    ("wichtel/v1/dev-1/cmdstatus_report", False),
    ("wichtel/v1/dev-1/maintenance", False),
    (PREFIX + "status_report/x", True),  # on this device's command tree: an unknown command, answered
])  # fmt: skip
def test_only_the_devices_own_command_topic_is_taken_and_answered(topic: str, answered: bool) -> None:
    agent = _agent()
    agent.on_command(topic, _cmd(1))
    replies = [json.loads(p) for _, p, _ in agent.outbox.items() if b"command_reply" in p]
    assert len(replies) == (1 if answered else 0)
    assert agent.commands.last_seq == (1 if topic == PREFIX + "status_report" else 0)
    if not answered:
        assert agent.commands.not_ours == 1


def test_the_desk_uses_the_profiles_topic_root() -> None:
    prof = json.loads(json.dumps(WASHER))
    prof["uplink"]["topic_prefix"] = "acme"
    agent = Agent(prof, "dev-1", {ch["id"]: None for ch in prof["channels"]}, ManualClock())
    agent.on_command(PREFIX + "status_report", _cmd(1))
    assert agent.commands.not_ours == 1 and len(agent.outbox) == 0
    agent.on_command("acme/v1/dev-1/cmd/status_report", _cmd(1))
    assert agent.commands.last_seq == 1


def test_every_known_command_has_a_handler() -> None:
    assert sorted(Agent.COMMANDS) == sorted(commands.ARGUMENT_CHECKS)


# -- the agent: supervised, rate-limited, replies within their own share ----------------------------
def test_a_failing_handler_is_contained_counted_and_said_within_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(agent: Agent, args: dict, t_ms: int) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(Agent.COMMANDS, STATUS_REPORT, explode)
    clock = ManualClock()
    agent = _agent(clock)
    lines: list = []
    agent.report_to(lines.append)
    t0 = time.monotonic()
    for seq in range(1, 2001):
        clock.t_ms += limits.COMMAND_REFILL_MS  # within the intake rate: every one is handled
        agent.on_command(PREFIX + "status_report", _cmd(seq))
    elapsed = time.monotonic() - t0
    assert agent.inbound_faults == 2000
    assert len(lines) <= limits.LOG_BURST + elapsed * 1000 / limits.LOG_REFILL_MS + 1, len(lines)
    assert "RecursionError" in lines[0] and "the agent goes on" in lines[0]
    # The desk goes on too: a valid command after the faults is taken.
    monkeypatch.setitem(Agent.COMMANDS, STATUS_REPORT, pipeline.Agent._status_report)
    agent.on_command(PREFIX + "config", _cmd(2001, {"status_interval_h": 5}))
    assert agent.status_interval_h == 5


def test_the_report_commands_are_refused_and_answered() -> None:
    agent = _agent()
    agent.on_command(PREFIX + "status_report", b"[" * 1020)  # the nested brackets of the report
    agent.on_command(PREFIX + "status_report", b'{"device":"dev-1","seq":' + b"9" * 961 + b',"args":{}}')
    replies = [json.loads(p)["data"] for _, p, _ in agent.outbox.items()]
    assert [r["ok"] for r in replies] == [False, False]
    assert "nested" in replies[0]["error"] and "digits" in replies[1]["error"]
    assert agent.commands.last_seq == 0 and agent.inbound_faults == 0


def test_commands_over_the_intake_rate_are_dropped_unanswered() -> None:
    clock = ManualClock()
    agent = _agent(clock)
    for seq in range(1, limits.COMMAND_BURST + 2):
        agent.on_command(PREFIX + "status_report", b"not json %d" % seq)
    assert len(agent.outbox) == limits.COMMAND_BURST and agent.commands.over_rate == 1
    clock.t_ms += limits.COMMAND_REFILL_MS - 1
    agent.on_command(PREFIX + "status_report", b"x")
    assert agent.commands.over_rate == 2
    clock.t_ms += 1
    agent.on_command(PREFIX + "status_report", b"x")
    assert len(agent.outbox) == limits.COMMAND_BURST + 1


class MemoryUplink:
    connects = 1

    def __init__(self) -> None:
        self.received: list = []

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.received.append((topic, json.loads(payload)))
        return True


@pytest.mark.asyncio
@pytest.mark.parametrize("flood", ["refused", "valid status requests"])
async def test_a_flood_of_commands_cannot_starve_status_and_consent_receipts(flood: str) -> None:
    clock = ManualClock(3 * 86_400_000)  # a device-day starts
    uplink = MemoryUplink()
    agent = _agent(clock, uplink)
    seq = 0
    for i in range(8000):  # one every 10 s: within the intake rate, all day long
        clock.t_ms += limits.COMMAND_REFILL_MS
        if flood == "refused":
            agent.on_command(
                PREFIX + ("status_report", "reboot", "config")[i % 3], b'{"device":"dev-1","seq":0,"args":{}}'
            )
        else:
            seq += 1
            agent.on_command(PREFIX + "status_report", _cmd(seq))
    assert clock.t_ms // 86_400_000 == 3  # still the same day
    spent = agent.gate.spent[PrivacyGate.COMMAND_SHARE]
    largest = max(len(p) for _, p, _ in agent.outbox.items())
    # At the bound: the share is used up to within one reply, and never beyond.
    assert limits.COMMAND_REPLY_DAILY_BYTES - largest < spent[1] <= limits.COMMAND_REPLY_DAILY_BYTES
    assert len(agent.outbox) <= limits.OUTBOX_LEN  # replies gave way to each other
    # The device's own messages still go out the same day.
    agent._queue_status(clock.t_ms)
    agent.rights.set_consent("usage_statistics", True, clock.t_ms)
    assert await agent.flush()
    kinds = [m["kind"] for _, m in uplink.received]
    assert kinds[-2:] == ["status", "consent_receipt"]
    assert agent.gate.spent["essential"][1] > 0


@pytest.mark.parametrize("own", [HIGH, LOW])
def test_replies_never_push_out_the_devices_own_messages(own: int) -> None:
    clock = ManualClock()
    agent = _agent(clock)
    for i in range(limits.OUTBOX_LEN - 1):  # room for one more message
        agent.outbox.push("wichtel/v1/dev-1/usage_statistics", b'{"i":%d}' % i, "usage_statistics", own)
    own_messages = agent.outbox.items()
    for seq in range(1, 6):  # within the replies' daily share
        clock.t_ms += limits.COMMAND_REFILL_MS
        agent.on_command(PREFIX + "status_report", _cmd(seq))  # a status on request and a reply
        clock.t_ms += limits.COMMAND_REFILL_MS
        agent.on_command(PREFIX + "reboot", _cmd(0))  # a refusal reply
    # Every one of the device's own messages is still there; the replies pushed out only each other.
    assert agent.outbox.items()[: len(own_messages)] == own_messages and len(agent.outbox) == limits.OUTBOX_LEN
    assert b'"command_reply"' in agent.outbox.items()[-1][1]
    assert agent.replies_dropped == 0 and agent.inbound_faults == 0
    # With no room at all beyond the device's own messages, replies go (counted), nothing else does.
    agent.outbox.push("wichtel/v1/dev-1/maintenance", b"{}", "maintenance", HIGH + 1)  # takes the reply's place
    full = agent.outbox.items()
    clock.t_ms += limits.COMMAND_REFILL_MS
    agent.on_command(PREFIX + "status_report", _cmd(6))
    assert agent.outbox.items() == full and agent.replies_dropped == 2 and agent.inbound_faults == 0


# -- delivery: supervised, bounded, ends with the run ---------------------------------------------
class RaisingUplink(MemoryUplink):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("uplink fault %d" % self.failures)
        return await super().publish(topic, payload, msg_id)


@pytest.mark.asyncio
async def test_delivery_survives_an_uplink_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "UPLINK_RETRY_MS", 1)
    monkeypatch.setattr(limits, "UPLINK_RETRY_CAP_MS", 4)
    uplink = RaisingUplink(50)
    agent = _agent(uplink=uplink)
    lines: list = []
    agent.report_to(lines.append)
    agent.rights.set_consent("usage_statistics", True, 0)
    deliver = asyncio.ensure_future(agent.deliver())
    try:
        deadline = time.monotonic() + 60  # 50 failed rounds take well under a second on an idle machine
        # The uplink holds the message before the delivery task learns that it was taken (a
        # busy machine can run the test between the two): wait for both.
        while not (uplink.received and agent.outbox.awaiting) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # The broker took the receipt: it awaits the backend's confirmation, offered once.
        assert [m["kind"] for _, m in uplink.received] == ["consent_receipt"]
        assert list(agent.outbox.awaiting) == [uplink.received[0][1]["id"]]
        assert agent.delivery_faults == 50 and not deliver.done()
        assert "RuntimeError" in lines[0] and len(lines) <= limits.LOG_BURST + 2
    finally:
        deliver.cancel()


class StubbornUplink:
    """A publish that never ends and swallows its cancellation, as a buggy uplink (or
    asyncio.wait_for on CPython 3.11, losing a cancellation) can."""

    connects = 1

    def __init__(self) -> None:
        self.calls = 0

    async def publish(self, topic: str, payload: bytes, msg_id: int = 0) -> bool:
        self.calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return False
        return True


@pytest.mark.asyncio
async def test_a_run_ends_even_if_the_uplink_swallows_cancellation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "UPLINK_RETRY_MS", 20)
    monkeypatch.setattr(pipeline, "FLUSH_ROUND_MS", 200)
    uplink = StubbornUplink()
    agent = _agent(uplink=uplink)
    agent.rights.set_consent("usage_statistics", True, 0)
    # The run's own last flush ends after one round (FLUSH_ROUND_MS); the delivery task,
    # whose publish swallows its cancellation, ends too.
    await asyncio.wait_for(agent.run(60_000), 5)
    assert uplink.calls >= 1 and any(b"consent_receipt" in p for _, p, _ in agent.outbox.items())  # still waiting


# -- the MQTT packet parser ------------------------------------------------------------------------
class _Bytes:
    """A stream reader over fixed bytes that records what it was asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.largest_read = 0

    async def readexactly(self, n: int) -> bytes:
        self.largest_read = max(self.largest_read, n)
        if self.pos + n > len(self.data):
            raise asyncio.IncompleteReadError(self.data[self.pos :], n)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


async def _read_all(data: bytes) -> tuple:
    reader = _Bytes(data)
    packets = []
    try:
        while reader.pos < len(data):
            first, body = await mqtt.read_packet(reader)
            if first & 0xF0 == mqtt.PUBLISH:
                packets.append(mqtt.parse_publish(first, body))
            else:
                packets.append((first, body))
    except MqttError as e:
        return packets, str(e), reader.largest_read
    return packets, "", reader.largest_read


_topic_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="+#\x00"), min_size=1, max_size=80
)


# A remaining length of 256 MiB, QoS 2, QoS 1 with packet id 0, a topic that is not UTF-8.
_HOSTILE_PACKETS = [bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F]), b"\x34\x05\x00\x01a\x00\x01", b"\x32\x05\x00\x01a\x00\x00",
                    b"\x30\x03\x00\x01\xff"]  # fmt: skip


@FUZZ
@given(st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(st.binary(max_size=20), st.sampled_from(_HOSTILE_PACKETS)), max_size=8).map(b"".join),
))  # fmt: skip
def test_packet_parser_raises_nothing_but_mqtt_error(data: bytes) -> None:
    packets, _, largest = asyncio.run(_read_all(data))
    assert largest <= mqtt.MAX_PACKET  # nothing larger than the bound is ever read (or allocated)
    for p in packets:
        if len(p) == 4:
            assert p[2] in (0, 1) and p[0] and "+" not in p[0] and "#" not in p[0]


@FUZZ
@given(_topic_names, st.binary(max_size=2000), st.sampled_from([0, 1]), st.integers(1, 65535))
def test_packets_round_trip(topic: str, payload: bytes, qos: int, pid: int) -> None:
    pkt = mqtt.publish_packet(topic, payload, qos, pid if qos else 0)
    packets, error, _ = asyncio.run(_read_all(pkt))
    assert error == "" and packets == [(topic, payload, qos, pid if qos else 0)]


@pytest.mark.parametrize("first,body,words", [
    (0x34, b"\x00\x01a\x00\x01", "QoS 2"), (0x36, b"\x00\x01a\x00\x01", "QoS 3"),
    (0x32, b"\x00\x01a\x00\x00", "packet id 0"),
    (0x30, b"\x00\x02\xff\xfe", "not UTF-8"), (0x30, b"\x00\x01#", "wildcards"), (0x30, b"\x00\x00x", "wildcards"),
    (0x30, b"\x00", "at least 2"), (0x30, b"\x00\x09abc", "runs past"),
])  # fmt: skip
def test_publish_a_broker_may_not_send_is_refused(first: int, body: bytes, words: str) -> None:
    with pytest.raises(MqttError, match=words):
        mqtt.parse_publish(first, body)


def test_packet_bound_is_exact() -> None:
    body = b"\x00\x01a" + b"x" * (mqtt.MAX_PACKET - 3)
    at = bytes([0x30]) + mqtt._remaining(len(body)) + body
    packets, error, _ = asyncio.run(_read_all(at))
    assert error == "" and len(packets[0][1]) == mqtt.MAX_PACKET - 3
    over = bytes([0x30]) + mqtt._remaining(mqtt.MAX_PACKET + 1) + body + b"x"
    packets, error, largest = asyncio.run(_read_all(over))
    # Refused on its two-byte head (first byte and length), before any of the body is read.
    assert error == "inbound packet of 4097 bytes; at most 4096" and largest == 2


def test_errors_are_one_hierarchy_and_keep_their_old_names() -> None:
    from agent.core.commands import CommandError as FromCommands
    from agent.core.mqtt import MqttError as FromMqtt

    assert FromCommands is CommandError and FromMqtt is MqttError
    for cls in (CommandError, MqttError, InboundJsonError):
        assert issubclass(cls, WichtelError)
