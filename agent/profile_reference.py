"""What each appliance profile field means, with an example, keyed by its field path; and the
walkthrough "Your first appliance profile". Host only: docs/profile.md is made from it.

Type, default, range and (mostly) unit are not written here: tools/profile_doc.py reads them
from the validators in agent/core (the device's heap carries none of this text). A unit is
given here only for a number whose validator names none. tests/test_profile_doc.py checks
that every schema field has an entry here and every entry a schema field, that each example
passes its field's validator, and that docs/profile.md is what the schema and this give.
Paths: "channels[].id" is the id of every item of channels; a processor kind's settings
are "channels[].processors[].settings[KIND].NAME".
"""

from agent.core.errors import ConfigError

_SET = "channels[].processors[].settings"

# Section path -> (title, what the section is). "" is the profile itself.
SECTIONS: dict = {
    "": ("The profile", "The top level of the file. Unknown keys are errors everywhere: a typo is never ignored."),
    "appliance": ("The appliance", "Which appliance the profile is for; shown on the device's local page."),
    "channels[]": (
        "Channels",
        "One item per measured quantity. A sample outside `range` is a sensor fault, not data; what is computed from "
        "the samples is chosen by `processors`.",
    ),
    "channels[].processors[]": (
        "Processors of a channel",
        "What the device computes from a channel's samples; each event it makes belongs to `category`, which the "
        "privacy gate lets out only as that category's consent and budget allow. `settings` depend on `kind` (below).",
    ),
    _SET + "[anomaly]": (
        "Settings of an `anomaly` processor",
        "A streaming detector on every sample, judged within the program phase; alarm-level scores become events "
        "with an explanation, at most one per `holdoff_s` unless the score rises by `escalate`.",
    ),
    _SET + "[cycle_feature]": (
        "Settings of a `cycle_feature` processor",
        "One value per program cycle (how long `phase` took, or the channel's mean or peak in it), compared with "
        "the median of earlier normal cycles: a drift no single sample shows (a clogging pump, scale building up).",
    ),
    _SET + "[aggregate]": (
        "Settings of an `aggregate` processor",
        "Count, minimum, mean and maximum of the channel over fixed windows (usage statistics).",
    ),
    "consumables[]": (
        "Consumables",
        "What the appliance uses up and the user refills (detergent, beans, salt, a filter). The device learns the "
        "household's usage, forecasts the empty date and suggests a reorder as the user chose (docs/consumables.md).",
    ),
    "data_categories[]": (
        "Data categories",
        "Everything that may leave the device belongs to one category, and only its listed `fields` leave. Exactly "
        "one category is `essential` (security, updates, consent receipts: always on); every other one is off until "
        "the user consents (docs/privacy.md).",
    ),
    "uplink": ("The uplink", "The MQTT broker of the manufacturer's service (TLS; docs/uplink.md)."),
}

