"""The appliance profile schema and its cross-checks, on plain data.

The host loads YAML (with line numbers) and devices load compiled JSON (from_json,
bounded before it is parsed); both end here, so a device checks its profile exactly as
the factory tool did.
"""

from agent.core import inbound_json, limits, outbox, processors
from agent.core.errors import ConfigError, DriverOptionError, InboundJsonError, ProfileError
from agent.core.schema import AnyMap, Bool, ListOf, Map, MeanSd, Num, NumOrId, OneOf, Range, Str

FORMAT_VERSION = 1

# Driver kinds a profile may name: sim (a simulated appliance, host and board), replay (a
# recorded CSV trace, `wichtel run --replay`), and the sensors of real appliances:
# linux_iio (an ADC channel through Linux IIO, Pi), adc (the board's ADC pin), i2c (a chip on
# an I2C bus, named by driver_options chip), onewire (a DS18B20 thermometer), hx711 (a load
# cell amplifier on two GPIO lines) and pulse_counter (a flow meter's pulses on a GPIO line).
# Their settings are the channel's driver_options (docs/profile.md, docs/drivers.md).
DRIVERS = ("sim", "replay", "linux_iio", "adc", "i2c", "onewire", "hx711", "pulse_counter")

_ID = Str(limits.MAX_ID_LEN, ident=True)
_TEXT = Str(limits.MAX_TEXT_LEN)
_TEXTS = Map({"en": _TEXT, "de": _TEXT})  # plain language, English and German
# The legal bases of GDPR Art. 6(1) a category may rest on (the page says each in words).
LEGAL_BASES = ("consent", "contract", "legal_obligation", "legitimate_interest")
# Markets: where the appliance is sold; the page's default time zone and the words of its notice.
MARKETS = ("DE", "AT", "CH", "GB", "US")

# What a compiled profile may hold before it is parsed: its size, the profile's nesting and
# number length (as in YAML), exponents of floats (1e-05), and any text the schema allows
# (whose own bounds apply after parsing).
PROFILE_BOUNDS = inbound_json.JsonBounds(
    limits.PROFILE_JSON_MAX_BYTES, limits.PROFILE_MAX_DEPTH, limits.PROFILE_MAX_NUMBER_CHARS, 3,
    limits.PROFILE_JSON_MAX_BYTES,
)  # fmt: skip

_PROCESSOR = Map(
    {"kind": OneOf(processors.REGISTRY)},
    {
        "category": (_ID, "maintenance"),
        "settings": (AnyMap(NumOrId(), 8), {}),
        # The likely cause, for the person reading the event ("the drain pump may be clogging").
        "hint": (_TEXTS, None),
        # What the person can do about it, shown with the alert on the local page only.
        "advice": (_TEXTS, None),
        # Measured on healthy units: phase -> [median, spread] (processors.py says of what).
        "reference": (AnyMap(MeanSd(-1e9, 1e9), limits.MAX_PHASES), None),
    },
)

_CHANNEL = Map(
    {
        "id": _ID,
        "unit": Str(16),
        "driver": OneOf(DRIVERS),
        "sample_hz": Num(limits.MIN_SAMPLE_MHZ / 1000, limits.MAX_SAMPLE_MHZ / 1000, "samples per second"),
        "range": Range(),
    },
    {
        "driver_options": (AnyMap(NumOrId(), 8), {}),  # numbers, or names such as chip: ads1115
        "label": (_TEXTS, None),
        "processors": (ListOf(_PROCESSOR, 0, limits.MAX_PROCESSORS_PER_CHANNEL), []),
    },
)

_CONSUMABLE = Map(
    {
        "id": _ID,
        "name": _TEXTS,
        "unit": Str(16),
        "capacity": Num(0.001, 1e6),
        "source": OneOf(("level_sensor", "dose_count", "wear", "meter")),
    },
    {
        "channel": (_ID, None),
        # source meter: what flows through `channel` (a rate per `rate_per`) times `factor`
        # (consumable units per channel unit), counted only in `phases` (every phase if none).
        "phases": (ListOf(_ID, 1, limits.MAX_PHASES, unique=True), None),
        "rate_per": (OneOf(("s", "min", "h")), None),
        "factor": (Num(1e-6, 1e6), None),
        "dose_per_cycle": (Num(0, 1e6), None),
        "lead_time_days": (Num(0, 60, "days"), 3),
        # How far a counted dose may be off (the dosing pump's specification), as a share.
        "dose_tolerance": (Num(0, 0.5), 0.1),
        "category": (_ID, "consumables"),
    },
)

