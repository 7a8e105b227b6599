"""Consumables benchmark: Wichtel's reorder policy against "reorder at 20% left".

For every consumable of the example profiles, simulate household-years with varied
usage (uses per day, weekly rhythm, vacations, guests, a change of program or dose,
spontaneous refills, sensor noise) and the same lead time for both policies. Report
stock-out days per household-year, the share of household-years with any stock-out,
the stock left when a delivery arrives (in days of that household's usage) and the
error of the empty date predicted 7 days ahead.

usage: python bench/consumables.py [--households N] [--json out.json] [--workers N]
"""

import argparse
import math
import multiprocessing
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from agent import profile_loader  # noqa: E402
from agent.core import consumables as cons  # noqa: E402
from bench import report  # noqa: E402

DAY = cons.DAY_MS
YEAR_DAYS = 365
BASELINE_SHARE = 0.20  # "reorder at 20% left", as replenishment services do
RISK = float(os.environ.get("WICHTEL_RISK", str(cons.ReorderChoice().risk)))
DEBUG = bool(os.environ.get("WICHTEL_DEBUG"))

# Per consumable: (profile kind, typical dose per use, uses per day (low, high)).
USAGE = {
    "detergent": ("washing_machine", 65.0, (0.3, 1.5)),
    "coffee_beans": ("coffee_machine", 9.0, (1.0, 6.0)),
    "descaler": ("coffee_machine", 0.4, (1.0, 6.0)),
    "salt": ("dishwasher", 18.0, (0.3, 1.2)),
    "rinse_aid": ("dishwasher", 3.0, (0.3, 1.2)),
}


def consumable_specs() -> dict:
    specs = {}
    for name, (kind, _, _) in USAGE.items():
        prof = profile_loader.load(profile_loader.example(kind))
        specs[name] = next(c for c in prof["consumables"] if c["id"] == name)
    return specs


