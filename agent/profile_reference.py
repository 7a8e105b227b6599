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
        "A streaming detector on every sample, judged within the program phase, and with a `reference` the "
        "readings' level in each phase against healthy units; an alarm raises one alert per episode (reported "
        "again when its deviation grows by half, cleared after `clear_s` without alarm).",
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
    "privacy_notice": (
        "Privacy notice",
        "What GDPR Art. 13 asks the manufacturer to tell the user, shown on the local page's privacy section in "
        "both languages with each category's purpose, legal basis, recipients and retention (docs/privacy.md). "
        "Without it the page says the manufacturer has not given these details.",
    ),
    # -- simulation ------------------------------------------------------------------------
    "simulation": (
        "Simulation",
        "How `wichtel run --simulate` and `wichtel simulate` make this appliance (docs/simulation.md). Every part "
        "is optional: what is left out is derived from the channels' units and ranges and the profile's phases, so "
        "every valid profile can be simulated, whatever its channels' drivers. A `washing_machine`, `dishwasher` or "
        "`coffee_machine` whose phases are its built-in model's, without `program` and `channels` here, runs that "
        "model (and may take its built-in faults).",
    ),
    "simulation.program[]": (
        "Steps of the simulated program",
        "One program cycle: these phases in order, each for `seconds` (a phase with a `thermal` model ends early "
        "when its temperature reaches the target). Between cycles the appliance rests (`idle_s`) in the resting "
        "phase, the first of `phases`.",
    ),
    "simulation.channels[]": (
        "Simulated channels",
        "The model of one channel's readings: exactly one of `phases`, `thermal`, `level` or `switch`. Readings "
        "are kept within the channel's `range`, as a sensor's are; only a fault takes them out.",
    ),
    "simulation.channels[].thermal": (
        "A thermal model",
        "A temperature that moves towards `target` at `rate_per_s` during `phase` (heating, or cooling for a "
        "target below ambient) and returns towards `ambient` outside it.",
    ),
    "simulation.channels[].level": (
        "A level model",
        "A tank or hopper: full at the start, one `dose` less at each cycle's `phase`, refilled between cycles once "
        "below `refill_below`.",
    ),
    "simulation.channels[].switch": (
        "A switch model",
        "A reading that is `low`, and `high` for `seconds` at random times, `per_hour` of them on average (a door "
        "opened).",
    ),
    "simulation.faults[]": (
        "Simulated faults",
        "Sensor faults `--fault ID` can inject: from its onset, the fault changes its channel's readings (in "
        "`phase` only, when given). `drift` adds `size` per hour, `step` adds `size`, `stuck` repeats the last "
        "reading before the onset, `noise` adds noise of standard deviation `size`, `dropout` gives no reading (a "
        "share `size` of them; all when not given), which the device reports as a sensor fault (`absent`). A "
        "reading a fault takes out of the channel's range is a sensor fault too.",
    ),
    "cycle_model": (
        "The cycle model",
        "Several channels judged together, once per program cycle (docs/detection.md): a clogging pump shows as "
        "more current and a longer drain at once, and a change that breaks how the features usually move together "
        "is found even when each stays within its own range. Hotelling's T² and the residual Q of a small PCA model "
        "of healthy cycles, learned on the unit or seeded from `reference`; its alerts are one per episode, like the "
        "processors'.",
    ),
    "cycle_model.features[]": (
        "Features of the cycle model",
        "One number per cycle each: a phase's `duration`, or a channel's `mean` or `peak` in a phase. A feature of "
        "the resting phase (the first of `phases`) measures the rest before the cycle (a valve leaking while idle).",
    ),
    "cycle_model.reference": (
        "The cycle model's reference",
        "Measured on healthy units (fleet/reference.py pools their moments): one mean and one spread per feature, "
        "and the correlations of each pair.",
    ),
    "cycle_model.settings": ("Settings of the cycle model", "How sure it must be, and how long it learns."),
    "phase_source": (
        "The phase source",
        'On a real appliance: exactly one of `rules`, `gpio`, `uart` (see "Where the phase comes from" above). '
        "The same section works on a Pi and on a board.",
    ),
    "phase_source.rules[]": (
        "Phase rules",
        "Tried in order at every sampling tick; the first whose conditions all hold gives the phase, none: `fallback`.",
    ),
    "phase_source.rules[].when[]": (
        "Conditions of a phase rule",
        "One channel against a threshold, with hysteresis: exactly one of `above` and `below`. A condition holds "
        "from a reading beyond its enter threshold until one beyond its leave threshold; readings between change "
        "nothing.",
    ),
    "phase_source.gpio": (
        "Phase from GPIO lines",
        "The controller shows the phase as a binary code on 1 to 3 lines; the first line is bit 0.",
    ),
    "phase_source.gpio.codes[]": ("GPIO codes", "One code and the phase it means; a code not listed is `fallback`."),
    "phase_source.uart": (
        "Phase from a UART",
        "The controller sends lines: `prefix`, then a code (`PH=3`, `STATE:DRAIN`), ended by CR, LF or both. "
        "Lines longer than `max_line`, without the prefix or with a code not listed are counted and ignored.",
    ),
    "phase_source.uart.codes[]": ("UART codes", "One code as sent and the phase it means."),
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
    "privacy_notice": {
        "doc": "Who is responsible for the data and how to reach them (below).",
        "example": {
            "controller": "Kesselwerk GmbH, Hauptstraße 1, 12345 Musterstadt, Germany",
            "contact": "privacy@kesselwerk.example",
            "support": "+49 30 1234567, service@kesselwerk.example",
            "storage": {"en": "servers in Frankfurt, Germany", "de": "Server in Frankfurt am Main"},
            "authority": {"en": "the data protection authority of Berlin", "de": "die Berliner Datenschutzbeauftragte"},
        },
    },
    "privacy_notice.controller": {
        "doc": "The controller: the company's name and postal address.",
        "example": "Kesselwerk GmbH, Hauptstraße 1, 12345 Musterstadt, Germany",
    },
    "privacy_notice.contact": {
        "doc": "Where the user writes about their data: an e-mail address or a web form.",
        "example": "privacy@kesselwerk.example",
    },
    "privacy_notice.support": {
        "doc": "Customer service, as the page's device section shows it.",
        "example": "+49 30 1234567, service@kesselwerk.example",
    },
    "privacy_notice.storage": {
        "doc": "Where the data is stored once it left the device (country or region, in both languages).",
        "example": {"en": "servers in Frankfurt, Germany", "de": "Server in Frankfurt am Main"},
    },
    "privacy_notice.authority": {
        "doc": "A supervisory authority the user may complain to, named in both languages.",
        "example": {"en": "the data protection authority of Berlin", "de": "die Berliner Datenschutzbeauftragte"},
    },
    "privacy_notice.dpo": {
        "doc": "The data protection officer's contact, where the company has one.",
        "example": "dpo@kesselwerk.example",
    },
    "privacy_notice.market": {
        "doc": "Where the appliance is sold: the page's default time zone (DE, AT, CH: Central European Time; GB: "
        "UK time; US: US Eastern Time), which the user can change on the page.",
        "example": "DE",
    },
    "data_categories[].legal_basis": {
        "doc": "The legal basis under GDPR Art. 6(1): `consent`, `contract`, `legal_obligation` or "
        "`legitimate_interest`. Not given: consent for an optional category, legitimate interest for the essential "
        "one. The page says it in words.",
        "example": "consent",
    },
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
    "cycle_model": {
        "doc": "Several channels judged together once per cycle (below); none: each channel is judged on its own.",
        "example": {
            "features": [
                {"feature": "duration", "phase": "heating"},
                {"feature": "mean", "channel": "heater_current", "phase": "heating"},
            ]
        },
    },
    "cycle_model.category": {"doc": "The data category (its `id`) of the model's alerts.", "example": "maintenance"},
    "cycle_model.hint": {
        "doc": "The likely cause, added to the alert's explanation.",
        "example": {"en": "the service can check it.", "de": "der Kundendienst kann es prüfen."},
    },
    "cycle_model.advice": {
        "doc": "What the user can do when the model raises an alert, shown with it on the local page (never sent).",
        "example": {"en": "Call customer service.", "de": "Rufen Sie den Kundendienst an."},
    },
    "cycle_model.features": {
        "doc": "The features of each cycle (below); a feature only once.",
        "example": [
            {"feature": "duration", "phase": "heating"},
            {"feature": "peak", "channel": "t", "phase": "heating"},
        ],
    },
    "cycle_model.features[].feature": {"doc": "`duration`, `mean` or `peak`.", "example": "mean"},
    "cycle_model.features[].phase": {"doc": "The phase it is measured in; one of `phases`.", "example": "heating"},
    "cycle_model.features[].channel": {
        "doc": "The channel of a `mean` or `peak`; none for a `duration`.",
        "example": "heater_current",
    },
    "cycle_model.reference": {
        "doc": "The manufacturer's reference from healthy units, used from the first cycle; none: the model learns "
        "`learn_cycles` cycles of this unit first (and a fault present at install becomes its normal).",
        "example": {"mean": [1800, 9.5], "sd": [60, 0.3], "corr": [0.4]},
    },
    "cycle_model.reference.mean": {"doc": "Each feature's mean, in the order of `features`.", "example": [1800, 9.5]},
    "cycle_model.reference.sd": {"doc": "Each feature's standard deviation.", "example": [60, 0.3]},
    "cycle_model.reference.corr": {
        "doc": "The correlations of the features above the diagonal, row by row (r01, r02, .., r12, ..); none: "
        "taken as uncorrelated.",
        "example": [0.4],
    },
    "cycle_model.settings.alarm_rate": {
        "doc": "The share of healthy cycles allowed over a limit (T² and Q share it).",
        "example": 0.01,
    },
    "cycle_model.settings.confirm": {"doc": "Cycles in a row over a limit before an alert.", "example": 2},
    "cycle_model.settings.learn_cycles": {
        "doc": "Without a reference: cycles learned before the first is judged (at least the features + 3).",
        "example": 30,
    },
    "cycle_model.settings.reference_cycles": {
        "doc": "The cycles the reference counts as; the unit's own normal cycles outweigh it after as many.",
        "example": 30,
    },
    "cycle_model.settings.clear_cycles": {"doc": "Normal cycles in a row that end an alert episode.", "example": 3},
    "cycle_model.settings": {"doc": "The model's settings (below).", "example": {"confirm": 2}},
    "phase_source": {
        "doc": "Where the program phase comes from on a real appliance (below); none: from the simulator or a "
        "replayed trace.",
        "example": {"rules": [{"phase": "heating", "when": [{"channel": "heater_current", "above": 8}]}]},
    },
    "phase_source.rules": {
        "doc": "The phase inferred from the channels' latest valid readings (below).",
        "example": [{"phase": "heating", "when": [{"channel": "heater_current", "above": 8, "leave_below": 6}]}],
    },
    "phase_source.gpio": {
        "doc": "The phase from the controller's GPIO lines (below).",
        "example": {"lines": [17, 27], "codes": [{"code": 0, "phase": "idle"}, {"code": 1, "phase": "heating"}]},
    },
    "phase_source.uart": {
        "doc": "The phase from the controller's serial line (below).",
        "example": {"baud": 9600, "prefix": "PH=", "codes": [{"code": "0", "phase": "idle"}]},
    },
    "phase_source.fallback": {
        "doc": "The phase when no rule holds, a GPIO code is not in the table, or what the source reads from has "
        "been silent for `silence_s`; one of `phases`. None: the resting phase (the first of `phases`). A profile "
        "that wants an `unknown` phase lists one and names it here.",
        "example": "idle",
    },
    "phase_source.debounce_s": {
        "doc": "A new phase is taken only once it has held this long without a break: shorter glitches never show, "
        "and every phase lasts at least this long.",
        "example": 3,
    },
    "phase_source.silence_s": {
        "doc": "How long a rule's channel may give no valid reading, the GPIO lines fail to read, or the UART "
        "controller send no valid line, before the phase is `fallback` (and a line is logged). A controller that "
        "sends its state only on a change needs a long one.",
        "example": 10,
    },
    "phase_source.rules[].phase": {"doc": "The phase this rule gives; one of `phases`.", "example": "heating"},
    "phase_source.rules[].when": {
        "doc": "The conditions, all of which must hold (below).",
        "example": [{"channel": "motor_current", "above": 2}, {"channel": "drum_vibration", "above": 0.3}],
    },
    "phase_source.rules[].when[].channel": {"doc": "The id of one of `channels`.", "example": "heater_current"},
    "phase_source.rules[].when[].above": {
        "doc": "Holds from a reading above this.",
        "example": 8,
        "unit": "the channel's unit",
    },
    "phase_source.rules[].when[].leave_below": {
        "doc": "With `above`: stops holding only at a reading below this (at most `above`); none: `above`.",
        "example": 6,
        "unit": "the channel's unit",
    },
    "phase_source.rules[].when[].below": {
        "doc": "Holds from a reading below this.",
        "example": 40,
        "unit": "the channel's unit",
    },
    "phase_source.rules[].when[].leave_above": {
        "doc": "With `below`: stops holding only at a reading above this (at least `below`); none: `below`.",
        "example": 45,
        "unit": "the channel's unit",
    },
    "phase_source.gpio.lines": {
        "doc": "The lines, bit 0 first: line offsets on the Pi's `chip`, GPIO numbers on a board.",
        "example": [17, 27],
    },
    "phase_source.gpio.codes": {
        "doc": "The table of codes (below); each code once, each one the lines can show.",
        "example": [{"code": 0, "phase": "idle"}, {"code": 1, "phase": "heating"}],
    },
    "phase_source.gpio.chip": {"doc": "The Pi's GPIO chip (a board has one).", "example": "gpiochip0"},
    "phase_source.gpio.active_low": {"doc": "A line at low level is a 1.", "example": True},
    "phase_source.gpio.pull": {"doc": "The input's pull resistor.", "example": "up"},
    "phase_source.gpio.codes[].code": {"doc": "The code the lines show.", "example": 2},
    "phase_source.gpio.codes[].phase": {"doc": "The phase it means; one of `phases`.", "example": "drain"},
    "phase_source.uart.baud": {"doc": "The line's baud rate (8 data bits, no parity, 1 stop bit).", "example": 9600},
    "phase_source.uart.codes": {
        "doc": "The table of codes (below); each code once.",
        "example": [{"code": "3", "phase": "drain"}],
    },
    "phase_source.uart.prefix": {
        "doc": "What every phase line starts with, printable ASCII without spaces; none: the whole line is the code.",
        "example": "PH=",
    },
    "phase_source.uart.max_line": {
        "doc": "The longest line taken; a longer one is counted (overlong) and skipped to its end.",
        "example": 32,
    },
    "phase_source.uart.device": {"doc": "The Pi's serial device file.", "example": "/dev/ttyUSB0"},
    "phase_source.uart.port": {"doc": "The board's UART.", "example": 2},
    "phase_source.uart.tx": {
        "doc": "The board's TX pin; none: the port's own pins (give both or neither).",
        "example": 17,
    },
    "phase_source.uart.rx": {"doc": "The board's RX pin; none: the port's own pins.", "example": 16},
    "phase_source.uart.codes[].code": {
        "doc": "The code as sent after the prefix, printable ASCII without spaces.",
        "example": "DRAIN",
    },
    "phase_source.uart.codes[].phase": {"doc": "The phase it means; one of `phases`.", "example": "drain"},
    "appliance.maker": {"doc": "The manufacturer, as the user knows it.", "example": "Kesselwerk"},
    "appliance.model": {"doc": "The model name.", "example": "K 2"},
    "appliance.hardware_revision": {"doc": "The hardware revision the profile fits.", "example": "B1"},
    "appliance.kind": {
        "doc": "The kind of appliance. Any kind can be simulated (`wichtel run --simulate`, `wichtel simulate`; "
        "`simulation`, below); `washing_machine`, `dishwasher` and `coffee_machine` have built-in models.",
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
        "`onewire`, `hx711`, `pulse_counter` (both). Their settings are `driver_options`. Under `wichtel run "
        "--simulate` every channel is simulated, whatever its driver (`simulation`).",
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
        "doc": "Settings for the driver: numbers, or names (such as `chip: ads1115`); which ones depends on `driver` "
        "(docs/drivers.md lists each driver's options with their units); those of `linux_iio`, `adc` and `i2c` are "
        "checked here, an option the driver does not have included.",
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
    "channels[].processors[].advice": {
        "doc": "What the user can do about this processor's alert, shown with it on the local page in both "
        "languages (never sent). Without it the page says to call customer service if the alert stays.",
        "example": {
            "en": "Descale the machine (see the manual). If the alert stays, call customer service.",
            "de": "Entkalken Sie das Gerät (siehe Anleitung). Bleibt der Hinweis, rufen Sie den Kundendienst an.",
        },
    },
    "channels[].processors[].hint": {
        "doc": "The likely cause, added to the event's explanation for the person reading it.",
        "example": {
            "en": "scale may be building up; descaling helps.",
            "de": "es setzt sich womöglich Kalk ab; Entkalken hilft.",
        },
    },
    "channels[].processors[].reference": {
        "doc": "The manufacturer's reference, measured on healthy units (docs/detection.md), used from the first "
        "cycle: phase -> [median, spread]. For an `anomaly` processor the channel's readings in each named phase; "
        "for a `cycle_feature` the feature, under its own phase. Without it the device learns what is normal from "
        "the unit alone, and a fault present at install becomes its normal.",
        "example": {"drain": [0.45, 0.04]},
    },
    _SET + "[anomaly].detector": {
        "doc": "`wichtel`: deviation from what is usual in this phase; `zscore`: the "
        "textbook baseline (docs/detection.md).",
        "example": "wichtel",
    },
    _SET + "[anomaly].min_score": {"doc": "The score (0 to 1) from which a sample is an event.", "example": 0.8},
    _SET + "[anomaly].clear_s": {
        "doc": "An alert episode ends (is cleared) when no reading was at alarm level for this long.",
        "example": 3600,
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
    _SET + "[cycle_feature].history": {
        "doc": "Earlier normal cycles the baseline is the median of (with the profile's `reference`, blended with it).",
        "example": 12,
    },
    _SET + "[cycle_feature].recent": {"doc": "Last cycles whose median is compared with the baseline.", "example": 3},
    _SET + "[cycle_feature].threshold": {
        "doc": "How far from the reference (in robust deviations: MAD scaled) is a change.",
        "example": 4,
    },
    _SET + "[cycle_feature].min_change_pct": {
        "doc": "A change must also be at least this large against the reference.",
        "example": 20,
    },
    _SET + "[cycle_feature].clear_cycles": {
        "doc": "Clearly normal cycles in a row (change under half the limits) that end an alert episode.",
        "example": 3,
    },
    _SET + "[aggregate].window_s": {"doc": "The length of each summary window.", "example": 21600},
    "consumables[].id": {"doc": "The consumable's id, unique among consumables.", "example": "filter"},
    "consumables[].name": {"doc": "Its name for people.", "example": {"en": "Water filter", "de": "Wasserfilter"}},
    "consumables[].unit": {"doc": "The unit of its amount.", "example": "l"},
    "consumables[].capacity": {"doc": "The amount when full.", "example": 100, "unit": "the consumable's unit"},
    "consumables[].source": {
        "doc": "How its level is known: `level_sensor` (a channel measures it; `channel` needed), `dose_count` "
        "(each program cycle uses `dose_per_cycle`; needed then), `wear` (counted like `dose_count`) or `meter` "
        "(what flows through `channel` is counted, in `phases`; docs/consumables.md).",
        "example": "dose_count",
    },
    "consumables[].channel": {
        "doc": "The id of the channel that measures the level (`source: level_sensor`) or the flow (`source: "
        "meter`); required with those.",
        "example": "bean_hopper",
    },
    "consumables[].phases": {
        "doc": "With `source: meter`: the phases in which the flow counts; none: every phase.",
        "example": ["fill"],
    },
    "consumables[].rate_per": {
        "doc": "With `source: meter`: the time unit of the channel's rate (`l/min`: `min`); none: `min`.",
        "example": "min",
    },
    "consumables[].factor": {
        "doc": "With `source: meter`: consumable units per channel unit (a flow in ml/s counted in litres: 0.001); "
        "none: 1.",
        "example": 0.001,
    },
    "consumables[].dose_per_cycle": {
        "doc": "The amount one program cycle uses; required with `dose_count` and `wear`; at most `capacity`.",
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
        "doc": "Who uses it at the manufacturer (or whom the manufacturer passes it to), as told to the user, "
        "in both languages. Every message goes to the manufacturer's broker (`uplink.host`); the page says so "
        "and names these as the ones it is for.",
        "example": [{"en": "the manufacturer's customer service", "de": "der Kundendienst des Herstellers"}],
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
        "doc": "Its messages carry a pseudonym (`pid`) made for this device and category. The topic still "
        "carries the device id, so the manufacturer can link them to the device: pseudonymous, never anonymous, "
        "and the page says exactly that.",
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
    # -- simulation ------------------------------------------------------------------------
    "simulation": {
        "doc": "How the simulator makes this appliance (below); derived from the channels and phases when absent.",
        "example": {"program": [{"phase": "heating", "seconds": 180}], "idle_s": [3600, 900]},
    },
    "simulation.program": {
        "doc": "The phases of one cycle, in order (below). When not given: each phase after the resting one, in "
        "the order of `phases`, 600 seconds each.",
        "example": [{"phase": "heating", "seconds": 180}, {"phase": "keep_warm", "seconds": 600}],
    },
    "simulation.program[].phase": {
        "doc": "One of `phases`, not the resting one (the first).",
        "example": "heating",
    },
    "simulation.program[].seconds": {
        "doc": "How long the step runs (a `thermal` model's phase ends when its target is reached, if sooner).",
        "example": 180,
    },
    "simulation.program[].every": {
        "doc": "The step runs in every n-th cycle only (a fridge's defrost every sixth compressor cycle).",
        "example": 6,
    },
    "simulation.idle_s": {
        "doc": "The rest between two cycles: mean and spread (standard deviation). When not given: the built-in "
        "model's, or `[3600, 1200]`.",
        "example": [1200, 200],
    },
    "simulation.channels": {
        "doc": "Models of channels' readings (below). A channel not described here gets one derived from its "
        "unit and range: at rest a current, flow, pressure, vibration or speed (`A`, `W`, `l/min`, `bar`, `g`, "
        "`rpm`, ...) reads 0, a temperature (`degC`, `degF`, `K`) a room's 20 degC, anything else the middle "
        "of its range; each other phase a level of its own above that, with noise of 1% of the range. A channel "
        "a consumable's `level_sensor` reads gets a `level` model from the consumable.",
        "example": [{"channel": "heater_current", "phases": {"heating": [8.5, 0.2]}}],
    },
    "simulation.channels[].channel": {"doc": "The id of one of `channels`, each described once.", "example": "door"},
    "simulation.channels[].phases": {
        "doc": "The reading's mean and noise (standard deviation) per phase; a phase not named reads as the "
        "resting phase (as derived, when that is not named either). Each mean within the channel's range.",
        "example": {"idle": [0, 0.003], "cooling": [1.1, 0.04]},
        "unit": "the channel's unit",
    },
    "simulation.channels[].thermal": {
        "doc": "A temperature that heats or cools in a phase (below).",
        "example": {"phase": "cooling", "ambient": 22, "target": 3, "rate_per_s": 0.01},
    },
    "simulation.channels[].thermal.phase": {
        "doc": "The phase that heats (or cools); a phase of `program`, not the resting one.",
        "example": "cooling",
    },
    "simulation.channels[].thermal.ambient": {
        "doc": "Where the temperature returns outside `phase` (the room); within the channel's range.",
        "example": 22,
        "unit": "the channel's unit",
    },
    "simulation.channels[].thermal.target": {
        "doc": "Where `phase` takes it; below `ambient` for a cooler. Within the channel's range.",
        "example": 3,
        "unit": "the channel's unit",
    },
    "simulation.channels[].thermal.start": {
        "doc": "The temperature when the simulation starts (a fridge already cold); `ambient` when not given.",
        "example": 5,
        "unit": "the channel's unit",
    },
    "simulation.channels[].thermal.rate_per_s": {
        "doc": "How fast `phase` moves the temperature towards `target`.",
        "example": 0.01,
    },
    "simulation.channels[].thermal.return_tau_s": {
        "doc": "Time constant of the return towards `ambient` outside `phase` (Newton's law of cooling).",
        "example": 6000,
    },
    "simulation.channels[].thermal.sd": {
        "doc": "Noise of the reading (standard deviation).",
        "example": 0.05,
        "unit": "the channel's unit",
    },
    "simulation.channels[].thermal.until_target": {
        "doc": "Whether `phase` ends when the target is reached (a thermostat), or runs its full `seconds`.",
        "example": True,
    },
    "simulation.channels[].level": {
        "doc": "A level that falls by a dose each cycle (below).",
        "example": {"phase": "brew", "capacity": 1800, "dose": 150},
    },
    "simulation.channels[].level.phase": {
        "doc": "The phase whose start takes the dose, once per cycle; a phase of `program`.",
        "example": "brew",
    },
    "simulation.channels[].level.capacity": {
        "doc": "The level when full; within the channel's range.",
        "example": 1800,
        "unit": "the channel's unit",
    },
    "simulation.channels[].level.dose": {
        "doc": "What one cycle takes (varying by 5%); at most `capacity`.",
        "example": 150,
        "unit": "the channel's unit",
    },
    "simulation.channels[].level.refill_below": {
        "doc": "Refilled to `capacity` between cycles once below this; 10% of `capacity` when not given.",
        "example": 300,
        "unit": "the channel's unit",
    },
    "simulation.channels[].level.sd": {
        "doc": "Noise of the reading (standard deviation).",
        "example": 8,
        "unit": "the channel's unit",
    },
    "simulation.channels[].switch": {
        "doc": "A reading that switches to `high` now and then (below).",
        "example": {"per_hour": 2, "seconds": 40},
    },
    "simulation.channels[].switch.per_hour": {
        "doc": "How often it switches to `high`, on average (at random times).",
        "example": 2,
    },
    "simulation.channels[].switch.seconds": {"doc": "How long it stays `high` each time.", "example": 40},
    "simulation.channels[].switch.high": {
        "doc": "The reading while switched; within the channel's range.",
        "example": 1,
        "unit": "the channel's unit",
    },
    "simulation.channels[].switch.low": {
        "doc": "The reading otherwise; within the channel's range.",
        "example": 0,
        "unit": "the channel's unit",
    },
    "simulation.faults": {
        "doc": "Faults the simulator can inject, each by `wichtel run --simulate --fault ID` (below).",
        "example": [
            {"id": "compressor_wear", "kind": "step", "channel": "compressor_current", "size": 1.2, "onset_h": 4}
        ],
    },
    "simulation.faults[].id": {
        "doc": "The fault's name for `--fault`, unique among the profile's faults.",
        "example": "compressor_wear",
    },
    "simulation.faults[].kind": {
        "doc": "What the fault does to the readings: `drift`, `step`, `stuck`, `noise` or `dropout` (above).",
        "example": "step",
    },
    "simulation.faults[].channel": {
        "doc": "The id of the channel whose sensor fails.",
        "example": "compressor_current",
    },
    "simulation.faults[].size": {
        "doc": "`drift`: the change per hour; `step`: the change; `noise`: its standard deviation (above 0); "
        "`dropout`: the share of readings lost (above 0, at most 1; all when not given). Required for `drift`, "
        "`step` and `noise`; not given for `stuck`.",
        "example": 1.2,
        "unit": "the channel's unit (per hour for drift)",
    },
    "simulation.faults[].phase": {
        "doc": "Only readings in this phase are touched (a current that rises only while the compressor runs).",
        "example": "cooling",
    },
    "simulation.faults[].onset_cycle": {
        "doc": "The fault starts with this program cycle (0: the first); give this or `onset_h`.",
        "example": 3,
    },
    "simulation.faults[].onset_h": {
        "doc": "The fault starts this many hours into the simulation; give this or `onset_cycle`.",
        "example": 4,
    },
}

INTRO = """
# Appliance profiles

An appliance profile tells a Wichtel agent what an appliance measures, what it computes
from it, what it may send and to whom. The manufacturer writes it in YAML; `wichtel
profile check FILE` validates it (exit 0 when valid, 2 with the first error), and
`wichtel profile compile FILE -o FILE.json` writes the compact JSON a device reads. The
device checks the compiled profile again with the same schema (agent/core/profile.py).
Examples: agent/profiles/. Any valid profile can be simulated (`wichtel run --simulate`):
docs/simulation.md says how to describe your appliance's simulation and its faults.

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

PHASE_SOURCES = """
## Where the phase comes from

Processors and consumables key on the program phase: a cycle runs from leaving the first
of `phases` to returning to it, a `cycle_feature` measures one phase, an `anomaly`
detector judges each phase against itself, a meter counts only in its phases. With
`--simulate` the simulator gives the phase, with `--replay` the trace. On a real
appliance the profile's `phase_source` says where it comes from, one of three (the same
section on a Pi and on a board; the logic is the core's, agent/core/phases.py):

- `rules`: inferred from the channels. Each rule names a phase and conditions such as
  `{channel: heater_current, above: 8, leave_below: 6}`; the first rule whose conditions
  all hold gives the phase, none: `fallback`. A condition has a band (hysteresis): it
  starts to hold above 8 A and stops only below 6 A, so a reading wiggling between never
  changes the phase. The rules read each channel's latest valid reading: the pipeline reads
  the phase at the start of a sampling tick and tells the rules that tick's samples after,
  so the phase follows the readings one sample period late.
- `gpio`: the controller shows a binary code on 1 to 3 lines, which a table turns into a
  phase (a code not in it: `fallback`, counted).
- `uart`: the controller sends lines such as `PH=3` or `STATE:DRAIN` at a baud rate; a
  table turns codes into phases. Lines are bounded (`max_line`); overlong lines and
  garbage are counted and ignored.

For all three, `debounce_s`: a new phase is taken only when it has held that long without
a break, so glitches never show and every phase lasts at least that long. And
`silence_s`: a rule's channel without a valid reading (a sensor fault: the pipeline
tells the rules nothing, and makes a sensor-fault event when the channel has a
processor), GPIO lines that cannot be read, or a controller that sends no valid line,
for that long (at least two sample periods of each rule's channel), make the phase
`fallback` (the resting phase unless named), once, and a line in the device's log
says so and again when it recovers. Until then the last reading or code stands, so a
faulty sensor does not flip the phase back and forth.

```yaml
phase_source:
  debounce_s: 2
  rules:
    - phase: heating
      when: [{channel: heater_current, above: 8, leave_below: 6}]
    - phase: spin
      when:
        - {channel: motor_current, above: 2, leave_below: 1.5}
        - {channel: drum_vibration, above: 0.3, leave_below: 0.2}
```
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
    recipients: [{en: the manufacturer's update service, de: der Update-Dienst des Herstellers}]
    time_grain_s: 86400
  - id: maintenance
    title: {en: Maintenance alerts, de: Wartungshinweise}
    purpose:
      en: When heating takes longer and longer, the service team learns it early. Only the alert leaves.
      de: Wenn das Aufheizen immer länger dauert, erfährt der Kundendienst es früh. Nur der Hinweis wird gesendet.
    fields: [channel, phase, feature, value, baseline, change_pct, score, time, serial]
    retention_days: 90
    recipients: [{en: the manufacturer's customer service, de: der Kundendienst des Herstellers}]
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
      en: The manufacturer learns when the filter is nearly spent; with "share", also your reorder suggestion.
      de: Der Hersteller erfährt, wenn der Filter fast verbraucht ist; mit „Teilen“ auch Ihren Nachbestell-Vorschlag.
    fields: [consumable, event, level_pct, days_left, product, retailer, time]
    retention_days: 30
    recipients: [{en: the manufacturer's reorder service, de: der Nachbestell-Dienst des Herstellers}]
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