# Field path -> {"doc": meaning, "example": a value the field's validator accepts[, "unit": ...]}.
FIELDS: dict = {
    "wichtel_profile": {"doc": "The profile format version; this agent reads format 1.", "example": 1},
    "appliance": {
        "doc": "Maker, model, hardware revision and kind of appliance.",
        "example": {"maker": "Kesselwerk", "model": "K 2", "hardware_revision": "B1", "kind": "kettle"},
    },
    "phases": {
        "doc": "The program phases the appliance reports, the resting one first (a cycle runs from leaving it to "
        "returning to it).",
        "example": ["idle", "heating", "keep_warm"],
    },
    "channels": {
        "doc": "The measured quantities (below).",
        "example": [{"id": "water_temp", "unit": "degC", "driver": "sim", "sample_hz": 1, "range": [0, 110]}],
    },
    "data_categories": {
        "doc": "The kinds of data that may leave the device (below).",
        "example": [
            {
                "id": "essential",
                "essential": True,
                "title": {"en": "Safety", "de": "Sicherheit"},
                "purpose": {"en": "Keeps the device safe.", "de": "Hält das Gerät sicher."},
                "fields": ["status", "firmware"],
                "retention_days": 365,
            }
        ],
    },
    "uplink": {"doc": "Where messages go (below).", "example": {"host": "mqtt.example.net", "port": 8883}},
    "consumables": {
        "doc": "What the appliance uses up (below).",
        "example": [
            {
                "id": "filter",
                "name": {"en": "Water filter", "de": "Wasserfilter"},
                "unit": "l",
                "capacity": 100,
                "source": "dose_count",
                "dose_per_cycle": 1.2,
            }
        ],
    },
    "phase_names": {
        "doc": "Names of phases for people, in English and German; each key one of `phases`. A phase without a "
        "name is shown as its id, capitalised.",
        "example": {"heating": {"en": "Heating", "de": "Aufheizen"}},
    },
    "appliance.maker": {"doc": "The manufacturer, as the user knows it.", "example": "Kesselwerk"},
    "appliance.model": {"doc": "The model name.", "example": "K 2"},
    "appliance.hardware_revision": {"doc": "The hardware revision the profile fits.", "example": "B1"},
    "appliance.kind": {
        "doc": "The kind of appliance. The simulator (`wichtel run --simulate`, `wichtel simulate`) exists for "
        "`washing_machine`, `dishwasher` and `coffee_machine`.",
        "example": "kettle",
    },
    "channels[].id": {
        "doc": "The channel's id, unique among channels; events and messages name it.",
        "example": "water_temp",
    },
    "channels[].unit": {"doc": "The unit of the samples, as shown to people.", "example": "degC"},
    "channels[].driver": {
        "doc": "Where samples come from: `sim` (the simulated appliance), `replay` (a recorded trace; any channel "
        "can be replayed with `wichtel run --replay`), or a sensor: `linux_iio` (Pi), `adc` (board), `i2c`, "
        "`onewire`, `hx711`, `pulse_counter` (both). Their settings are `driver_options`.",
        "example": "sim",
    },
    "channels[].sample_hz": {"doc": "How often the channel is sampled.", "example": 1},
    "channels[].range": {
        "doc": "The physically possible values: a sample outside is a sensor fault (an event in the category of "
        "the channel's first processor, if it has one), never data.",
        "example": [0, 110],
        "unit": "the channel's unit",
    },
    "channels[].driver_options": {
        "doc": "Settings for the driver: numbers, or names (such as `chip: ads1115`); which ones depends on "
        "`driver`.",
        "example": {"chip": "ads1115", "address": 72, "input": 0},
    },
    "channels[].label": {
        "doc": "The channel's name for people; the id when not given.",
        "example": {"en": "Water temperature", "de": "Wassertemperatur"},
    },
    "channels[].processors": {
        "doc": "What is computed from the samples (below).",
        "example": [{"kind": "cycle_feature", "settings": {"phase": "heating"}}],
    },
    "channels[].processors[].kind": {"doc": "Which processor; its settings are below.", "example": "cycle_feature"},
    "channels[].processors[].category": {
        "doc": "The data category (its `id`) of the processor's events.",
        "example": "maintenance",
    },
    "channels[].processors[].settings": {
        "doc": "The processor's settings; which ones depends on `kind` (below).",
        "example": {"phase": "heating", "feature": "duration"},
    },
    "channels[].processors[].hint": {
        "doc": "The likely cause, added to the event's explanation for the person reading it.",
        "example": {
            "en": "scale may be building up; descaling helps.",
            "de": "es setzt sich womöglich Kalk ab; Entkalken hilft.",
        },
    },
    _SET + "[anomaly].detector": {
        "doc": "`wichtel`: deviation from what is usual in this phase; `zscore`: the "
        "textbook baseline (docs/detection.md).",
        "example": "wichtel",
    },
    _SET + "[anomaly].min_score": {"doc": "The score (0 to 1) from which a sample is an event.", "example": 0.8},
    _SET + "[anomaly].holdoff_s": {
        "doc": "At most one event per this time, unless the score rises by `escalate`.",
        "example": 3600,
    },
    _SET + "[anomaly].escalate": {
        "doc": "A score this much above the last event's is news even within `holdoff_s`.",
        "example": 0.2,
    },
    _SET + "[anomaly].alarm": {
        "doc": "How far from usual (in the detector's scaled deviations) scores as an alarm.",
        "example": 4,
    },
    _SET + "[anomaly].warmup": {"doc": "Samples the detector learns from before it may alarm.", "example": 600},
    _SET + "[anomaly].phase_warmup": {
        "doc": "Samples a phase must have been seen in before its readings may alarm.",
        "example": 100,
    },
    _SET + "[cycle_feature].phase": {"doc": "The phase whose feature is learned per cycle.", "example": "heating"},
    _SET + "[cycle_feature].feature": {
        "doc": "`duration` of the phase, or the channel's `mean` or `peak` in it.",
        "example": "duration",
    },
    _SET + "[cycle_feature].history": {"doc": "Earlier normal cycles the reference is the median of.", "example": 12},
    _SET + "[cycle_feature].recent": {"doc": "Last cycles whose median is compared with the reference.", "example": 3},
    _SET + "[cycle_feature].threshold": {
        "doc": "How far from the reference (in robust deviations: MAD scaled) is a change.",
        "example": 4,
    },
    _SET + "[cycle_feature].min_change_pct": {
        "doc": "A change must also be at least this large against the reference.",
        "example": 20,
    },
    _SET + "[cycle_feature].holdoff_cycles": {
        "doc": "Cycles after an event before the next, unless the change grew by half.",
        "example": 5,
    },
    _SET + "[aggregate].window_s": {"doc": "The length of each summary window.", "example": 21600},
    "consumables[].id": {"doc": "The consumable's id, unique among consumables.", "example": "filter"},
    "consumables[].name": {"doc": "Its name for people.", "example": {"en": "Water filter", "de": "Wasserfilter"}},
    "consumables[].unit": {"doc": "The unit of its amount.", "example": "l"},
    "consumables[].capacity": {"doc": "The amount when full.", "example": 100, "unit": "the consumable's unit"},
    "consumables[].source": {
        "doc": "How its level is known: `level_sensor` (a channel measures it; `channel` needed), `dose_count` "
        "(each program cycle uses `dose_per_cycle`; needed then) or `wear` (counted like `dose_count`).",
        "example": "dose_count",
    },
    "consumables[].channel": {
        "doc": "The id of the channel that measures the level; required with `source: level_sensor`.",
        "example": "bean_hopper",
    },
    "consumables[].dose_per_cycle": {
        "doc": "The amount one program cycle uses; required unless `source: level_sensor`; at most `capacity`.",
        "example": 1.2,
        "unit": "the consumable's unit",
    },
    "consumables[].lead_time_days": {
        "doc": "How long a delivery takes: the reorder comes when running out within this time gets likely "
        "(the user may set their own).",
        "example": 2,
    },
    "consumables[].dose_tolerance": {
        "doc": "How far a counted dose may be off (the dosing pump's specification), as a share: the reorder "
        "moment takes the counted level at that worst.",
        "example": 0.15,
        "unit": "share (0.1 = 10%)",
    },
    "consumables[].category": {
        "doc": "The data category (its `id`) of its events and shared reorder suggestions.",
        "example": "consumables",
    },
    "data_categories[].id": {
        "doc": "The category's id, unique among categories; the last part of its MQTT topic.",
        "example": "maintenance",
    },
    "data_categories[].title": {
        "doc": "Its name for the user (local page, consent).",
        "example": {"en": "Maintenance alerts", "de": "Wartungshinweise"},
    },
    "data_categories[].purpose": {
        "doc": "What it is for, in plain words: the user consents to this text (the consent receipt carries its hash).",
        "example": {
            "en": "Tells the service team early when a part starts to fail.",
            "de": "Meldet dem Kundendienst früh, wenn ein Bauteil nachlässt.",
        },
    },
    "data_categories[].fields": {
        "doc": "The only fields of an event that leave the device in this category; the rest stay. The essential "
        "category carries the agent's own messages (status, consent receipts, erasure requests), whose fields "
        "are `status`, `firmware`, `update`, `category`, `choice`, `text_hash`, `text_version` and `scope`.",
        "example": ["channel", "phase", "feature", "value", "baseline", "change_pct", "score", "time"],
    },
    "data_categories[].retention_days": {
        "doc": "How long the device keeps this data, as the local page and the export tell the user.",
        "example": 90,
    },
    "data_categories[].essential": {
        "doc": "`true` for exactly one category: always on, not switchable.",
        "example": True,
    },
    "data_categories[].upstream_retention_days": {
        "doc": "How long the recipients keep it, as told to the user.",
        "example": 365,
    },
    "data_categories[].recipients": {
        "doc": "Who receives it, as told to the user.",
        "example": ["the manufacturer's customer service"],
    },
    "data_categories[].time_grain_s": {"doc": "A message's `time` is floored to this grain.", "example": 3600},
    "data_categories[].round": {
        "doc": "Rounding steps per field (each one of `fields`); other decimal values keep 3 significant digits.",
        "example": {"change_pct": 5},
    },
    "data_categories[].priority": {
        "doc": "Which messages give way first when the outbox is full and the link is down: a new message "
        "pushes out the oldest one of the lowest priority. Consent receipts and erasure requests rank above "
        "every category and are never pushed out; the device's status is `high`; command replies rank below all.",
        "example": "high",
    },
    "data_categories[].pseudonymous": {
        "doc": "Sent under a pseudonym for this device and category instead of the device id.",
        "example": False,
    },
    "data_categories[].daily_budget_bytes": {
        "doc": "What this category may send per device-day; its messages beyond are not sent (`over_budget`).",
        "example": 2048,
    },
    "data_categories[].version": {
        "doc": "The version of the category's text; consent receipts carry it.",
        "example": 1,
    },
    "uplink.host": {
        "doc": "The broker's host name (the factory tool writes it into each device bundle).",
        "example": "mqtt.example.net",
    },
    "uplink.port": {"doc": "The broker's TLS port.", "example": 8883},
    "uplink.topic_prefix": {"doc": "The first part of every topic: `PREFIX/v1/DEVICE/CATEGORY`.", "example": "wichtel"},
    "uplink.max_payload": {
        "doc": "The largest message the device sends; larger ones are refused, not cut.",
        "example": 1024,
    },
    "uplink.keepalive_s": {"doc": "The MQTT keepalive of the board runtime's link.", "example": 60},
}