# Field names that identify a device, a network or a person never leave, whatever a
# profile says: the gate sends only allowlisted fields, and these cannot be allowlisted.
FORBIDDEN_FIELDS = ("serial", "serial_number", "mac", "ip", "ip_address", "ssid", "bssid", "wifi", "device_id",
                    "email", "owner", "name", "address", "location", "gps", "phone")  # fmt: skip


class _Field:
    def __call__(self, value: object, path: tuple) -> str:
        name = _ID(value, path)
        if name in FORBIDDEN_FIELDS:
            raise ProfileError(path, value, "a field that does not identify a device, network or person")
        return name


_CATEGORY = Map(
    {
        "id": _ID,
        "title": _TEXTS,
        "purpose": _TEXTS,
        "fields": ListOf(_Field(), 1, limits.MAX_FIELDS_PER_CATEGORY, unique=True),
        "retention_days": Num(0, 3650, "days", integer=True),
    },
    {
        "essential": (Bool(), False),
        # Which of its messages the outbox lets go first when it is full and the link is
        # down: low (statistics), normal, or high (maintenance alerts); a full outbox drops
        # the oldest message of the lowest priority. Consent receipts and erasure requests
        # rank above every category and are never dropped; command replies below all.
        "priority": (OneOf(tuple(outbox.CATEGORY_PRIORITIES)), "normal"),
        "upstream_retention_days": (Num(0, 3650, "days", integer=True), 30),
        "recipients": (ListOf(_TEXTS, 0, 4), []),
        "time_grain_s": (Num(1, 86_400, "seconds", integer=True), 3600),
        "round": (AnyMap(Num(0, 1e6), limits.MAX_FIELDS_PER_CATEGORY), {}),
        "pseudonymous": (Bool(), False),
        "daily_budget_bytes": (Num(0, 1_000_000, "bytes per day", integer=True), 4096),
        "version": (Num(1, 1_000_000, integer=True), 1),
        # GDPR Art. 6(1); none: consent for an optional category, legitimate interest for the essential one.
        "legal_basis": (OneOf(LEGAL_BASES), None),
    },
)

_UPLINK = Map(
    {"host": Str(253), "port": Num(1, 65535, integer=True)},
    {
        "topic_prefix": (Str(32, ident=True), "wichtel"),
        "max_payload": (Num(64, limits.MAX_PAYLOAD_BYTES, "bytes", integer=True), limits.MAX_PAYLOAD_BYTES),
        "keepalive_s": (Num(10, 3600, "seconds", integer=True), 60),
    },
)

