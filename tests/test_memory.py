"""The agent's memory where it is enforced: the MicroPython unix port with a fixed heap
and .mpy modules. Two simulated days of the washer (a week in the slow run) run in a fixed
heap, and every size a board sets (limits.BOARD_SIZES) holds at its bound, filled with the
largest messages.
The 192 KB target is a benchmark's (bench/micropython.py, min_heap_bytes_week)."""

import json

import pytest

from bench import micropython as bench
from tests import micropython_unix

# The heap a simulated week of the washer agent with .mpy modules completes in (the
# target, 192 KB, is not reached: bench/micropython.py finds the smallest heap, 276 KB
# for the week since the page's claims and notice came (2026-12-02; 260 KB for two days
# before them, 232 KB before the alert lifecycle), and docs/architecture.md has the
# figures; two days complete in 268 KB and from 284 KB on, not in 276 KB). The test
# holds 288 KB, some steps above it: the
# agent's log lines pass a rate limit in real time, so a busy machine changes what is
# allocated between the long-lived objects, and a run at the smallest heap ran out of it
# once in a full suite on two busy cores.
REACHED_HEAP = 288 * 1024
# Heaps in which each board's sizes are filled to their bound with the largest messages
# (the code itself takes about 120 KB of these on the 64-bit unix port).
BOUND_HEAPS = {"esp32": 256 * 1024, "pi": 1024 * 1024}
_MARK = "@@BOUND@@"


# The default run simulates two days: two day boundaries (the daily status, statistics and
# budgets start over at each) and the outbox filled to its bound. The slow run takes the
# whole week the benchmark measures.
SHORT_DAYS = 2


@pytest.fixture(scope="module")
def mpy_build(tmp_path_factory: pytest.TempPathFactory) -> str:
    missing = micropython_unix.available()
    if missing:
        pytest.fail(missing)
    return str(tmp_path_factory.mktemp("week"))


@pytest.fixture(scope="module")
def mpy_setup(mpy_build: str) -> bench.Setup:
    return bench.Setup(mpy_build, SHORT_DAYS, "esp32", source=False)


def _run_completes(setup: bench.Setup, heap: int) -> None:
    result = bench.run_week(setup, heap, measure=False)
    # The whole run ran: 1 + 1 + 0.5 + 0.2 + 0.05 samples a second, every day of it.
    assert result["samples"] == int(2.75 * setup.days * 86_400)
    # The link was down all along: the outbox is at its bound, older messages gave way.
    assert result["outbox"] == 16 and result["outbox_dropped"] > 0
    assert result["decisions"]["sent"] > 16


def test_the_washer_agent_runs_two_simulated_days_in_a_fixed_heap(mpy_setup: bench.Setup) -> None:
    _run_completes(mpy_setup, REACHED_HEAP)


@pytest.mark.slow
def test_the_washer_agent_runs_a_simulated_week_in_a_fixed_heap(mpy_build: str) -> None:
    _run_completes(bench.Setup(mpy_build, bench.WEEK_DAYS, "esp32", source=False), REACHED_HEAP)


def test_a_heap_too_small_for_the_week_runs_out(mpy_setup: bench.Setup) -> None:
    # The same run fails in a heap that cannot hold the agent: the heap really bounds it.
    with pytest.raises(micropython_unix.MicroPythonUnixError, match="MemoryError"):
        bench.run_week(mpy_setup, 96 * 1024, measure=False)


# Fills what the agent keeps to its board's bound with the largest messages, then one more.
BOUND = """
import gc, json
from agent.core import profile as core_profile
with open(%(profile)r, "rb") as f:
    prof = core_profile.from_json(f.read())
core_profile.release()
del core_profile
from agent.core import limits
from agent.core.clock import ManualClock
from agent.core.errors import OutboxFullError
from agent.core.events import ANOMALY, Event
from agent.core.outbox import CRITICAL, NORMAL
from agent.core.pipeline import Agent
drivers = {}
for ch in prof["channels"]:
    drivers[ch["id"]] = None
agent = Agent(prof, "dev-1", drivers, ManualClock(), None, None, None, board=%(board)r)
sizes = limits.board_sizes(%(board)r)
payload = b"x" * limits.MAX_PAYLOAD_BYTES
topic = "wichtel/v1/dev-1/" + "m" * (limits.MAX_TOPIC_LEN - 17)
box = agent.outbox
for i in range(sizes["outbox"] + 1):
    box.push(topic, payload, "maintenance", NORMAL)
normal = [len(box), box.dropped]
taken = 0
try:
    while True:
        box.push(topic, payload, "essential", CRITICAL)
        taken += 1
except OutboxFullError:
    pass
for i in range(sizes["sent_log"] + 1):
    agent.sent_log.push({"t_ms": i, "id": i, "category": "maintenance", "topic": topic,
                         "size": len(payload), "content": payload.decode(), "status": "confirmed"})
fields = {"detector": "anomaly", "value": 1.5, "baseline": 1.0, "score": 0.9, "change_pct": 50.0}
for i in range(sizes["local_events"] + 1):
    agent.local_events.push(Event(ANOMALY, "maintenance", "motor_current", i, "drain", dict(fields)))
for i in range(sizes["event_queue"] + 1):
    agent.events.put(Event(ANOMALY, "maintenance", "motor_current", i, "drain", dict(fields)))
gc.collect()
print(%(mark)r + json.dumps({"sizes": sizes, "outbox_normal": normal, "critical_taken": taken, "outbox": len(box),
      "sent_log": [len(agent.sent_log), agent.sent_log.dropped],
      "local_events": [len(agent.local_events), agent.local_events.dropped],
      "event_queue": [len(agent.events), agent.events.dropped], "live": gc.mem_alloc()}))
"""


@pytest.mark.parametrize("board", sorted(BOUND_HEAPS))
def test_each_board_size_holds_at_its_bound_in_a_fixed_heap(mpy_setup: bench.Setup, board: str) -> None:
    code = BOUND % {"profile": mpy_setup.profile, "board": board, "mark": _MARK}
    out = micropython_unix.run(code, heap=BOUND_HEAPS[board], path=mpy_setup.path)
    got = json.loads(out.split(_MARK, 1)[1])
    sizes = got["sizes"]
    # Full: one more ordinary message pushes out the oldest.
    assert got["outbox_normal"] == [sizes["outbox"], 1]
    # Receipts and erasure requests push out the ordinary ones, then use the reserve; then "try again later".
    assert got["critical_taken"] == sizes["outbox"] + sizes["outbox_reserve"]
    assert got["outbox"] == sizes["outbox"] + sizes["outbox_reserve"]
    for ring in ("sent_log", "local_events", "event_queue"):
        assert got[ring] == [sizes[ring], 1], ring


def test_an_unknown_board_is_refused_by_name() -> None:
    from agent.core import limits
    from agent.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"board: got 'esp8266'; expected one of esp32, pi"):
        limits.board_sizes("esp8266")
