"""Every bound the core enforces, declared in one place.

Each limit has a test at the bound (tests/portable/cases.py and tests/test_limits.py).
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
UPLINK_RETRY_MS = const(1000)  # wait after a failed publish before offering it again
BACKOFF_BASE_MS = const(500)  # first reconnect waits up to this long (full jitter)
BACKOFF_CAP_MS = const(30000)  # no reconnect wait is longer than this
CONNECT_TIMEOUT_MS = const(10000)  # TCP + TLS + CONNACK, or the attempt counts as failed
ACK_TIMEOUT_MS = const(10000)  # a QoS 1 message not acknowledged by then stays in the outbox
MAX_PAYLOAD_BYTES = const(1024)  # one encoded message
MAX_TOPIC_LEN = const(128)
PROFILE_JSON_MAX_BYTES = const(16_384)  # compiled profile on flash
PROFILE_MAX_DEPTH = const(16)  # lists and mappings within each other in a profile (the schema uses 6)
PROFILE_MAX_NUMBER_CHARS = const(32)  # characters of one number in a profile, YAML or JSON
CONSUMABLE_HISTORY_DAYS = const(84)  # closed days of use kept per consumable (12 weeks)
