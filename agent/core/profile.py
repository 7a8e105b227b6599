"""The appliance profile schema and its cross-checks, on plain data.

The host loads YAML (with line numbers) and devices load compiled JSON (from_json,
bounded before it is parsed); both end here, so a device checks its profile exactly as
the factory tool did.
"""

from agent.core import inbound_json, limits, outbox, processors
from agent.core.errors import ConfigError, DriverOptionError, InboundJsonError, ProfileError
from agent.core.schema import AnyMap, Bool, ListOf, Map, Num, NumOrId, OneOf, Range, Str

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
        "source": OneOf(("level_sensor", "dose_count", "wear")),
    },
    {
        "channel": (_ID, None),
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
        "recipients": (ListOf(_TEXT, 0, 4), []),
        "time_grain_s": (Num(1, 86_400, "seconds", integer=True), 3600),
        "round": (AnyMap(Num(0, 1e6), limits.MAX_FIELDS_PER_CATEGORY), {}),
        "pseudonymous": (Bool(), False),
        "daily_budget_bytes": (Num(0, 1_000_000, "bytes per day", integer=True), 4096),
        "version": (Num(1, 1_000_000, integer=True), 1),
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

_APPLIANCE = Map(
    {"maker": _TEXT, "model": _TEXT, "hardware_revision": Str(32), "kind": _ID},
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
    },
)


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
        if con["source"] != "level_sensor" and con["dose_per_cycle"] is None:
            raise ProfileError(("consumables", i, "dose_per_cycle"), None, "the amount used per cycle")
        if con["dose_per_cycle"] is not None and con["dose_per_cycle"] > con["capacity"]:
            raise ProfileError(
                ("consumables", i, "dose_per_cycle"),
                con["dose_per_cycle"],
                "at most the capacity " + str(con["capacity"]),
            )
        if con["category"] not in category_ids:
            raise ProfileError(("consumables", i, "category"), con["category"], "the id of one of data_categories")
    return prof


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