class Household:
    """One household-year of use of one consumable, drawn from a seed.

    Three kinds of household, a third each: "daily" (about the same number of uses every
    day), "weekly" (uses on fixed weekdays, e.g. laundry on Monday and Saturday) and
    "irregular" (uses at random, Poisson). All have vacations, guests, maybe a change of
    program or dose, and a weekend rhythm.
    """

    KINDS = ("daily", "weekly", "irregular")

    def __init__(self, seed: int, dose: float, uses: tuple, tolerance: float = 0.15) -> None:
        rng = random.Random(seed)
        self.rng = random.Random(seed * 7919 + 1)
        self.kind = self.KINDS[seed % 3]
        self.rate = rng.uniform(*uses)
        # Weekly households: the weekdays they use it, as many as their rate needs.
        days = max(1, min(7, round(self.rate * 7))) if self.rate * 7 < 7 else 7
        self.schedule = sorted(rng.sample(range(7), days))
        self.per_day = max(1, round(self.rate * 7 / days))
        self.dose = dose * rng.uniform(0.7, 1.3)  # this household's dosing
        # Real dose vs the profile's, for counted doses: anywhere within its tolerance.
        self.counted_error = rng.uniform(1.0 - tolerance, 1.0 + tolerance)
        self.weekend = rng.uniform(0.5, 2.0)
        self.start_weekday = rng.randrange(7)
        self.vacations = []
        for _ in range(rng.randint(1, 3)):
            start = rng.randrange(YEAR_DAYS)
            self.vacations.append((start, start + rng.randint(7, 21)))
        self.bursts = []
        for _ in range(rng.randint(2, 6)):
            start = rng.randrange(YEAR_DAYS)
            self.bursts.append((start, start + rng.randint(2, 5), rng.uniform(2.0, 3.0)))
        self.change_day = rng.randrange(60, YEAR_DAYS) if rng.random() < 0.5 else YEAR_DAYS + 1
        self.change = rng.uniform(0.6, 1.5)

    def uses_today(self, day: int) -> int:
        if any(a <= day < b for a, b in self.vacations):
            return 0
        weekday = (day + self.start_weekday) % 7
        factor = 1.0
        for a, b, f in self.bursts:
            if a <= day < b:
                factor = max(factor, f)  # two overlapping stays are not nine times the use
        if day >= self.change_day:
            factor *= self.change
        if self.kind == "irregular":
            return _poisson(self.rng, self.rate * factor * (self.weekend if weekday >= 5 else 1.0))
        if self.kind == "weekly":
            base = self.per_day if weekday in self.schedule else 0
        else:
            base = self.rate * (self.weekend if weekday >= 5 else 1.0)
        # Routine, with a little jitter: a use more or less now and then.
        expected = base * factor
        n = int(expected)
        if self.rng.random() < expected - n:
            n += 1
        if n and self.rng.random() < 0.1:
            n += self.rng.choice((-1, 1))
        return max(0, n)

    def expected_uses(self, day: int) -> float:
        """Uses on `day` by this household's true rhythm, without guests or vacations."""
        weekday = (day + self.start_weekday) % 7
        change = self.change if day >= self.change_day else 1.0
        if self.kind == "weekly":
            return (self.per_day if weekday in self.schedule else 0) * change
        return self.rate * (self.weekend if weekday >= 5 else 1.0) * change

    def mean_uses(self, day: int) -> float:
        """Uses per day over a usual week (no guests, no vacation) with the program of `day`."""
        if self.kind == "weekly":
            per_week = len(self.schedule) * self.per_day
        else:
            per_week = self.rate * (5 + 2 * self.weekend)
        return per_week / 7 * (self.change if day >= self.change_day else 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def simulate(args: tuple) -> dict:
    """One household-year under one policy: 'wichtel', 'baseline' or 'forecast' (no
    orders; refilled the day after running empty; records the 7-day-ahead error).

    An order placed at time t arrives at t + lead time (both policies decide at every
    reading), and the household refills the appliance when it arrives.
    """
    name, spec, seed, policy = args
    _, dose, uses = USAGE[name]
    hh = Household(seed, dose, uses, spec.get("dose_tolerance", 0.1))
    rng = random.Random(seed * 31 + 7)
    cap = float(spec["capacity"])
    lead_ms = int(spec["lead_time_days"] * DAY)
    sensor = spec["source"] == "level_sensor"
    # Only Wichtel's policy acts on its reorder suggestions; the others need none.
    mode = cons.REMIND if policy == "wichtel" else cons.OFF
    tracker = cons.ConsumableTracker(spec, cons.ReorderChoice(mode, risk=RISK))
    actual = cap
    due = -1  # time a delivery arrives
    out_days = 0
    arrivals: list = []
    predictions: dict = {}
    errors: list = []  # between moments, in days
    date_errors: list = []  # between dates: whole days, as a person reads "runs out on Thursday"
    oracle: dict = {}  # predictions by the household's true rhythm: what no forecaster can beat
    oracle_errors: list = []
    oracle_date_errors: list = []
    # What one use really takes: the household's dose, or for counted doses the
    # profile's dose off by this appliance's error (the tracker counts the profile's).
    per_use = hh.dose if sensor else spec["dose_per_cycle"] * hh.counted_error

    # The references order by the true rhythm and level and need no tracker; "always"
    # orders again the moment a delivery arrives: the least running out any policy can reach.
    reference = policy.startswith("rhythm") or policy == "always"
    multiple = math.inf if policy == "always" else float(policy[6:]) if reference else 0.0
    lead_days = math.ceil(spec["lead_time_days"])

    def read(t: int) -> list:
        if reference:
            return []
        t = max(t, tracker.last_t)  # a delivery's refill readings may take the same milliseconds
        return tracker.reading(t, min(cap, max(0.0, actual + rng.gauss(0, 0.01 * cap)))) if sensor else tracker.tick(t)

    def refill(t: int) -> list:
        nonlocal actual
        actual = cap
        if reference:
            return []
        if not sensor:
            return tracker.refill(t)
        events = []
        for k in range(3):
            events += read(t + k)
        return events

    def decide(events: list, t: int) -> None:
        nonlocal due
        if due >= 0:
            return
        if policy == "wichtel" and any(e[0] == cons.REORDER for e in events):
            due = t + lead_ms
        elif policy == "baseline" and tracker.level <= BASELINE_SHARE * cap:
            due = t + lead_ms
        elif reference:
            need = sum(hh.expected_uses(t // DAY + k) for k in range(lead_days + 1)) * per_use
            if actual <= multiple * need + per_use:
                due = t + lead_ms

    def deliver_until(t: int) -> None:
        nonlocal due
        if 0 <= due <= t:
            arrivals.append(actual / (hh.mean_uses(due // DAY) * per_use))
            at, due = due, -1
            decide(refill(at), at)

    for day in range(YEAR_DAYS):
        t0 = day * DAY
        n = hh.uses_today(day)
        ran_out = False
        for k in range(n):
            t = t0 + 7 * 3600_000 + k * (15 * 3600_000 // n)
            deliver_until(t)
            if actual < per_use:
                if not ran_out and policy == "forecast" and actual < per_use:
                    empty = t / DAY
                    made = int(empty - 7)  # the forecast made at the end of the day 7 days before
                    if made in predictions:
                        errors.append(abs(predictions[made] - empty))
                        date_errors.append(abs(int(predictions[made]) - int(empty)))
                        if DEBUG:
                            print("ERR predicted", round(predictions[made], 2), "empty", round(empty, 2))
                    if made in oracle:
                        oracle_errors.append(abs(oracle[made] - empty))
                        oracle_date_errors.append(abs(int(oracle[made]) - int(empty)))
                    predictions.clear()
                    oracle.clear()
                ran_out = True
            actual = max(0.0, actual - per_use)
            if sensor:  # a sensor samples on: the filter sees the new level twice
                decide(read(t), t)
                decide(read(t + 60_000), t + 60_000)
            else:
                decide([] if reference else tracker.cycle(t), t)
        deliver_until(t0 + 23 * 3600_000)
        decide(read(t0 + 23 * 3600_000), t0 + 23 * 3600_000)
        if ran_out or actual <= 0:
            out_days += 1
            if DEBUG:
                print("OUT", policy, "day", day, "est", round(tracker.level), "actual", round(actual),
                      "mean", round(tracker.usage.mean, 1), "due", due / DAY, "uses", n)  # fmt: skip
        if policy == "forecast":
            if ran_out or actual <= 0:
                refill((day + 1) * DAY - 1000)
            elif tracker.usage.mean > 0 and tracker.level < 21 * tracker.usage.mean:
                f = tracker.forecast()
                if f.days_left >= 0:
                    # days_left counts from the end of the tracker's day.
                    predictions[day] = tracker.day + 1 + f.days_left
                oracle[day] = _true_empty(hh, day, actual, per_use)
        elif due < 0 and actual < 0.5 * cap and rng.random() < 0.01:
            decide(refill(t0 + 23 * 3600_000 + 60_000), t0 + 23 * 3600_000 + 60_000)  # bought on a whim
    return {"out_days": out_days, "arrivals": arrivals, "errors": errors, "oracle_errors": oracle_errors,
            "date_errors": date_errors, "oracle_date_errors": oracle_date_errors}  # fmt: skip


def _true_empty(hh: Household, day: int, left: float, per_use: float) -> float:
    """When `left` runs out after `day` if the household kept exactly to its rhythm
    (uses spread from 7:00 to 22:00, as simulated)."""
    for d in range(day + 1, day + 2 * YEAR_DAYS):
        need = hh.expected_uses(d) * per_use
        if need >= left and need > 0:
            return d + (7 + 15 * left / need) / 24
        left -= need
    return float(day + 2 * YEAR_DAYS)


REFERENCE_MULTIPLES = (1.0, 1.5, 2.0, 3.0, 4.0)


def _median(xs: list) -> float | None:
    return statistics.median(xs) if xs else None


def run(name: str, spec: dict, households: int, pool: object) -> dict:
    result: dict = {"reference": {}}
    policies = ["wichtel", "baseline", "forecast", "always"] + ["rhythm%g" % k for k in REFERENCE_MULTIPLES]
    for policy in policies:
        jobs = [(name, spec, 1000 + i, policy) for i in range(households)]
        runs = pool.map(simulate, jobs, chunksize=max(1, households // 20)) if pool else list(map(simulate, jobs))  # type: ignore[attr-defined]
        if policy == "forecast":
            days = [e for r in runs for e in r["date_errors"]]
            result["empty_date_error_days_median"] = _median(days)
            result["empty_date_error_days_p90"] = sorted(days)[int(0.9 * len(days))] if days else None
            result["empty_date_predictions"] = len(days)
            oracle_days = [e for r in runs for e in r["oracle_date_errors"]]
            result["empty_date_error_days_median_true_rhythm"] = _median(oracle_days)
            result["empty_moment_error_days_median"] = _median([e for r in runs for e in r["errors"]])
            oracle_moments = [e for r in runs for e in r["oracle_errors"]]
            result["empty_moment_error_days_median_true_rhythm"] = _median(oracle_moments)
            continue
        arrivals = [a for r in runs for a in r["arrivals"]]
        figures = {
            "stockout_days_per_year": sum(r["out_days"] for r in runs) / households,
            "stockout_share": sum(1 for r in runs if r["out_days"]) / households,
            "overstock_days": statistics.mean(arrivals) if arrivals else 0.0,
            "deliveries": len(arrivals),
        }
        if policy == "always":
            result["floor_stockout_share"] = figures["stockout_share"]
            continue
        if policy.startswith("rhythm"):
            result["reference"][policy[6:]] = figures
            continue
        prefix = "" if policy == "wichtel" else "baseline_"
        for key, value in figures.items():
            result[prefix + key] = value
    return result


def _or_nan(x: float | None) -> float:
    return float("nan") if x is None else x


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Consumable reorder policy against a 20% threshold.")
    parser.add_argument("--households", type=int, default=1000, help="household-years per consumable")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    specs = consumable_specs()
    results = {}
    pool = multiprocessing.Pool(args.workers) if args.workers > 1 else None
    try:
        for name, spec in specs.items():
            results[name] = run(name, spec, args.households, pool)
    finally:
        if pool:
            pool.close()
    print(
        "%d household-years per consumable, lead times from the profiles, risk per order %.1f%%"
        % (args.households, 100 * RISK)
    )
    print("%-13s %22s %22s %24s %29s" % ("consumable", "stock-out years", "stock-out days/year",
                                        "stock left at delivery", "7-day error, median: dates"))  # fmt: skip
    heads = ("", "wichtel", "20% rule", "wichtel", "20% rule", "wichtel", "20% rule", "wichtel", "true rhythm",
             "(moments)")  # fmt: skip
    print("%-13s %11s %10s %11s %10s %12s %11s %10s %11s %14s" % heads)
    for name, r in results.items():
        print("%-13s %10.1f%% %9.1f%% %11.2f %10.2f %10.1f d %9.1f d %8.1f d %9.1f d %5.2f / %.2f d" % (
            name, 100 * r["stockout_share"], 100 * r["baseline_stockout_share"], r["stockout_days_per_year"],
            r["baseline_stockout_days_per_year"], r["overstock_days"], r["baseline_overstock_days"],
            _or_nan(r["empty_date_error_days_median"]), _or_nan(r["empty_date_error_days_median_true_rhythm"]),
            _or_nan(r["empty_moment_error_days_median"]),
            _or_nan(r["empty_moment_error_days_median_true_rhythm"])))  # fmt: skip
    print()
    print("Reference: orders when the real level is down to k times what the household's true rhythm")
    print("needs until the delivery arrives (knows rhythm and level, not guests): stock-out years / stock left")
    print("and, as the floor, stock-out years when a new order goes out the moment a delivery arrives.")
    print("%-13s" % "k" + "".join("%18s" % ("%g" % k) for k in REFERENCE_MULTIPLES) + "%14s" % "floor")
    for name, r in results.items():
        cells = [r["reference"]["%g" % k] for k in REFERENCE_MULTIPLES]
        print("%-13s" % name + "".join("%9.1f%% %5.1f d" % (100 * c["stockout_share"], c["overstock_days"])
                                       for c in cells) + "%13.1f%%" % (100 * r["floor_stockout_share"]))  # fmt: skip
    print()
    for r in results.values():
        r["risk"] = RISK
        r["meets_stockout_target"] = r["stockout_share"] <= min(0.01, r["baseline_stockout_share"] / 3) or (
            r["stockout_share"] == 0 and r["baseline_stockout_share"] == 0
        )
        r["meets_overstock_target"] = r["overstock_days"] <= r["baseline_overstock_days"]
        med = r["empty_date_error_days_median"]
        r["meets_forecast_target"] = med is not None and med <= 1.0
    print("targets met (stock-out years, over-stock, 7-day error): " + ", ".join(
        "%s %s" % (n, "".join("y" if r[k] else "n" for k in ("meets_stockout_target", "meets_overstock_target",
                                                              "meets_forecast_target")))
        for n, r in results.items()))  # fmt: skip
    print("run time %.0f s" % (time.perf_counter() - t0))
    report.emit(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