INTRO = """
# Appliance profiles

An appliance profile tells a Wichtel agent what an appliance measures, what it computes
from it, what it may send and to whom. The manufacturer writes it in YAML; `wichtel
profile check FILE` validates it (exit 0 when valid, 2 with the first error), and
`wichtel profile compile FILE -o FILE.json` writes the compact JSON a device reads. The
device checks the compiled profile again with the same schema (agent/core/profile.py).
Examples: agent/profiles/.

This file is generated by `python -m tools.profile_doc --write` from the validators and
agent/profile_reference.py; tests/test_profile_doc.py fails when the two drift apart.

## Your first appliance profile

A walk from an empty file to a valid profile for a small appliance: an electric kettle
with a temperature sensor and a water filter cartridge. Each step adds to the file and
shows what `wichtel profile check` says; the errors are the ones you will meet.

Every error names the file and line, the field path (`channels[0].sample_rate`: the key
`sample_rate` of the first channel), what it got and what it expected. Fix that one
error and check again: the check stops at the first.
"""

REFERENCE_INTRO = """
## Reference

Every field, from the schema the validator uses. Default "required": the field must be
given; "none": it may be left out and has no value then. Ranges include their ends.
Texts `{en, de}` are a mapping with an English and a German text.
"""

WALKTHROUGH_FILE = "kettle.yaml"

