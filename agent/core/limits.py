"""Every bound the core enforces, declared in one place.

Tests at the bounds are in tests/portable/cases.py (CPython and MicroPython) and in the host
tests of the module that enforces the limit (e.g. tests/test_inbound.py, test_profile_doc.py).
"""

from agent.core.compat import const

MAX_CHANNELS = const(16)  # channels per appliance profile
MAX_PROCESSORS_PER_CHANNEL = const(4)
MAX_CONSUMABLES = const(8)
MAX_CATEGORIES = const(12)
MAX_FIELDS_PER_CATEGORY = const(16)
MAX_PHASES = const(16)
MAX_ID_LEN = const(32)  # ids of channels, consumables, categories, phases
MAX_TEXT_LEN = const(200)  # free text in profiles (purpose, names)
MIN_SAMPLE_MHZ = const(10)  # 0.01 Hz: one sample every 100 s
MAX_SAMPLE_MHZ = const(100_000)  # 100 Hz
EVENT_QUEUE_LEN = const(32)  # events between processors and the privacy gate
OUTBOX_LEN = const(64)  # messages waiting for the uplink
OUTBOX_CRITICAL_RESERVE = const(64)  # more room for consent receipts and erasure requests
SENT_LOG_LEN = const(256)  # messages that left, kept for the user to see
LOCAL_EVENTS_LEN = const(128)  # recent events kept on the device for the local page
CONSENT_HISTORY_LEN = const(64)  # consent receipts kept (RAM and journal); each category's latest always
UPLINK_WINDOW = const(16)  # messages in flight to the broker at once
UPLINK_RETRY_MS = const(1000)  # wait after a failed round of publishes; doubles with each failure in a row,
UPLINK_RETRY_CAP_MS = const(60_000)  # up to this (a link that comes back ends the wait at once)
CONFIRM_WAIT_MS = const(30_000)  # a receipt or erasure request the broker took is offered again unless the backend
CONFIRM_WAIT_CAP_MS = const(1_800_000)  # confirmed it by then; the wait doubles each time, up to this
MAX_CONFIRM_IDS = const(32)  # message ids one confirm command may name
BACKOFF_BASE_MS = const(500)  # first reconnect waits up to this long (full jitter)
BACKOFF_CAP_MS = const(30000)  # no reconnect wait is longer than this
STABLE_LINK_MS = const(60000)  # a link must hold this long before the reconnect backoff starts again
CONNECT_TIMEOUT_MS = const(10000)  # TCP + TLS + CONNACK, or the attempt counts as failed
ACK_TIMEOUT_MS = const(10000)  # a QoS 1 message not acknowledged by then stays in the outbox
MAX_PAYLOAD_BYTES = const(1024)  # one encoded message
MAX_TOPIC_LEN = const(128)
PROFILE_JSON_MAX_BYTES = const(16_384)  # compiled profile on flash
PROFILE_MAX_DEPTH = const(16)  # lists and mappings within each other in a profile (the schema uses 6)
PROFILE_MAX_NUMBER_CHARS = const(32)  # characters of one number in a profile, YAML or JSON
# The simulation section of a profile (a simulated appliance, docs/simulation.md).
SIM_MAX_PROGRAM_STEPS = const(32)  # phases of one simulated program cycle
SIM_MAX_FAULTS = const(16)  # faults a profile describes for its simulator
SIM_MAX_SECONDS = const(86_400)  # one program step, and the mean time between cycles
CONSUMABLE_HISTORY_DAYS = const(84)  # closed days of use kept per consumable (12 weeks)

# Where the phase comes from on a real appliance (agent/core/phases.py, the profile's phase_source).
MAX_PHASE_RULES = const(16)  # rules of a rules phase source, evaluated in order
MAX_RULE_CONDITIONS = const(4)  # conditions of one rule (all must hold)
MAX_PHASE_LINES = const(3)  # GPIO lines of a gpio phase source: codes 0..7
MAX_PHASE_CODE_LEN = const(16)  # characters of one code of a uart phase source ("3", "DRAIN")
MAX_PHASE_PREFIX_LEN = const(16)  # characters of its line prefix ("PH=", "STATE:")
MIN_PHASE_LINE = const(8)  # a uart phase source's line bound (max_line) is from MIN_PHASE_LINE
MAX_PHASE_LINE = const(128)  # to MAX_PHASE_LINE bytes; a longer line is counted and ignored
PHASE_UART_READ_MAX = const(1024)  # bytes one look at the UART takes at most; the rest waits for the next
# A metered consumable (source: meter) counts a reading over the time since its channel's
# previous valid reading, at most this many sample periods: a missing sample still counts,
# a long gap (the sensor out, the device off) counts no more than this.
METER_GAP_PERIODS = const(3)

