"""Consumables tracked: the level of each, its events (low, reorder, refill, sensor fault),
the user's reorder choice, the state that survives a restart, and the pipeline's wiring.

One ConsumableTracker per consumable, in fixed state. It takes level readings, doses
and days, and returns events; it never buys anything. Usage learning and the run-out
forecast are usage.py's. What happens with a reorder suggestion is the user's choice
(ReorderChoice), stored on the device.
"""

import math
from array import array

from agent.core import limits
from agent.core.errors import ConfigError, InputError, StateError
from agent.core.usage import UsageModel, forecast, p_run_out

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.usage import Forecast

DAY_MS = 86_400_000

# What the user wants done when a reorder is due. Default: remind, locally.
OFF = "off"
REMIND = "remind"
SHARE = "share"
CHOICES = (OFF, REMIND, SHARE)
# The chance of running out before a delivery arrives that the local page offers: early
# (the default: with it, running out at all in a year stays rare), balanced, late.
RISKS = (0.001, 0.005, 0.02)


class ReorderChoice:
    """The user's decision for one consumable: off, remind (local notice only) or share
    (an upstream reorder suggestion, sent only with consent), with the product and the
    retailer the user chose. Never preset to a brand."""

    def __init__(self, mode: str = REMIND, product: str = "", retailer: str = "", risk: float = RISKS[0],
                 lead_time_days: float | None = None) -> None:  # fmt: skip
        if mode not in CHOICES:
            raise ConfigError("reorder choice " + repr(mode) + " is not one of " + ", ".join(CHOICES))
        if not 0.001 <= risk <= 0.5:
            raise ConfigError("risk of running out " + repr(risk) + " must be from 0.001 to 0.5")
        if lead_time_days is not None and not 0 <= lead_time_days <= 60:
            raise ConfigError("lead time " + repr(lead_time_days) + " days must be from 0 to 60")
        if len(product) > 80 or len(retailer) > 80:
            raise ConfigError("product and retailer names are at most 80 characters")
        self.mode = mode
        self.product = product
        self.retailer = retailer
        self.risk = risk
        self.lead_time_days = lead_time_days

    def as_dict(self) -> dict:
        return {"mode": self.mode, "product": self.product, "retailer": self.retailer, "risk": self.risk,
                "lead_time_days": self.lead_time_days}  # fmt: skip


# Event kinds of a consumable (plain strings: the portable subset has no enum).
LOW = "low_level"
REORDER = "reorder_suggested"
REFILLED = "refilled"
FAULT = "sensor_fault"


_WINDOW = 3  # readings in the median filter of a level sensor
# A metered consumable takes its amount at every reading, but the reorder moment (which
# costs a forecast) is judged again only once this share of its capacity was counted
# since the last judgement, or a day closed, or the phase changed.
_METER_CHECK_SHARE = 0.005
# The time units a meter's channel may give its rate in, in ms.
_RATE_PER_MS = {"s": 1000, "min": 60_000, "h": 3_600_000}