# Where the phase comes from on a real appliance (agent/core/phases.py; docs/profile.md
# "Where the phase comes from"): exactly one of rules, gpio, uart.
_NUM = Num(-1e9, 1e9)
_PHASE_CONDITION = Map(
    {"channel": _ID},
    {"above": (_NUM, None), "leave_below": (_NUM, None), "below": (_NUM, None), "leave_above": (_NUM, None)},
)
_PHASE_RULE = Map({"phase": _ID, "when": ListOf(_PHASE_CONDITION, 1, limits.MAX_RULE_CONDITIONS)})
_GPIO_CODE = Map({"code": Num(0, (1 << limits.MAX_PHASE_LINES) - 1, integer=True), "phase": _ID})
_UART_CODE = Map({"code": Str(limits.MAX_PHASE_CODE_LEN), "phase": _ID})
_PHASE_GPIO = Map(
    {
        "lines": ListOf(Num(0, 255, integer=True), 1, limits.MAX_PHASE_LINES, unique=True),
        "codes": ListOf(_GPIO_CODE, 1, 1 << limits.MAX_PHASE_LINES),
    },
    {"chip": (Str(64), "gpiochip0"), "active_low": (Bool(), False), "pull": (OneOf(("none", "up", "down")), "none")},
)
_PHASE_UART = Map(
    {"baud": Num(300, 1_000_000, "bits per second", integer=True), "codes": ListOf(_UART_CODE, 1, limits.MAX_PHASES)},
    {
        "prefix": (Str(limits.MAX_PHASE_PREFIX_LEN), None),
        "max_line": (Num(limits.MIN_PHASE_LINE, limits.MAX_PHASE_LINE, "bytes", integer=True), 32),
        "device": (Str(64), "/dev/serial0"),  # the Pi's tty
        "port": (Num(0, 2, integer=True), 1),  # the board's UART and its pins
        "tx": (Num(0, 255, integer=True), None),
        "rx": (Num(0, 255, integer=True), None),
    },
)
_PHASE_SOURCE = Map(
    {},
    {
        "rules": (ListOf(_PHASE_RULE, 1, limits.MAX_PHASE_RULES), None),
        "gpio": (_PHASE_GPIO, None),
        "uart": (_PHASE_UART, None),
        "fallback": (_ID, None),
        "debounce_s": (Num(0, 600, "seconds"), 0),
        "silence_s": (Num(1, 86_400, "seconds"), 10),
    },
)

_APPLIANCE = Map(
    {"maker": _TEXT, "model": _TEXT, "hardware_revision": Str(32), "kind": _ID},
)


# What GDPR Art. 13 asks the controller to tell, as the local page shows it (docs/privacy.md).
_PRIVACY_NOTICE = Map(
    {
        "controller": _TEXT,  # name and postal address of who decides what the data is for
        "contact": _TEXT,  # where to write about privacy (an e-mail address or a web form)
        "support": _TEXT,  # customer service: phone, e-mail, web
        "storage": _TEXTS,  # where the data is stored upstream
        "authority": _TEXTS,  # a supervisory authority the user may complain to
    },
    {"dpo": (_TEXT, None), "market": (OneOf(MARKETS), "DE")},
)

# -- simulation: how the simulator makes this appliance (docs/simulation.md) -------------------
# Every part is optional: what the section leaves out is derived from the channels' units and
# ranges and the profile's phases (agent/sim/profile_model.py), so every valid profile can be
# simulated. Numbers are in the channel's unit unless named otherwise.
_ANY = Num(-1e9, 1e9)
_SIM_STEP = Map(
    {"phase": _ID, "seconds": Num(1, limits.SIM_MAX_SECONDS, "seconds")},
    # A step that runs only every n-th cycle (a fridge's defrost every sixth compressor cycle).
    {"every": (Num(1, 1000, "cycles", integer=True), 1)},
)
_SIM_THERMAL = Map(
    {"phase": _ID, "ambient": _ANY, "target": _ANY, "rate_per_s": Num(1e-6, 1e6, "the channel's unit per second")},
    {
        "start": (_ANY, None),  # the temperature when the simulation starts; ambient when not given
        "return_tau_s": (Num(1, 1e7, "seconds"), 3600),
        "sd": (Num(0, 1e6), 0),
        "until_target": (Bool(), True),
    },
)
_SIM_LEVEL = Map(
    {"phase": _ID, "capacity": Num(0.001, 1e9), "dose": Num(0, 1e9)},
    {"refill_below": (Num(0, 1e9), None), "sd": (Num(0, 1e6), 0)},
)
_SIM_SWITCH = Map(
    {"per_hour": Num(0.01, 3600, "times per hour")},
    {"seconds": (Num(1, limits.SIM_MAX_SECONDS, "seconds"), 30), "high": (_ANY, 1), "low": (_ANY, 0)},
)
SIM_MODELS = ("phases", "thermal", "level", "switch")  # a simulated channel has exactly one
_SIM_CHANNEL = Map(
    {"channel": _ID},
    {
        "phases": (AnyMap(MeanSd(-1e9, 1e9), limits.MAX_PHASES), None),
        "thermal": (_SIM_THERMAL, None),
        "level": (_SIM_LEVEL, None),
        "switch": (_SIM_SWITCH, None),
    },
)
# What a simulated sensor fault does to its channel's readings from its onset on: drift adds
# `size` per hour, step adds `size`, stuck repeats the last reading before the onset, noise adds
# noise of standard deviation `size`, dropout gives no reading (a share `size` of them).
SIM_FAULT_KINDS = ("drift", "step", "stuck", "noise", "dropout")
_SIM_FAULT = Map(
    {"id": _ID, "kind": OneOf(SIM_FAULT_KINDS), "channel": _ID},
    {
        "size": (Num(-1e6, 1e6), None),
        "phase": (_ID, None),
        "onset_cycle": (Num(0, 1_000_000, "cycles", integer=True), None),
        "onset_h": (Num(0, 1_000_000, "hours"), None),
    },
)
_SIMULATION = Map(
    {},
    {
        "program": (ListOf(_SIM_STEP, 1, limits.SIM_MAX_PROGRAM_STEPS), None),
        "idle_s": (MeanSd(60, limits.SIM_MAX_SECONDS, "seconds"), None),
        "channels": (ListOf(_SIM_CHANNEL, 0, limits.MAX_CHANNELS), []),
        "faults": (ListOf(_SIM_FAULT, 0, limits.SIM_MAX_FAULTS), []),
    },
)

