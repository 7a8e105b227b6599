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

    def __init__(self, seed: int, dose: float, uses: tuple) -> None:
        rng = random.Random(seed)
        self.rng = random.Random(seed * 7919 + 1)
        self.kind = self.KINDS[seed % 3]
        self.rate = rng.uniform(*uses)
        # Weekly households: the weekdays they use it, as many as their rate needs.
        days = max(1, min(7, round(self.rate * 7))) if self.rate * 7 < 7 else 7
        self.schedule = sorted(rng.sample(range(7), days))
        self.per_day = max(1, round(self.rate * 7 / days))
        self.dose = dose * rng.uniform(0.7, 1.3)  # this household's dosing
        self.counted_error = rng.uniform(0.85, 1.15)  # real dose vs the profile's, for counted doses
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
                factor *= f
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

    def mean_daily(self, day: int) -> float:
        if self.kind == "weekly":
            per_week = len(self.schedule) * self.per_day
        else:
            per_week = self.rate * (5 + 2 * self.weekend)
        return per_week / 7 * self.dose * (self.change if day >= self.change_day else 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    limit = math.exp(-lam)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def simulate(args: tuple) -> dict:
    """One household-year under one policy: 'wichtel', 'baseline' or 'forecast' (no
    orders; refill the day after running empty; records the 7-day-ahead error)."""
    name, spec, seed, policy = args
    _, dose, uses = USAGE[name]
    hh = Household(seed, dose, uses)
    rng = random.Random(seed * 31 + 7)
    cap = float(spec["capacity"])
    lead = math.ceil(spec["lead_time_days"])
    sensor = spec["source"] == "level_sensor"
    tracker = cons.ConsumableTracker(spec, cons.ReorderChoice(cons.REMIND, risk=RISK))
    actual = cap
    pending = -1  # day a delivery arrives
    out_days = 0
    arrivals: list = []
    predictions: dict = {}
    errors: list = []
    per_use = hh.dose if sensor else spec["dose_per_cycle"] * hh.counted_error

    def read(t: int) -> list:
        return tracker.reading(t, min(cap, max(0.0, actual + rng.gauss(0, 0.01 * cap)))) if sensor else tracker.tick(t)

    def refill(t: int) -> list:
        nonlocal actual
        actual = cap
        if not sensor:
            return tracker.refill(t)
        events = []
        for k in range(3):
            events += read(t + k)
        return events

    def order_if_asked(events: list, day: int) -> None:
        nonlocal pending
        if policy == "wichtel" and pending < 0 and any(e[0] == cons.REORDER for e in events):
            pending = day + lead

    for day in range(YEAR_DAYS):
        t0 = day * DAY
        if pending == day:
            arrivals.append(actual / max(hh.mean_daily(day), 1e-9))
            pending = -1
            order_if_asked(refill(t0 + 1000), day)
        n = hh.uses_today(day)
        ran_out = False
        for k in range(n):
            t = t0 + 7 * 3600_000 + k * (15 * 3600_000 // n)
            if actual < per_use:
                ran_out = True
            actual = max(0.0, actual - per_use)
            order_if_asked(read(t) if sensor else tracker.cycle(t), day)
        order_if_asked(read(t0 + 23 * 3600_000), day)
        if policy == "baseline" and pending < 0 and tracker.level <= BASELINE_SHARE * cap:
            pending = day + lead
        if ran_out or actual <= 0:
            out_days += 1
            if DEBUG:
                print(
                    "OUT day",
                    day,
                    "est",
                    round(tracker.level),
                    "mean",
                    round(tracker.usage.mean, 1),
                    "pending",
                    pending,
                    "sent",
                    tracker.reorder_sent,
                    "vac",
                    tracker.usage.on_vacation(),
                    "uses",
                    n,
                )
        if policy == "forecast":
            if actual <= 0:
                if day - 7 in predictions:
                    errors.append(abs(predictions[day - 7] - day))
                predictions.clear()
                refill((day + 1) * DAY - 1000)
            elif tracker.usage.mean > 0 and tracker.level < 21 * tracker.usage.mean:
                f = tracker.forecast()
                if f.days_left >= 0:
                    predictions[day] = day + f.days_left
        elif pending < 0 and actual < 0.5 * cap and rng.random() < 0.01:
            order_if_asked(refill(t0 + 23 * 3600_000 + 60_000), day)  # bought on a whim, not ordered
    return {"out_days": out_days, "arrivals": arrivals, "errors": errors}


def run(name: str, spec: dict, households: int, pool: object) -> dict:
    result = {}
    for policy in ("wichtel", "baseline", "forecast"):
        jobs = [(name, spec, 1000 + i, policy) for i in range(households)]
        runs = pool.map(simulate, jobs, chunksize=max(1, households // 20)) if pool else list(map(simulate, jobs))  # type: ignore[attr-defined]
        if policy == "forecast":
            errs = [e for r in runs for e in r["errors"]]
            result["empty_date_error_days_median"] = statistics.median(errs) if errs else None
            result["empty_date_error_days_p90"] = sorted(errs)[int(0.9 * len(errs))] if errs else None
            result["empty_date_predictions"] = len(errs)
            continue
        prefix = "" if policy == "wichtel" else "baseline_"
        arrivals = [a for r in runs for a in r["arrivals"]]
        result[prefix + "stockout_days_per_year"] = sum(r["out_days"] for r in runs) / households
        result[prefix + "stockout_share"] = sum(1 for r in runs if r["out_days"]) / households
        result[prefix + "overstock_days"] = statistics.mean(arrivals) if arrivals else 0.0
        result[prefix + "deliveries"] = len(arrivals)
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
    print("%-13s %22s %22s %24s %14s" % ("consumable", "stock-out years", "stock-out days/year",
                                        "stock left at delivery", "7-day error"))  # fmt: skip
    print("%-13s %11s %10s %11s %10s %12s %11s %14s" % ("", "wichtel", "20% rule", "wichtel", "20% rule",
                                                       "wichtel", "20% rule", "median (days)"))  # fmt: skip
    for name, r in results.items():
        print("%-13s %10.1f%% %9.1f%% %11.2f %10.2f %10.1f d %9.1f d %14.2f" % (
            name, 100 * r["stockout_share"], 100 * r["baseline_stockout_share"], r["stockout_days_per_year"],
            r["baseline_stockout_days_per_year"], r["overstock_days"], r["baseline_overstock_days"],
            _or_nan(r["empty_date_error_days_median"])))  # fmt: skip
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