# Each step: a title, what to do, the YAML it adds (appended to the file so far), where it
# fixes an earlier step what it replaces ("replace": [(old, new)]), and what to take from
# the check's answer ("after").
WALKTHROUGH: list = [
    {
        "title": "1. An empty file",
        "text": "Start with an empty `kettle.yaml` and check it, to see the command work.",
        "yaml": "",
    },
    {
        "title": "2. The format and the appliance",
        "text": "Name the profile format and the appliance. `kind` is an identifier: lower case, digits and `_`.",
        "yaml": """
wichtel_profile: 1
appliance:
  maker: Kesselwerk
  model: K 2
  hardware_revision: B1
  kind: kettle
""",
        "after": "A required key is missing: the line is that of the mapping it belongs in (here the top level).",
    },
    {
        "title": "3. Phases and a channel",
        "text": "List the program phases, the resting one first, and the channel that measures the water "
        "temperature. A cycle runs from leaving `idle` to returning to it. The `cycle_feature` processor "
        "learns how long heating takes per cycle: as scale builds up, it takes longer. One key has a typo.",
        "yaml": """
phases: [idle, heating, keep_warm]
phase_names:
  heating: {en: Heating, de: Aufheizen}
  keep_warm: {en: Keeping warm, de: Warmhalten}
channels:
  - id: water_temp
    unit: degC
    driver: sim
    sample_rate: 1
    range: [0, 110]
    label: {en: Water temperature, de: Wassertemperatur}
    processors:
      - kind: cycle_feature
        category: maintenance
        settings: {phase: heating, feature: duration, min_change_pct: 20}
        hint:
          en: scale may be building up on the heating plate; descaling helps.
          de: auf der Heizplatte setzt sich womöglich Kalk ab; Entkalken hilft.
""",
        "after": "An unknown key is an error, never ignored; the message lists the keys that are known there.",
    },
    {
        "title": "4. Fix the typo",
        "text": "The key is `sample_hz`.",
        "after": "The check gets further: the next required key is missing.",
        "yaml": "",
        "replace": [("    sample_rate: 1\n", "    sample_hz: 1\n")],
    },
    {
        "title": "5. Data categories and the uplink",
        "text": "Say what may leave the device, for what and to whom. The essential category is always "
        "on; keep its fields as they are, the agent's own messages (status, consent receipts, erasure "
        "requests) use them. Every other category is off until the user agrees. Add these at the end of the "
        "file. One field here should not be there.",
        "yaml": """
uplink:
  host: mqtt.example.net
  port: 8883
data_categories:
  - id: essential
    essential: true
    title: {en: Safety and updates, de: Sicherheit und Updates}
    purpose:
      en: Keeps the device safe and confirms your privacy choices. It is always on.
      de: Hält das Gerät sicher und bestätigt Ihre Datenschutz-Entscheidungen. Es ist immer an.
    fields: [status, firmware, update, category, choice, text_hash, text_version, scope]
    retention_days: 365
    upstream_retention_days: 365
    recipients: [the manufacturer's update service]
    time_grain_s: 86400
  - id: maintenance
    title: {en: Maintenance alerts, de: Wartungshinweise}
    purpose:
      en: When heating takes longer and longer, the service team learns it early. Only the alert leaves.
      de: Wenn das Aufheizen immer länger dauert, erfährt der Kundendienst es früh. Nur der Hinweis wird gesendet.
    fields: [channel, phase, feature, value, baseline, change_pct, score, time, serial]
    retention_days: 90
    recipients: [the manufacturer's customer service]
    round: {change_pct: 5}
""",
        "after": "A field that identifies a device, a network or a person can never be allowlisted.",
    },
    {
        "title": "6. Drop the serial number, add the water filter",
        "text": "Remove `serial`. The filter cartridge lasts about 100 litres; the device counts what each "
        "boil uses and suggests a new cartridge in time. Its events belong to the data category "
        "`consumables` (the default), so the profile needs one of that id: the first lines added continue "
        "the list of `data_categories`, which ends the file.",
        "yaml": """
  - id: consumables
    title: {en: Reorder suggestions, de: Nachbestell-Vorschläge}
    purpose:
      en: When the filter is nearly spent, a suggestion can go to the shop you chose, only if you pick "share".
      de: Ist der Filter fast verbraucht, kann ein Vorschlag an Ihren Händler gehen, nur wenn Sie „teilen“ wählen.
    fields: [consumable, event, level_pct, days_left, product, retailer, time]
    retention_days: 30
    recipients: [the retailer you choose]
consumables:
  - id: water_filter
    name: {en: Water filter, de: Wasserfilter}
    unit: l
    capacity: 100
    source: dose_count
    lead_time_days: 3
""",
        "replace": [
            (
                "    fields: [channel, phase, feature, value, baseline, change_pct, score, time, serial]\n",
                "    fields: [channel, phase, feature, value, baseline, change_pct, score, time]\n",
            )
        ],
        "after": "Some rules join fields: a counted consumable needs the amount one cycle uses.",
    },
    {
        "title": "7. The dose per cycle",
        "text": "A boil uses about 1.2 litres.",
        "yaml": "",
        "replace": [("    lead_time_days: 3\n", "    dose_per_cycle: 1.2\n    lead_time_days: 3\n")],
        "after": "The profile is valid. `wichtel profile compile kettle.yaml -o kettle.json` writes what the "
        "device reads; the device checks it again with the same schema. To run it on a host, `wichtel run "
        "--profile kettle.yaml --replay TRACE.csv` replays a recorded trace (`--simulate` needs a simulator of "
        "the appliance kind, which exists for the washing machine, dishwasher and coffee machine only).",
    },
]

_HEADER = "# Appliance profile: electric kettle with a water filter.\n"


def profile_at(step: dict) -> str:
    """The whole file after this step of the walkthrough."""
    text = ""
    for s in WALKTHROUGH:
        for old, new in s.get("replace", []):
            if text.count(old) != 1:
                raise ConfigError("walkthrough step %r: %r is not once in the file" % (s["title"], old))
            text = text.replace(old, new)
        add = s["yaml"].lstrip("\n")
        if add:
            text = (text or _HEADER) + add
        if s is step:
            return text
    raise ConfigError("not a step of the walkthrough")