# Several channels judged together, once per program cycle (agent/core/cycle_model.py).
_CYCLE_FEATURE = Map(
    {"feature": OneOf(("duration", "mean", "peak")), "phase": _ID},
    {"channel": (_ID, None)},
)
_CYCLE_REFERENCE = Map(
    {"mean": ListOf(Num(-1e9, 1e9), 2, 12), "sd": ListOf(Num(0, 1e9), 2, 12)},
    {"corr": (ListOf(Num(-1, 1), 1, 66), None)},
)
_CYCLE_SETTINGS = Map(
    {},
    {
        "alarm_rate": (Num(0.0001, 0.2, "share of healthy cycles"), 0.01),
        "confirm": (Num(1, 10, "cycles", integer=True), 2),
        "learn_cycles": (Num(15, 10_000, "cycles", integer=True), 30),
        "reference_cycles": (Num(15, 10_000, "cycles", integer=True), 30),
        "clear_cycles": (Num(1, 100, "cycles", integer=True), 3),
    },
)
_CYCLE_MODEL = Map(
    {"features": ListOf(_CYCLE_FEATURE, 2, 12)},
    {
        "category": (_ID, "maintenance"),
        "hint": (_TEXTS, None),
        "advice": (_TEXTS, None),
        "reference": (_CYCLE_REFERENCE, None),
        "settings": (_CYCLE_SETTINGS, _CYCLE_SETTINGS({}, ())),
    },
)

PROFILE = Map(
    {
        "wichtel_profile": Num(FORMAT_VERSION, FORMAT_VERSION, "profile format version", integer=True),
        "appliance": _APPLIANCE,
        "phases": ListOf(_ID, 1, limits.MAX_PHASES, unique=True),
        "channels": ListOf(_CHANNEL, 1, limits.MAX_CHANNELS),
        "data_categories": ListOf(_CATEGORY, 1, limits.MAX_CATEGORIES),
        "uplink": _UPLINK,
    },
    {
        "consumables": (ListOf(_CONSUMABLE, 0, limits.MAX_CONSUMABLES), []),
        # Names of phases for people, e.g. drain: {en: Drain, de: Abpumpen}.
        "phase_names": (AnyMap(_TEXTS, limits.MAX_PHASES), {}),
        # How the simulator makes this appliance (`wichtel run --simulate`); derived when absent.
        "simulation": (_SIMULATION, None),
        # Where the phase comes from on a real appliance; none: the simulator or a trace.
        "phase_source": (_PHASE_SOURCE, None),
        "cycle_model": (_CYCLE_MODEL, None),
        "privacy_notice": (_PRIVACY_NOTICE, None),
    },
)