class ConsumableTracker:
    """One consumable: its level, its learned usage, and the events a person should see.

    spec: the profile's consumable entry (capacity, source, dose, lead time).
    Level sensors go through a 3-reading median; a rise of more than 10% of capacity
    that holds for the filter's majority is a refill; a fall of more than 40% of
    capacity between two readings, a reading outside 0..capacity, or a sensor that
    reports the identical value 50 times in a row while usage goes on is a sensor
    fault, reported and not trusted.
    """

    def __init__(self, spec: dict, choice: ReorderChoice | None = None) -> None:
        self.id = spec["id"]
        self.name = spec["name"]
        self.unit = spec["unit"]
        self.capacity = float(spec["capacity"])
        self.source = spec["source"]
        self.dose = spec.get("dose_per_cycle")
        if self.dose is not None and self.dose > self.capacity:
            raise ConfigError(
                "dose per cycle %s %s of %s is larger than its capacity %s"
                % (self.dose, self.unit, self.id, self.capacity)
            )
        self.lead_days = float(spec.get("lead_time_days", 3))
        self.tolerance = float(spec.get("dose_tolerance", 0.1))
        self.reset()
        self.choice = choice or ReorderChoice()

    def reset(self) -> None:
        """Forget everything learned (erasure); the user's reorder choice goes too."""
        self.choice = ReorderChoice()
        self.usage = UsageModel(math.ceil(self.lead_days))
        self.level = self.capacity
        self.day = -1
        self.used_today = 0.0
        self.first_use = -1.0  # today's first and last use, as fractions of the day
        self.last_use = -1.0
        self.last_t = -1
        self.readings = array("f", bytes(4 * _WINDOW))
        self.n_readings = 0
        self.same_count = 0
        self.last_reading = math.nan
        self.faulty = False
        self.reorder_sent = False
        self.reorder_age = 0  # days closed since the last reorder suggestion
        self.low_sent = False
        self.unchecked = 0.0  # metered since the reorder moment was last judged

    # -- inputs ---------------------------------------------------------------------
    def reading(self, t_ms: int, value: float) -> list:
        """A level sensor reading; returns the events it causes."""
        events = self._advance(t_ms)
        if not (math.isfinite(value) and -0.02 * self.capacity <= value <= 1.05 * self.capacity):
            args = ("%.4g" % value, self.unit, "%.4g" % self.capacity)
            en = "reading %s %s is outside 0..%s" % args
            de = "Messwert %s %s liegt außerhalb von 0..%s" % args
            return events + [self._fault(en, de)]
        if value == self.last_reading and 0.01 * self.capacity < value < 0.99 * self.capacity:
            # An empty or full tank reads the same for good reason; elsewhere it is stuck.
            self.same_count += 1
            if self.same_count == 50 and self.usage.mean > 0:
                en = "the sensor reported the same value 50 times while the appliance was used"
                de = "der Sensor meldete 50-mal denselben Wert, obwohl das Gerät benutzt wurde"
                return events + [self._fault(en, de)]
        else:
            self.same_count = 0
        self.last_reading = value
        self.readings[self.n_readings % _WINDOW] = value
        self.n_readings += 1
        if self.n_readings < 3:
            if self.n_readings == 1:
                self.level = value
            return events
        window = sorted(self.readings)  # full: n_readings >= _WINDOW here
        filtered = window[len(window) // 2]
        change = filtered - self.level
        if change > 0.1 * self.capacity:
            events += self._refilled(filtered)
        elif change < -0.4 * self.capacity:
            pct = -change / self.capacity * 100
            events.append(
                self._fault("the level fell by %.0f%% at once" % pct, "der Füllstand fiel auf einmal um %.0f %%" % pct)
            )
        elif change < 0:
            self.used_today -= change
            self.level = filtered
            self._used_at(t_ms)
        self.faulty = False if change >= -0.4 * self.capacity else self.faulty
        return events + self._check()

    def cycle(self, t_ms: int, dose: float | None = None) -> list:
        """A program cycle used `dose` (default: the profile's dose per cycle)."""
        events = self._advance(t_ms)
        used = self.dose if dose is None else dose
        if used is None or not (0 <= used <= self.capacity):
            raise InputError("dose %r of %s must be from 0 to its capacity %s" % (used, self.id, self.capacity))
        self.used_today += used
        self._used_at(t_ms)
        self.level = max(0.0, self.level - used)
        return events + self._check()

    def metered(self, t_ms: int, amount: float) -> list:
        """An amount counted by a meter (Meter.count) at t_ms; returns the events it causes."""
        day = self.day
        events = self._advance(t_ms)
        if not 0 <= amount <= self.capacity:  # NaN fails too
            raise InputError("metered amount %r of %s must be from 0 to its capacity %s" % (amount, self.id,
                                                                                          self.capacity))  # fmt: skip
        if amount > 0:
            self.used_today += amount
            self.level = max(0.0, self.level - amount)
            self._used_at(t_ms)
            self.unchecked += amount
        if self.unchecked >= _METER_CHECK_SHARE * self.capacity or self.day != day:
            self.unchecked = 0.0
            return events + self._check()
        return events

    def refill(self, t_ms: int, level: float | None = None) -> list:
        """The user says "I refilled" (to capacity, or to the given level)."""
        events = self._advance(t_ms)
        to = self.capacity if level is None else level
        if not 0 <= to <= self.capacity:
            raise InputError("refill level %r must be from 0 to the capacity %s" % (to, self.capacity))
        return events + self._refilled(to)

    def tick(self, t_ms: int) -> list:
        """Let time pass (days close and teach the usage model)."""
        return self._advance(t_ms) + self._check()

    # -- state ------------------------------------------------------------------------
    def _advance(self, t_ms: int) -> list:
        if self.last_t >= 0 and t_ms < self.last_t:
            raise InputError("time went backwards for %s: %d ms after %d ms" % (self.id, t_ms, self.last_t))
        self.last_t = t_ms
        day = t_ms // DAY_MS
        if self.day < 0:
            self.day = day
        while self.day < day:
            self.usage.add_day(self.day, self.used_today, self.first_use, self.last_use)
            self.used_today = 0.0
            self.first_use = self.last_use = -1.0
            self.day += 1
            self.reorder_age += 1
        return []

    def _used_at(self, t_ms: int) -> None:
        frac = (t_ms % DAY_MS) / DAY_MS
        if self.first_use < 0:
            self.first_use = frac
        self.last_use = frac

    def _refilled(self, to: float) -> list:
        self.level = to
        self.reorder_sent = False
        self.low_sent = False
        self.n_readings = 0
        return [self._event(REFILLED, "%s refilled to %.0f%%" % (self.name["en"], to / self.capacity * 100),
                            "%s auf %.0f %% aufgefüllt" % (self.name["de"], to / self.capacity * 100))]  # fmt: skip

    def _fault(self, en: str, de: str) -> tuple:
        self.faulty = True
        en = self.name["en"] + " level sensor: " + en + "; the level is not trusted until it reads sensibly again."
        de = (
            "Füllstandssensor "
            + self.name["de"]
            + ": "
            + de
            + "; der Füllstand gilt als unsicher, bis er wieder plausibel ist."
        )
        return self._event(FAULT, en, de)

    def _check(self) -> list:
        if self.faulty or self.usage.mean <= 0:
            return []
        events = []
        lead = self.choice.lead_time_days if self.choice.lead_time_days is not None else self.lead_days
        # A counted level drifts from the truth by up to the dose tolerance of what was
        # counted since the refill: the reorder moment takes the level at that worst.
        level = self.level
        if self.source != "level_sensor":
            level = max(0.0, level - self.tolerance * (self.capacity - level))
        if self.reorder_sent and self.reorder_age > math.ceil(lead) + 1:
            # No refill seen long after the delivery was due (or it went into a tank
            # still nearly full, too small a rise to tell): the next reorder may come.
            self.reorder_sent = False
        if (
            not self.reorder_sent
            and self.choice.mode != OFF
            and p_run_out(level, self.usage, lead, self.day, self.used_today) >= self.choice.risk
        ):
            self.reorder_sent = True
            self.reorder_age = 0
            events.append(self._reorder_event(lead))
        if not self.low_sent and self.level <= 0.15 * self.capacity:
            self.low_sent = True
            pct = self.level / self.capacity * 100
            events.append(self._event(LOW, "%s is low: %.0f%% left" % (self.name["en"], pct),
                                      "%s wird knapp: noch %.0f %%" % (self.name["de"], pct)))  # fmt: skip
        return events

    def _reorder_event(self, lead: float) -> tuple:
        f = self.forecast()
        days = "%.0f" % f.days_left
        who_en = (" from " + self.choice.retailer) if self.choice.retailer else " from any shop you like"
        who_de = (" bei " + self.choice.retailer) if self.choice.retailer else " bei einem Händler Ihrer Wahl"
        what = self.choice.product or self.name["en"]
        what_de = self.choice.product or self.name["de"]
        band = ("%.0f" % f.early, "%.0f" % f.late)
        en = "%s runs out in about %s days (%s to %s)" % ((self.name["en"], days) + band)
        de = "%s reicht noch etwa %s Tage (%s bis %s)" % ((self.name["de"], days) + band)
        args_en = (lead, what, who_en)
        args_de = (lead, what_de, who_de)
        if 0 <= float(days) < lead:  # as the person reads it: "2 days", and a delivery takes 3
            en += ", before a delivery could arrive (%g days): reorder %s%s now, or get some nearby." % args_en
            de += ", kürzer als eine Lieferung dauert (%g Tage): jetzt %s%s nachbestellen" % args_de
            de += " oder in der Nähe besorgen."
        else:
            en += "; a delivery takes %g days, so now is the time to reorder %s%s." % args_en
            de += "; eine Lieferung dauert %g Tage, jetzt ist der Moment, %s%s nachzubestellen." % args_de
        ev = self._event(REORDER, en, de)
        ev[1]["days_left"] = f.days_left
        ev[1]["choice"] = self.choice.mode
        if self.choice.mode == SHARE:
            ev[1]["product"] = self.choice.product
            ev[1]["retailer"] = self.choice.retailer
        return ev

    def _event(self, kind: str, en: str, de: str) -> tuple:
        return (kind, {"consumable": self.id, "level": self.level, "level_pct": self.level / self.capacity * 100,
                       "explanation_en": en, "explanation_de": de})  # fmt: skip

    def forecast(self) -> "Forecast":
        lead = self.choice.lead_time_days if self.choice.lead_time_days is not None else self.lead_days
        return forecast(self.level, self.usage, self.day, lead, self.choice.risk)

    def to_state(self) -> dict:
        """Learned state, as plain data, to survive a restart."""
        return {"v": 1, "id": self.id, "level": self.level, "day": self.day, "used_today": self.used_today,
                "last_t": self.last_t, "usage": self.usage.to_state(), "reorder_sent": self.reorder_sent,
                "reorder_age": self.reorder_age, "low_sent": self.low_sent,
                "choice": self.choice.as_dict()}  # fmt: skip

    def restore(self, state: object) -> None:
        """Take back learned state; StateError (and nothing changed) if it is not valid."""
        try:
            ok = isinstance(state, dict) and state.get("v") == 1 and state.get("id") == self.id
            level = float(state["level"])  # type: ignore[index]
            ok = ok and 0 <= level <= self.capacity
            usage = UsageModel.from_state(state["usage"], self.usage.window)  # type: ignore[index]
            choice = ReorderChoice(**state["choice"])  # type: ignore[index]
            used = float(state["used_today"])  # type: ignore[index]
            age = int(state["reorder_age"]) if "reorder_age" in state else 0  # type: ignore[index, operator]
            ok = ok and age >= 0 and math.isfinite(used) and used >= 0
            sent = bool(state["reorder_sent"])  # type: ignore[index]
            low = bool(state["low_sent"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError, OverflowError, ConfigError) as e:
            raise StateError("state of consumable %s is not valid: %s" % (self.id, e)) from e
        if not ok:
            raise StateError("state of consumable %s is not valid" % self.id)
        self.level, self.usage, self.choice = level, usage, choice
        # After a restart the clock may start again from zero: the next input begins a
        # new day count; what was learned stays.
        self.day, self.last_t, self.used_today = -1, -1, 0.0
        self.first_use = self.last_use = -1.0
        self.reorder_sent = sent
        self.reorder_age = age
        self.low_sent = low


class Meter:
    """What flows through a channel (source: meter): each valid reading, a rate per
    `rate_per` (default per minute), counts as flowing since the channel's previous valid
    reading, times `factor` (consumable units per channel unit, default 1), only while the
    pipeline's phase is one of `phases` (every phase when none). Bounded: the time counted
    for one reading is at most limits.METER_GAP_PERIODS sample periods (a missed sample
    still counts; a longer gap counts that much and the rest is tallied in uncounted_ms),
    and a reading is at most the channel's range, so no gap can count a huge amount. A
    negative rate counts nothing (a meter never gives back). The first reading after a
    start counts nothing: there is no previous one to measure from."""

    __slots__ = ("last_t", "max_gap_ms", "phases", "scale", "uncounted_ms")

    def __init__(self, spec: dict, period_ms: int) -> None:
        if period_ms <= 0:
            raise ConfigError("meter of %s: got a sample period of %r ms; expected its channel's, above 0"
                              % (spec["id"], period_ms))  # fmt: skip
        per = spec.get("rate_per") or "min"
        factor = spec.get("factor")
        self.scale = (1.0 if factor is None else float(factor)) / _RATE_PER_MS[per]
        self.phases = spec.get("phases")
        self.max_gap_ms = limits.METER_GAP_PERIODS * period_ms
        self.last_t = -1
        self.uncounted_ms = 0

    def count(self, t_ms: int, rate: float, phase: str) -> float:
        """The amount a valid reading of the rate at t_ms counts, in the consumable's unit."""
        last = self.last_t
        self.last_t = t_ms
        if last < 0 or t_ms <= last:
            return 0.0
        dt = t_ms - last
        if dt > self.max_gap_ms:
            self.uncounted_ms += dt - self.max_gap_ms
            dt = self.max_gap_ms
        if (self.phases is not None and phase not in self.phases) or not rate > 0:
            return 0.0
        return rate * dt * self.scale


class ConsumableRuntime:
    """Wires one tracker into the pipeline: level readings or a meter's rate from its
    channel, program cycles from phase changes (for counted doses), and its events as
    pipeline events. period_ms: the sample period of its channel (a meter needs it).

    A reorder suggestion under "remind" is for the local page only (category ""); under
    "share" it belongs to the consumable's data category, which the privacy gate lets
    out only with consent. Other consumable events belong to that category too.
    """

    def __init__(self, spec: dict, idle_phase: str, choice: ReorderChoice | None = None, period_ms: int = 0) -> None:
        self.tracker = ConsumableTracker(spec, choice)
        self.channel = spec.get("channel") if spec["source"] in ("level_sensor", "meter") else None
        self.meter = Meter(spec, period_ms) if spec["source"] == "meter" else None
        self.phase = ""  # the pipeline's phase, for a meter
        self.category = spec.get("category", "consumables")
        self.idle = idle_phase
        self.in_cycle = False

    def on_sample(self, channel: str, t_ms: int, value: float) -> list:
        if channel != self.channel:
            return []
        if self.meter is not None:
            return self.tracker.metered(t_ms, self.meter.count(t_ms, value, self.phase))
        return self.tracker.reading(t_ms, value)

    def on_phase(self, t_ms: int, phase: str) -> list:
        """Counted doses: one per program cycle, when the appliance comes back to rest. A
        meter notes the phase (it counts only in its phases) and judges what it counted."""
        if self.meter is not None:
            self.phase = phase
            self.tracker.unchecked = 0.0
            return self.tracker.tick(t_ms)
        if self.channel is not None or not phase:
            return []
        if phase != self.idle:
            self.in_cycle = True
            return []
        if self.in_cycle:
            self.in_cycle = False
            return self.tracker.cycle(t_ms)
        return self.tracker.tick(t_ms)

    def category_of(self, kind: str) -> str:
        if kind == REORDER and self.tracker.choice.mode != SHARE:
            return ""
        return self.category  # type: ignore[no-any-return]