# What a peer (the broker, or whoever commands the device) can make it take in, do and say.
MAX_INBOUND_PACKET = const(4096)  # one MQTT packet to the device (both clients; MQTT 5 tells the broker)
BROKER_MAX_PACKET = const(16_384)  # max_packet_size in the broker config (`provision broker`)
MAX_COMMAND_BYTES = const(1024)  # one command's JSON
MAX_COMMAND_DEPTH = const(4)  # objects and arrays nested in a command
MAX_COMMAND_DIGITS = const(16)  # digits before the exponent of a number: 2**53 - 1 has 16
MAX_COMMAND_EXPONENT_DIGITS = const(2)  # so no number a command holds is near a float's range
MAX_COMMAND_STRING = const(64)  # bytes in one string (or key) of a command, as sent
MAX_SEQ = 9_007_199_254_740_991  # 2**53 - 1: a command's seq, exact in every JSON reader (no const: not small)
MAX_MESSAGE_ID = MAX_SEQ  # the largest outbox id a confirm command may name (exact in every JSON reader)
MAX_SEQ_STEP = const(1000)  # a command's seq is at most this far above the last one taken
COMMAND_BURST = const(16)  # commands taken at once; then one more per COMMAND_REFILL_MS,
COMMAND_REFILL_MS = const(10_000)  # the rest dropped unanswered (counted)
CONFIRM_BURST = const(16)  # confirm commands taken at once, apart from the other commands' intake; then one
CONFIRM_REFILL_MS = const(1000)  # more per CONFIRM_REFILL_MS (each names at most MAX_CONFIRM_IDS ids)
COMMAND_REPLY_DAILY_BYTES = const(4096)  # command replies (and a status on request) per device-day, apart
# from every category's own budget
LOG_BURST = const(10)  # lines a peer can make one reporter write at once; then one
LOG_REFILL_MS = const(1000)  # per LOG_REFILL_MS, the rest counted (ratelimit.ThrottledReport)
SEND_TIMEOUT_MS = const(10_000)  # the stream takes a packet, or the link counts as dead
ALERT_REMIND_MS = const(604_800_000)  # an open alert not acknowledged is reported again at most weekly
ALERT_JOIN_MS = const(172_800_000)  # a finding raised within two days of an open alert joins it
ALERT_UPDATE_MS = const(86_400_000)  # an alert's news that a finding grew worse: at most daily
SENSOR_FAULT_CLEAR_MS = const(3_600_000)  # a sensor fault is over after an hour of good readings

# What the agent keeps in memory, sized per board (Agent(board=...), the device settings'
# "board"): how many messages wait in the outbox (and its reserve for receipts and erasure
# requests), how many sent messages and recent events the local page can show, how many
# events wait for the privacy gate. "pi" is the bounds above; "esp32" fits an ESP32
# without PSRAM (bench/micropython.py measures it; docs/architecture.md has the figures).
# The detectors' state is fixed per processor by the profile (float arrays, its schema
# bounds them) and the same on every board.
PI = "pi"
ESP32 = "esp32"
# "cycle_model": whether the profile's cycle model runs (1) or is left out (0): on the
# MicroPython unix port it takes its code and the churn of its refits, and the smallest heap
# of the washer's week grows from about 250 KB to about 430 KB (bench/micropython.py
# --board pi against esp32; docs/detection.md), more than an ESP32 without PSRAM has.
BOARD_SIZES = {
    PI: {"outbox": OUTBOX_LEN, "outbox_reserve": OUTBOX_CRITICAL_RESERVE, "sent_log": SENT_LOG_LEN,
         "local_events": LOCAL_EVENTS_LEN, "event_queue": EVENT_QUEUE_LEN, "cycle_model": 1},
    ESP32: {"outbox": 16, "outbox_reserve": 16, "sent_log": 16, "local_events": 16, "event_queue": 16,
            "cycle_model": 0},
}  # fmt: skip


def board_sizes(board: str) -> dict:
    """The memory sizes of a board; ConfigError naming the known boards for any other name."""
    sizes = BOARD_SIZES.get(board)
    if sizes is None:
        from agent.core.errors import ConfigError

        raise ConfigError("board: got %r; expected one of %s" % (board, ", ".join(sorted(BOARD_SIZES))))
    return sizes
