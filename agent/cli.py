"""The `wichtel` command: profile check/compile, simulate, run and demo.

Exit codes: 0 success, 2 bad input (profile, trace, arguments), 1 anything unexpected.
"""

import argparse
import asyncio
import sys

from agent import detect, host, state_store
from agent.core.consumables import ReorderChoice
from agent.core.detectors import DETECTORS
from agent.core.errors import ConfigError
from agent.core.gate import ConsentView
from agent.core.pipeline import Agent
from agent.demo import Narrator
from agent.profile_loader import ProfileFileError, compile_json, example, load
from agent.replay import TraceError
from agent.sim.appliances import FAULTS

EXIT_BAD_INPUT = 2
_HOUR_MS = 3600 * 1000


class UsageError(Exception):
    """Arguments that parse but do not fit together."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wichtel", description="Wichtel: a privacy-first edge agent for home appliances.")
    sub = p.add_subparsers(dest="command", required=True)

    prof = sub.add_parser("profile", help="check or compile an appliance profile")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    check = prof_sub.add_parser("check", help="validate a profile; exit 0 if valid, 2 with the first error")
    check.add_argument("file")
    comp = prof_sub.add_parser("compile", help="validate and write compact JSON for devices")
    comp.add_argument("file")
    comp.add_argument("-o", "--output", help="output file (default: standard output)")

    def sim_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seed", type=int, default=1, help="seed of the simulated appliance (default 1)")
        sp.add_argument(
            "--fault", action="append", default=[], choices=sorted(FAULTS), help="inject a fault (repeatable)"
        )
        sp.add_argument("--fault-onset", type=int, default=2, help="program cycle at which faults start (default 2)")
        sp.add_argument(
            "--fault-ramp", type=int, default=2, help="cycles until a fault is at full strength (default 2)"
        )
        sp.add_argument("--hours", type=float, default=72.0, help="simulated hours to run (default 72)")

    run = sub.add_parser("run", help="run the agent on a profile")
    run.add_argument("--profile", required=True)
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--simulate", action="store_true", help="read a simulated appliance")
    src.add_argument("--replay", metavar="TRACE.csv", help="read a recorded trace")
    run.add_argument("--speed", type=float, default=0.0, help="times real time; 0 = as fast as possible (default)")
    run.add_argument(
        "--consent",
        action="append",
        default=[],
        metavar="CATEGORY",
        help="act as if the user switched on this data category",
    )
    run.add_argument("--device-id", default="sim-0001")
    run.add_argument("--state", metavar="FILE", help="keep what the consumable trackers learn in FILE across runs")
    run.add_argument(
        "--reorder-choice", action="append", default=[], metavar="ID=MODE[:PRODUCT[@RETAILER]]",
        help="the user's reorder choice for a consumable: off, remind (default) or share",
    )  # fmt: skip
    sim_args(run)

    simulate = sub.add_parser("simulate", help="record a simulated appliance trace as CSV")
    simulate.add_argument("--profile", required=True)
    simulate.add_argument("--output", required=True, metavar="TRACE.csv")
    sim_args(simulate)

    detect = sub.add_parser("detect", help="score a timestamp,value CSV (the NAB format) with a detector")
    detect.add_argument("file", nargs="?", metavar="FILE.csv")
    detect.add_argument("--detector", default="wichtel", metavar="NAME", help="a name from --list (default wichtel)")
    detect.add_argument("--output", metavar="scores.csv", help="write timestamp,value,anomaly_score (default: stdout)")
    detect.add_argument("--list", action="store_true", help="list the detectors and exit")

    demo = sub.add_parser("demo", help="a simulated washing machine whose drain pump clogs")
    demo.add_argument("--speed", type=float, default=0.0, help="times real time; 0 = as fast as possible (default)")
    demo.add_argument("--hours", type=float, default=120.0)
    return p


def _run(args: argparse.Namespace, narrate_consent: bool = False) -> int:
    profile = load(args.profile)
    if args.replay:
        drivers, phases = host.replayed(profile, args.replay)
    else:
        drivers, phases = host.simulated(profile, args.seed, args.fault, args.fault_onset, args.fault_ramp)
    consent = ConsentView(profile["data_categories"])
    narrator = Narrator(profile)
    for cat in args.consent:
        try:
            consent.set(cat, True)
        except KeyError:
            known = ", ".join(c["id"] for c in profile["data_categories"])
            raise UsageError("--consent " + cat + ": the profile has no such data category; known: " + known) from None
        if narrate_consent:
            narrator.say("The user switched on '%s' on the local page: %s" % (cat, narrator.purposes[cat]))
    choices = _choices(getattr(args, "reorder_choice", []), profile)
    off = [c["id"] for c in profile["data_categories"] if not consent.allows(c["id"])]
    narrator.say("Off (the default, nothing optional leaves without consent): " + (", ".join(off) or "none"))
    agent = Agent(profile, args.device_id, drivers, host.clock(args.speed), phases, None, consent, narrator, choices)
    state_file = getattr(args, "state", None)
    if state_file:
        saved, problem = state_store.load(state_file)
        if problem:
            narrator.say("State: " + problem + "; the consumable trackers start fresh.")
        for message in agent.restore_consumables((saved or {}).get("consumables", {})):
            narrator.say("State: " + message)
        for stock in agent.stock:  # a choice given now wins over the stored one
            if stock.tracker.id in choices:
                stock.tracker.choice = choices[stock.tracker.id]
    asyncio.run(agent.run(int(args.hours * _HOUR_MS)))
    if state_file:
        state_store.save(state_file, {"consumables": agent.consumable_state()})
    samples = sum(c.samples for c in agent.channels)
    narrator.say(
        "Done: %d samples over %.0f simulated hours; %d unusual readings; %d messages would be sent, "
        "%d events kept on the device; %d waiting in the outbox for an uplink."
        % (samples, args.hours, narrator.anomalies, narrator.sent, narrator.kept, len(agent.outbox))
    )
    return 0


def _choices(specs: list, profile: dict) -> dict:
    """--reorder-choice detergent=share:EcoWash@Corner shop -> {id: ReorderChoice}."""
    known = [c["id"] for c in profile["consumables"]]
    out = {}
    for spec in specs:
        cid, _, rest = spec.partition("=")
        mode, _, item = rest.partition(":")
        product, _, retailer = item.partition("@")
        if cid not in known:
            raise UsageError(
                "--reorder-choice %s: the profile has no consumable %r; known: %s" % (spec, cid, ", ".join(known))
            )
        out[cid] = ReorderChoice(mode, product.strip(), retailer.strip())
    return out


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "profile":
            prof = load(args.file)
            if args.action == "check":
                print(
                    "%s: valid profile for %s %s (%d channels, %d data categories)"
                    % (
                        args.file,
                        prof["appliance"]["maker"],
                        prof["appliance"]["model"],
                        len(prof["channels"]),
                        len(prof["data_categories"]),
                    )
                )
                return 0
            data = compile_json(prof)
            if args.output:
                with open(args.output, "wb") as f:
                    f.write(data)
            else:
                sys.stdout.write(data.decode() + "\n")
            return 0
        if args.command == "simulate":
            profile = load(args.profile)
            drivers, phases = host.simulated(profile, args.seed, args.fault, args.fault_onset, args.fault_ramp)
            rows = host.record(profile, drivers, phases, int(args.hours * _HOUR_MS), args.output)
            print("%s: %d rows, %.0f simulated hours" % (args.output, rows, args.hours))
            return 0
        if args.command == "detect":
            if args.list:
                for name in sorted(DETECTORS):
                    print("%-10s %s" % (name, DETECTORS[name].SUMMARY))
                return 0
            if args.file is None:
                raise UsageError("wichtel detect needs FILE.csv (or --list)")
            return detect.run(args.file, args.output, args.detector)
        if args.command == "demo":
            print("Wichtel demo: a washing machine whose drain pump starts to clog at its ninth wash.")
            demo_args = argparse.Namespace(
                profile=example("washing_machine"),
                replay=None,
                seed=7,
                fault=["pump_clog"],
                fault_onset=8,
                fault_ramp=4,
                consent=["maintenance"],
                device_id="demo-0001",
                speed=args.speed,
                hours=args.hours,
            )
            return _run(demo_args, narrate_consent=True)
        return _run(args)
    except (ProfileFileError, TraceError, ConfigError, UsageError) as e:
        print("wichtel: " + str(e), file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