def _check_reference(proc: dict, phases: list, path: tuple) -> None:
    """A reference names phases of the profile: any for an anomaly processor (the readings'
    level in each), only its own phase for a cycle_feature (the feature), none otherwise."""
    ref = proc["reference"]
    if ref is None:
        return
    kind = proc["kind"]
    if kind == "anomaly":
        allowed = phases
    elif kind == "cycle_feature":
        allowed = [proc["settings"]["phase"]]
    else:
        raise ProfileError(path, ref, "no reference: a " + kind + " processor uses none")
    for phase in ref:
        if phase not in allowed:
            raise ProfileError(path + (phase,), phase, "one of the phases " + ", ".join(allowed))


def _check_cycle_model(model: dict, phases: list, channel_ids: list, category_ids: list) -> None:
    """Its features name the profile's phases and channels (a duration none); its reference
    has one mean and sd per feature and a correlation per pair; its category exists."""
    path = ("cycle_model",)
    n = len(model["features"])
    seen = []
    for i, f in enumerate(model["features"]):
        where = path + ("features", i)
        if f["phase"] not in phases:
            raise ProfileError(where + ("phase",), f["phase"], "one of the phases " + ", ".join(phases))
        if f["feature"] == "duration":
            if f["channel"] is not None:
                raise ProfileError(where + ("channel",), f["channel"], "no channel: a duration is the phase's")
        elif f["channel"] not in channel_ids:
            raise ProfileError(where + ("channel",), f["channel"], "the id of one of channels")
        same = (f["feature"], f["channel"], f["phase"])
        if same in seen:
            raise ProfileError(where, f["feature"], "a feature not already in the list")
        seen.append(same)
    if model["category"] not in category_ids:
        raise ProfileError(path + ("category",), model["category"], "the id of one of data_categories")
    if model["settings"]["learn_cycles"] < n + 3:
        raise ProfileError(path + ("settings", "learn_cycles"), model["settings"]["learn_cycles"],
                           "at least the number of features + 3 (%d)" % (n + 3))  # fmt: skip
    ref = model["reference"]
    if ref is not None:
        for key, want in (("mean", n), ("sd", n), ("corr", n * (n - 1) // 2)):
            if ref[key] is not None and len(ref[key]) != want:
                raise ProfileError(path + ("reference", key), ref[key], "%d numbers (%s)" % (
                    want, "one per feature" if key != "corr" else "one per pair of features"))  # fmt: skip


def validate(doc: object) -> dict:
    """Check a whole profile; return it with defaults filled in, or raise ProfileError."""
    prof = PROFILE(doc, ())
    _check_unique(prof, "channels")
    _check_unique(prof, "consumables")
    _check_unique(prof, "data_categories")
    channel_ids = [c["id"] for c in prof["channels"]]
    category_ids = [c["id"] for c in prof["data_categories"]]
    for i, ch in enumerate(prof["channels"]):
        for j, proc in enumerate(ch["processors"]):
            path = ("channels", i, "processors", j)
            schema = processors.settings_schema(proc["kind"], prof["phases"])
            proc["settings"] = schema(proc["settings"], path + ("settings",))
            _check_reference(proc, prof["phases"], path + ("reference",))
            if proc["category"] not in category_ids:
                raise ProfileError(path + ("category",), proc["category"], "the id of one of data_categories")
    # Driver options of the analog and I2C sensors, checked here so that `wichtel profile
    # check` finds a wrong chip or a typo, not the device (imported only when used).
    for i, ch in enumerate(prof["channels"]):
        if ch["driver"] in ("linux_iio", "adc", "i2c"):
            from agent.core import sensor_i2c

            try:
                sensor_i2c.check_options(ch)
            except DriverOptionError as e:
                raise ProfileError(("channels", i, "driver_options", e.option), e.value, e.expected) from e
    essential = [i for i, c in enumerate(prof["data_categories"]) if c["essential"]]
    if len(essential) != 1:
        where = ("data_categories", essential[1] if essential else 0, "essential")
        raise ProfileError(where, len(essential), "exactly one essential category (security, updates, consent)")
    for i, cat in enumerate(prof["data_categories"]):
        for name in cat["round"]:
            if name not in cat["fields"]:
                raise ProfileError(("data_categories", i, "round", name), name, "one of the category's fields")
    for name in prof["phase_names"]:
        if name not in prof["phases"]:
            raise ProfileError(("phase_names", name), name, "one of phases")
    for i, con in enumerate(prof["consumables"]):
        if con["source"] == "level_sensor" and con["channel"] is None:
            raise ProfileError(("consumables", i, "channel"), None, "the id of the channel that measures the level")
        if con["channel"] is not None and con["channel"] not in channel_ids:
            raise ProfileError(("consumables", i, "channel"), con["channel"], "the id of one of channels")
        if con["source"] == "meter" and con["channel"] is None:
            raise ProfileError(("consumables", i, "channel"), None, "the id of the channel whose flow is metered")
        if con["source"] != "meter":
            for key in ("phases", "rate_per", "factor"):
                if con[key] is not None:
                    raise ProfileError(("consumables", i, key), con[key], "no " + key + " unless source is meter")
        for j, name in enumerate(con["phases"] or ()):
            if name not in prof["phases"]:
                raise ProfileError(("consumables", i, "phases", j), name, "one of phases")
        if con["source"] in ("dose_count", "wear") and con["dose_per_cycle"] is None:
            raise ProfileError(("consumables", i, "dose_per_cycle"), None, "the amount used per cycle")
        if con["dose_per_cycle"] is not None and con["dose_per_cycle"] > con["capacity"]:
            raise ProfileError(
                ("consumables", i, "dose_per_cycle"),
                con["dose_per_cycle"],
                "at most the capacity " + str(con["capacity"]),
            )
        if con["category"] not in category_ids:
            raise ProfileError(("consumables", i, "category"), con["category"], "the id of one of data_categories")
    if prof["simulation"] is not None:
        _check_simulation(prof)
    if prof["cycle_model"] is not None:
        _check_cycle_model(prof["cycle_model"], prof["phases"], channel_ids, category_ids)
    if prof["phase_source"] is not None:
        _check_phase_source(prof["phase_source"], prof["phases"], channel_ids)
        for i, rule in enumerate(prof["phase_source"]["rules"] or ()):
            for j, cond in enumerate(rule["when"]):
                # One missed sample must not count as silence: the bound holds two periods.
                period = 1 / channel(prof, cond["channel"])["sample_hz"]
                if prof["phase_source"]["silence_s"] < 2 * period:
                    raise ProfileError(("phase_source", "silence_s"), prof["phase_source"]["silence_s"],
                                       "at least two sample periods of %s used in rules[%d].when[%d] (%g s)"
                                       % (cond["channel"], i, j, 2 * period))  # fmt: skip
    return prof


def _check_phase_source(src: dict, phases: list, channel_ids: list) -> None:
    """The cross-checks of phase_source: one kind, known phases and channels, thresholds
    that make a band, codes each once and readable on a line."""
    where = ("phase_source",)
    given = [k for k in ("rules", "gpio", "uart") if src[k] is not None]
    if len(given) != 1:
        raise ProfileError(where, ", ".join(given) or None, "exactly one of rules, gpio, uart")
    if src["fallback"] is not None and src["fallback"] not in phases:
        raise ProfileError(where + ("fallback",), src["fallback"], "one of phases")
    at: tuple
    for i, rule in enumerate(src["rules"] or ()):
        at = where + ("rules", i)
        if rule["phase"] not in phases:
            raise ProfileError(at + ("phase",), rule["phase"], "one of phases")
        for j, cond in enumerate(rule["when"]):
            _check_condition(cond, at + ("when", j), channel_ids)
    for kind in ("gpio", "uart"):
        if src[kind] is None:
            continue
        seen = set()
        for i, entry in enumerate(src[kind]["codes"]):
            at = where + (kind, "codes", i)
            if entry["phase"] not in phases:
                raise ProfileError(at + ("phase",), entry["phase"], "one of phases")
            if entry["code"] in seen:
                raise ProfileError(at + ("code",), entry["code"], "a code not already in the table")
            seen.add(entry["code"])
            if kind == "gpio" and entry["code"] >= 1 << len(src["gpio"]["lines"]):
                raise ProfileError(
                    at + ("code",), entry["code"], "a code the %d lines can show" % len(src["gpio"]["lines"])
                )
    uart = src["uart"]
    if uart is not None:
        for i, entry in enumerate(uart["codes"]):
            _check_printable(entry["code"], where + ("uart", "codes", i, "code"))
        if uart["prefix"] is not None:
            _check_printable(uart["prefix"], where + ("uart", "prefix"))
        longest = max(len(e["code"]) for e in uart["codes"]) + len(uart["prefix"] or "")
        if longest > uart["max_line"]:
            raise ProfileError(
                where + ("uart", "max_line"), uart["max_line"], "at least the longest line, %d" % longest
            )
        if (uart["tx"] is None) != (uart["rx"] is None):
            raise ProfileError(
                where + ("uart", "rx" if uart["rx"] is None else "tx"), None, "both tx and rx, or neither"
            )


def _check_condition(cond: dict, at: tuple, channel_ids: list) -> None:
    if cond["channel"] not in channel_ids:
        raise ProfileError(at + ("channel",), cond["channel"], "the id of one of channels")
    up = cond["above"] is not None
    if up == (cond["below"] is not None):
        raise ProfileError(at, None, "exactly one of above, below")
    enter, leave = ("above", "leave_below") if up else ("below", "leave_above")
    other = "leave_above" if up else "leave_below"
    if cond[other] is not None:
        raise ProfileError(at + (other,), cond[other], "no " + other + " with " + enter)
    if cond[leave] is None:
        cond[leave] = cond[enter]  # no band: leaves where it enters
    if (cond[leave] > cond[enter]) if up else (cond[leave] < cond[enter]):
        raise ProfileError(
            at + (leave,), cond[leave], "%s %s %s" % ("at most" if up else "at least", enter, cond[enter])
        )


def _check_printable(text: str, at: tuple) -> None:
    for c in text:
        if not " " < c <= "~":
            raise ProfileError(at, text, "printable ASCII without spaces (it is read from a serial line)")


def from_json(data: bytes) -> dict:
    """A compiled profile as a device reads it: size, nesting, numbers, strings and the
    JSON grammar checked before the JSON parser runs (inbound_json), then validated;
    ProfileError otherwise."""
    try:
        doc = inbound_json.loads(data, PROFILE_BOUNDS)
    except InboundJsonError as e:
        where = "" if e.at < 0 else " at byte " + str(e.at)
        raise ProfileError((), None, e.expected + " (a compiled profile in JSON)", got=e.got + where) from e
    return validate(doc)


def _check_simulation(prof: dict) -> None:
    """The simulation section names phases and channels of this profile, each channel model
    stays within its channel's range, and each fault says when it starts and how large it is."""
    sim = prof["simulation"]
    phases = prof["phases"]
    ranges = {c["id"]: c["range"] for c in prof["channels"]}
    program = None if sim["program"] is None else [step["phase"] for step in sim["program"]]
    for i, step in enumerate(sim["program"] or []):
        _sim_phase(step["phase"], phases, None, ("simulation", "program", i, "phase"))
    seen: list = []
    for i, model in enumerate(sim["channels"]):
        path = ("simulation", "channels", i)
        cid = _sim_channel(model["channel"], ranges, path + ("channel",))
        if cid in seen:
            raise ProfileError(path + ("channel",), cid, "a channel not described earlier in simulation.channels")
        seen.append(cid)
        given = [k for k in SIM_MODELS if model[k] is not None]
        if len(given) != 1:
            raise ProfileError(path, given, "exactly one model: one of " + ", ".join(SIM_MODELS))
        kind = given[0]
        spec = model[kind]
        lo, hi = ranges[cid]
        at = path + (kind,)
        if kind == "phases":
            for name in spec:
                if name not in phases:
                    raise ProfileError(at + (name,), name, "one of phases")
                _within(spec[name][0], lo, hi, at + (name, 0))
        elif kind == "switch":
            _within(spec["high"], lo, hi, at + ("high",))
            _within(spec["low"], lo, hi, at + ("low",))
        else:
            _sim_phase(spec["phase"], phases, program, at + ("phase",))
        if kind == "thermal":
            _within(spec["ambient"], lo, hi, at + ("ambient",))
            _within(spec["target"], lo, hi, at + ("target",))
            if spec["start"] is not None:
                _within(spec["start"], lo, hi, at + ("start",))
            if spec["target"] == spec["ambient"]:
                raise ProfileError(at + ("target",), spec["target"], "a target other than ambient")
        elif kind == "level":
            _within(spec["capacity"], lo, hi, at + ("capacity",))
            for key in ("dose", "refill_below"):
                if spec[key] is not None and spec[key] > spec["capacity"]:
                    raise ProfileError(at + (key,), spec[key], "at most the capacity " + str(spec["capacity"]))
    ids: list = []
    for i, fault in enumerate(sim["faults"]):
        path = ("simulation", "faults", i)
        if fault["id"] in ids:
            raise ProfileError(path + ("id",), fault["id"], "an id not used earlier in simulation.faults")
        ids.append(fault["id"])
        _sim_channel(fault["channel"], ranges, path + ("channel",))
        if fault["phase"] is not None and fault["phase"] not in phases:
            raise ProfileError(path + ("phase",), fault["phase"], "one of phases")
        if (fault["onset_cycle"] is None) == (fault["onset_h"] is None):
            raise ProfileError(path, fault["id"], "a fault with either onset_cycle or onset_h (when it starts)")
        size = fault["size"]
        kind = fault["kind"]
        if kind == "stuck" and size is not None:
            raise ProfileError(path + ("size",), size, "no size: a stuck sensor repeats its last reading")
        if kind in ("drift", "step") and size is None:
            raise ProfileError(path + ("size",), None, "the size of the " + kind + " in the channel's unit")
        if kind == "noise" and (size is None or size <= 0):
            raise ProfileError(path + ("size",), size, "the noise's standard deviation, above 0")
        if kind == "dropout" and size is not None and not 0 < size <= 1:
            raise ProfileError(path + ("size",), size, "the share of readings lost, above 0 and at most 1")


def _sim_phase(name: str, phases: list, program: list | None, path: tuple) -> None:
    """A phase a simulated cycle runs: one of phases, not the resting one (the time between
    cycles), and one of the program's when the section gives a program."""
    if name not in phases or name == phases[0]:
        raise ProfileError(path, name, "one of phases other than the resting one (" + phases[0] + ")")
    if program is not None and name not in program:
        raise ProfileError(path, name, "a phase of simulation.program (" + ", ".join(program) + ")")


def _sim_channel(cid: str, ranges: dict, path: tuple) -> str:
    if cid not in ranges:
        raise ProfileError(path, cid, "the id of one of channels")
    return cid


def _within(value: float, lo: float, hi: float, path: tuple) -> None:
    if not lo <= value <= hi:
        raise ProfileError(path, value, "a value within the channel's range [" + str(lo) + ", " + str(hi) + "]")


def _check_unique(prof: dict, key: str) -> None:
    seen = set()
    for i, item in enumerate(prof[key]):
        if item["id"] in seen:
            raise ProfileError((key, i, "id"), item["id"], "an id not used earlier in " + key)
        seen.add(item["id"])


def channel(prof: dict, channel_id: str) -> dict:
    """The channel of a validated profile with this id; ConfigError naming the known ones when absent."""
    for ch in prof["channels"]:
        if ch["id"] == channel_id:
            return ch  # type: ignore[no-any-return]
    raise ConfigError("no channel %r; known: %s" % (channel_id, ", ".join(ch["id"] for ch in prof["channels"])))


def release() -> None:
    """Forget the validation code (this module and the schema validators) once a profile
    is checked: on a board their code would stay in the heap for nothing. Importing
    agent.core.profile again brings them back. The caller drops its own references."""
    import sys

    import agent.core as package

    for name in ("profile", "schema"):
        sys.modules.pop("agent.core." + name, None)
        if name in package.__dict__:
            delattr(package, name)
