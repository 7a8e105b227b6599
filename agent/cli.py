"""The `wichtel` command: profile check/compile, simulate, run, consent, data and detect;
other packages add commands of their own (provisioning adds `provision` and `demo`).

Exit codes: 0 success, 2 bad input (profile, trace, arguments), 1 anything unexpected,
among it storage that refused a change (a full disk): said in one line, never a traceback.
"""

import argparse
import asyncio
import errno
import importlib.metadata
import os
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from agent import detect, device, files, host, setup_code
from agent.core import VERSION
from agent.core import device as core_device
from agent.core.clock import ScaledClock
from agent.core.consumables import ReorderChoice
from agent.core.detectors import DETECTORS
from agent.core.errors import ConfigError, OutboxFullError, StorageError, WichtelError
from agent.core.pipeline import Agent
from agent.demo import Narrator
from agent.device_data import DeviceData
from agent.local_page import mdns, mdns_host
from agent.profile_loader import ProfileFileError, compile_json, load
from agent.replay import TraceError
from agent.sim.appliances import FAULTS

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
# During a run the device's state is stored this often (wall time), and a store that
# failed (a full disk) is tried again: a power cut or a full disk loses at most this much.
STATE_CHECKPOINT_S = 300.0
_HOUR_MS = 3600 * 1000
DEFAULT_HOURS = 72.0  # what run --simulate and simulate run unless --hours says otherwise
UNTIL_STOPPED_HOURS = 10 * 365 * 24.0  # real sensors: until Ctrl-C or SIGTERM unless --hours says otherwise

# Commands another package adds to `wichtel`: an entry point of this group, named as the
# command, names a module with add_commands(subparsers) and run(args). The agent does not
# know those packages (docs/layers.md); a command's module is imported only when that
# command (or the list of all commands) is asked for, so `wichtel run` never loads one.
COMMAND_GROUP = "wichtel.commands"
COMMANDS = ("profile", "run", "simulate", "consent", "data", "detect")  # the agent's own


class UsageError(WichtelError):
    """Arguments that parse but do not fit together."""


class CommandModule(Protocol):
    """What an entry point of COMMAND_GROUP names."""

    def add_commands(self, sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def added_commands(argv: list) -> "dict[str, CommandModule]":
    """{command: module} of the added commands argv may need: none for the agent's own
    commands or --version, the one named, or all of them (for help, and to list them when
    argv names no command or one that does not exist)."""
    words = [a for a in argv if not a.startswith("-")]
    if (words and words[0] in COMMANDS) or (not words and "--version" in argv):
        return {}
    entries = importlib.metadata.entry_points(group=COMMAND_GROUP)
    named = [e for e in entries if words and e.name == words[0]]
    return {e.name: e.load() for e in (named or entries)}


def _parser(added: "dict[str, CommandModule] | None" = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wichtel", description="Wichtel: a privacy-first edge agent for home appliances.")
    p.add_argument("--version", action="version", version="wichtel " + VERSION)
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
        sp.add_argument("--fault", action="append", default=[], metavar="NAME",
                        help="inject a fault: one of the profile's (simulation.faults) or a built-in one of its "
                        "kind (%s); repeatable" % ", ".join(sorted(FAULTS)))  # fmt: skip
        sp.add_argument("--fault-onset", type=int, default=2,
                        help="program cycle at which built-in faults start (default 2; a profile's fault gives "
                        "its own onset)")  # fmt: skip
        sp.add_argument(
            "--fault-ramp", type=int, default=2, help="cycles until a built-in fault is at full strength (default 2)"
        )
        sp.add_argument("--hours", type=float, default=None,
                        help="hours to run (default 72; a replay: to the end of its trace)")  # fmt: skip

    run = sub.add_parser("run", help="run the agent on a profile")
    run.add_argument("--profile", help="the appliance profile (needed unless --bundle gives it)")
    run.add_argument("--bundle", metavar="DIR", help="a provisioned device bundle: profile, id, broker, TLS files")
    src = run.add_mutually_exclusive_group()
    src.add_argument("--simulate", action="store_true", help="read a simulated appliance")
    src.add_argument("--replay", metavar="TRACE.csv", help="read a recorded trace")
    src.add_argument("--sysfs", metavar="DIR", help="with neither: read the real sensors' files (Linux IIO) under DIR "
                     "instead of /sys, e.g. a copy or a test's fake tree (docs/drivers.md)")  # fmt: skip
    run.add_argument("--speed", type=float, default=None, help="times real time; 0 = as fast as possible (default "
                     "with --simulate or --replay; real sensors run in real time)")  # fmt: skip
    run.add_argument(
        "--consent",
        action="append",
        default=[],
        metavar="CATEGORY",
        help="act as if the user switched on this data category",
    )
    run.add_argument("--device-id", default="sim-0001")
    run.add_argument("--data-dir", metavar="DIR", help="the device's storage: consent, learned state, sent log")
    run.add_argument("--broker", metavar="HOST:PORT", help="send what the privacy gate lets out to this MQTT broker")
    run.add_argument("--ca", help="the broker's CA certificate (PEM), pinned")
    run.add_argument("--cert", help="this device's certificate (PEM)")
    run.add_argument("--key", help="this device's private key (PEM)")
    run.add_argument("--page", metavar="HOST:PORT", help="serve the local privacy page on this address only (off "
                     "unless given); the data directory must hold identity/setup_code.json")  # fmt: skip
    run.add_argument(
        "--reorder-choice", action="append", default=[], metavar="ID=MODE[:PRODUCT[@RETAILER]]",
        help="the user's reorder choice for a consumable: off, remind (default) or share",
    )  # fmt: skip
    sim_args(run)

    simulate = sub.add_parser("simulate", help="record a simulated appliance trace as CSV")
    simulate.add_argument("--profile", required=True)
    simulate.add_argument("--output", required=True, metavar="TRACE.csv")
    sim_args(simulate)

    con = sub.add_parser("consent", help="show or change which data categories may leave the device")
    con_sub = con.add_subparsers(dest="action", required=True)
    show = con_sub.add_parser("show", help="each data category, its state and what it is for")
    show.add_argument("--lang", choices=("en", "de"), default="en")
    cset = con_sub.add_parser("set", help="switch a category on or off (recorded with a receipt)")
    cset.add_argument("category")
    cset.add_argument("choice", choices=("on", "off"))
    data_p = sub.add_parser("data", help="export or erase what the device holds about its use")
    data_sub = data_p.add_subparsers(dest="action", required=True)
    exp = data_sub.add_parser("export", help="everything the device holds, as one JSON file")
    exp.add_argument("-o", "--output")
    data_sub.add_parser("erase", help="wipe personal data and ask upstream to erase too")
    data_sub.add_parser("factory-reset", help="erase, and the device identity except what provisioning made permanent")
    for sp in (show, cset, exp, data_sub.choices["erase"], data_sub.choices["factory-reset"]):
        sp.add_argument("--profile", required=True)
        sp.add_argument("--data-dir", required=True, metavar="DIR")
        sp.add_argument("--device-id", default="sim-0001")

    detect = sub.add_parser(
        "detect",
        help="score a column of a CSV file (timestamp,value: the NAB format) with a detector",
        description="Scores each row's value with a streaming detector and writes timestamp,value,anomaly_score "
        "(0..1) as CSV: one row per input row, in file order; a missing value gets an empty score. Warnings and "
        "errors go to stderr; bad input exits 2 with one line that names file:line.",
    )
    detect.add_argument("file", nargs="?", metavar="FILE.csv")
    detect.add_argument("--detector", default="wichtel", metavar="NAME", help="a name from --list (default wichtel)")
    detect.add_argument("--output", metavar="scores.csv", help="write the scores here, whole or not at all "
                        "(default: stdout)")  # fmt: skip
    detect.add_argument("--column", metavar="NAME", help="the column to score (default: value, or the only other "
                        "column with a number in the first row)")  # fmt: skip
    detect.add_argument("--time-column", default="timestamp", metavar="NAME", help="the column of times: ISO 8601 "
                        "(2014-04-10 07:15:00, ...T07:15:00.5+02:00; no offset: UTC) or seconds since 1970 "
                        "(default timestamp)")  # fmt: skip
    detect.add_argument("--delimiter", metavar="CHAR", help="the field separator: one character, or tab (default: "
                        "whichever of , ; tab the header line has most of)")  # fmt: skip
    detect.add_argument("--threshold", metavar="X", help="also report the stretches of rows with anomaly_score >= X "
                        "(0..1): to stderr, or to stdout with --output")  # fmt: skip
    detect.add_argument("--set", action="append", default=[], metavar="NAME=NUMBER", help="a detector setting, e.g. "
                        "alarm=3.0 (wichtel) or alpha=0.002 (zscore); repeatable")  # fmt: skip
    detect.add_argument("--list", action="store_true", help="list the detectors and exit")

    for module in (added or {}).values():
        module.add_commands(sub)
    return p


def run_device(args: argparse.Namespace, narrate_consent: bool = False) -> int:
    """`wichtel run` on a namespace of its options (what the demo runs, too)."""
    profile = load(args.profile)
    real = not args.replay and not getattr(args, "simulate", True)  # the demo's namespace has no --simulate
    if args.replay:
        drivers, phases = host.replayed(profile, args.replay)
        if args.hours is None:
            args.hours = phases.trace.end_ms() / _HOUR_MS
    elif real:
        drivers, phases = _real_sensors(args, profile)
    else:
        drivers, phases = host.simulated(profile, args.seed, args.fault, args.fault_onset, args.fault_ramp)
    if args.speed is None:
        args.speed = 0.0
    if args.hours is None:
        args.hours = DEFAULT_HOURS
    narrator = Narrator(profile)
    choices = _choices(getattr(args, "reorder_choice", []), profile)
    agent, data, messages = device.open_device(
        profile, getattr(args, "data_dir", None), args.device_id, drivers, host.clock(args.speed), phases, narrator,
        choices,
    )  # fmt: skip
    for message in messages:
        narrator.say(message)
    said = set(messages)
    for cat in args.consent:
        _consent(agent, data, cat, True)
        if narrate_consent:
            narrator.say("The user switched on '%s' on the local page: %s" % (cat, narrator.purposes[cat]))
    consent = agent.snapshot().choices
    off = [c["id"] for c in profile["data_categories"] if consent[c["id"]] != "on"]
    narrator.say("Off (the default, nothing optional leaves without consent): " + (", ".join(off) or "none"))
    page = _page_address(args, data)
    try:
        asyncio.run(_run_agent(agent, args, narrator, data, page))
    except BaseException:
        device.close_device(agent, data)  # a page that could not listen, Ctrl-C: nothing left open
        raise
    for problem in device.close_device(agent, data):
        narrator.say(problem)
    snap = agent.snapshot()
    for problem in snap.outbox_problems:
        if "Outbox: " + problem not in said:
            narrator.say("Outbox: " + problem)
    samples = snap.samples
    awaiting = snap.awaiting
    if real:  # stopped when the user said so: the time that passed, not the --hours asked for
        span = "%.1f s of real time" % (agent.clock.now_ms() / 1000)
    else:
        span = "%.0f simulated hours" % args.hours
    taken = ""
    if getattr(args, "broker", None):
        taken = ("; the broker took %d messages: events the gate let out and the device's own (consent receipts, "
                 "erasure requests, status)" % narrator.delivered)  # fmt: skip
    narrator.say(
        "Done: %d samples over %s; %d unusual readings; %d messages would be sent, "
        "%d events kept on the device%s; %d waiting in the outbox for an uplink%s."
        % (samples, span, narrator.anomalies, narrator.sent, narrator.kept, taken, snap.waiting,
           "; %d sent but not yet confirmed by the backend (kept, and sent again)" % awaiting if awaiting else "")
    )  # fmt: skip
    if data is not None and data.unsaved:
        narrator.say("The device's state could not be stored (see above); the state stored before is intact.")
        return EXIT_FAILED
    return 0


def _real_sensors(args: argparse.Namespace, profile: dict) -> tuple:
    """run --profile P without --simulate/--replay: the profile's own drivers, in real
    time, until stopped unless --hours says otherwise."""
    if args.fault:
        raise UsageError("--fault is for --simulate; real sensors have their own faults")
    if args.speed not in (None, 1.0):
        raise UsageError(
            "--speed %g: real sensors run in real time; --speed is for --simulate and --replay" % args.speed
        )
    env = {"sysfs": args.sysfs} if getattr(args, "sysfs", None) else {}
    drivers, phases = host.real(profile, env)
    args.speed = 1.0
    if args.hours is None:
        args.hours = UNTIL_STOPPED_HOURS
    return drivers, phases


def _page_address(args: argparse.Namespace, data: DeviceData | None) -> tuple | None:
    """(host, port, setup-code record, demo code or "") for --page, or None. The demo device
    gets a fresh setup code, printed once the page listens; any other device must have the
    record from provisioning."""
    spec = getattr(args, "page", None)
    if not spec:
        return None
    host_name, _, port = spec.rpartition(":")
    if not host_name or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError("--page %s: expected HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free port)" % spec)
    if data is None:
        raise UsageError("--page needs the device's data directory (--data-dir or --bundle)")
    identity = os.path.join(data.root, "identity")
    code = ""
    if getattr(args, "demo_setup_code", False):
        files.private_dir(identity)
        code = setup_code.new_code()
        setup_code.write_record(identity, setup_code.hash_code(code))
    try:
        record = setup_code.read_record(identity)
    except setup_code.SetupCodeError as e:
        raise UsageError("--page: %s (a provisioned bundle has it)" % e) from e
    return host_name, int(port), record, code


def _lan_ipv4(host_name: str) -> bool:
    """An IPv4 address of this machine on a network (not loopback): where a name on the
    home network (mDNS) helps the user find the page."""
    parts = host_name.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return False
    return parts[0] != "127" and host_name != "0.0.0.0"


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run work until it ends or stop is set; True if stopped."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
        return False
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return True


async def _run_agent(agent: Agent, args: argparse.Namespace, narrator: Narrator, data: DeviceData | None = None,
                     page_at: tuple | None = None) -> None:  # fmt: skip
    stop = asyncio.Event()
    page = None
    responder = None  # the mDNS responder's transport, when the page serves the home network
    if page_at is not None:
        from agent.local_page.server import LocalPage  # microdot only where a page is wanted

        page = LocalPage(agent, data, page_at[2], report=narrator.say)
        name = mdns.local_name(agent.profile["appliance"]["model"], agent.device_id)
        on_lan = _lan_ipv4(page_at[0])
        try:
            await page.start(page_at[0], page_at[1], (name + ".local",) if on_lan else ())
        except (OSError, ConfigError) as e:
            busy = " (another program uses this port: choose another, or port 0 for any free one)"
            raise UsageError(
                "--page %s:%d: cannot listen there (%s)%s"
                % (page_at[0], page_at[1], e, busy if getattr(e, "errno", None) == errno.EADDRINUSE else "")
            ) from e
        # Only now, with the port ours: a code typed at this address reaches this page and nothing else.
        narrator.say("The local privacy page: http://%s:%d/ (only on that address)" % (page_at[0], page.port))
        if on_lan:
            try:
                responder = (await mdns_host.start(name, page_at[0], narrator.say))[0]
                narrator.say("On this network also as http://%s.local:%d/ (mDNS)" % (name, page.port))
            except OSError as e:
                narrator.say("mDNS: cannot answer for %s.local (%s); the page is at its address only" % (name, e))
        if page_at[3]:
            narrator.say("Setup code of the demo device (printed on its label): " + page_at[3])
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # end cleanly: the device's state is stored
            loop.add_signal_handler(sig, stop.set)
    checkpoints = asyncio.ensure_future(_checkpoints(agent, data, narrator)) if data is not None else None
    try:
        await _uplink_and_run(agent, args, narrator, stop, page is not None and getattr(args, "stay", False))
    finally:
        if checkpoints is not None:
            checkpoints.cancel()
        if responder is not None:
            responder.close()
        if page is not None:
            await page.stop()


async def _checkpoints(agent: Agent, data: DeviceData, narrator: Narrator) -> None:
    """Store the device's state every STATE_CHECKPOINT_S during a run (agent/core/device.py:
    a failure said once, tried again at the next checkpoint; the run goes on)."""
    await core_device.checkpoints(agent, data, narrator.say, int(STATE_CHECKPOINT_S * 1000))


async def _uplink_and_run(agent: Agent, args: argparse.Namespace, narrator: Narrator, stop: asyncio.Event,
                          stay: bool) -> None:  # fmt: skip
    async def run() -> None:
        if await _until_stopped(agent.run(int(args.hours * _HOUR_MS)), stop) or not stay:
            return
        narrator.say("The appliance goes on in real time with the page up; Ctrl-C ends the demo.")
        agent.clock = ScaledClock(1.0, agent.clock.now_ms())
        await _until_stopped(agent.run(10 * 365 * 24 * _HOUR_MS), stop)

    broker = getattr(args, "broker", None)
    if not broker:
        await run()
        return
    from agent.uplink_paho import PahoUplink, UplinkConfig  # paho only where an uplink is wanted

    host_name, _, port = broker.rpartition(":")
    if not (host_name and port.isdigit() and args.ca and args.cert and args.key):
        raise UsageError("--broker HOST:PORT needs --ca, --cert and --key: the uplink is mutual TLS only")
    cfg = UplinkConfig(host_name, int(port), args.device_id, args.ca, args.cert, args.key,
                       root=agent.profile["uplink"]["topic_prefix"])  # fmt: skip
    uplink = PahoUplink(cfg, on_command=agent.on_command, report=narrator.say)
    agent.report_to(narrator.say)
    agent.attach_uplink(uplink)
    uplink.start()
    try:
        await run()
        # What is waiting goes out if the broker can be reached within a few seconds.
        for _ in range(50):
            if not agent.waiting_messages():
                break
            if uplink.connected.is_set():
                await agent.flush()
            await asyncio.sleep(0.1)
    finally:
        await uplink.stop()


def _from_bundle(args: argparse.Namespace) -> argparse.Namespace:
    """run --bundle DIR: profile, device id, broker and TLS files from the bundle (verified
    first); the bundle is the data directory unless --data-dir says otherwise."""
    if not args.bundle:
        if not args.profile:
            raise UsageError("wichtel run needs --profile (or --bundle DIR of a provisioned device)")
        return args
    from agent.bundle import BundleError, for_run  # cryptography only where a bundle is checked

    try:
        settings = for_run(args.bundle)
    except BundleError as e:
        raise UsageError("--bundle %s: %s" % (args.bundle, e)) from e
    for name, value in settings.items():
        if name != "broker" or not args.broker:  # an explicit --broker wins (a test or staging broker)
            setattr(args, name, value)
    args.data_dir = args.data_dir or args.bundle
    return args


def _consent(agent: Agent, data: object, category: str, on: bool) -> dict:
    """A consent change; a disk that refuses it raises StorageError (exit 1), nothing changed."""
    try:
        return device.set_consent(agent, data, category, on, agent.clock.now_ms(), int(time.time()))  # type: ignore[arg-type]
    except (ConfigError, OutboxFullError) as e:
        raise UsageError(str(e)) from None


def _consent_command(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    agent, data, messages = device.open_device(profile, args.data_dir, args.device_id)
    for message in messages:
        print(message)
    if args.action == "set":
        receipt = _consent(agent, data, args.category, args.choice == "on")
        for problem in device.close_device(agent, data):
            print(problem)
        print("%s is now %s (receipt %d, text %s)" % (args.category, receipt["choice"], receipt["seq"],
                                                      receipt["text_hash"][:12]))  # fmt: skip
        if args.choice == "off":
            print("Its waiting messages were removed; an erasure request for it is queued for upstream.")
        return 0
    lang = args.lang
    for cat in profile["data_categories"]:
        state = "always on" if cat["essential"] else agent.snapshot().choices[cat["id"]]
        print("%-18s %-9s %s" % (cat["id"], state, cat["title"][lang]))
        print("%-28s %s" % ("", cat["purpose"][lang]))
    return 0


def _data_command(args: argparse.Namespace) -> int:
    profile = load(args.profile)
    agent, data, messages = device.open_device(profile, args.data_dir, args.device_id)
    for message in messages:
        print(message, file=sys.stderr)
    if args.action == "export":
        text = device.export_text(agent)
        if args.output:
            files.write_atomic(args.output, text.encode())  # 0600: it is personal data
            print("%s: everything this device holds about its use (docs/export.md)" % args.output, file=sys.stderr)
        else:
            print(text, end="")
        return 0
    try:
        pending = device.erase(agent, data, agent.clock.now_ms())
    except OutboxFullError as e:
        raise UsageError("nothing was erased: %s" % e) from None
    removed: list = []
    if data is not None and args.action == "factory-reset":
        removed = data.factory_reset()
    for problem in data.problems if data is not None else []:
        print(problem, file=sys.stderr)
    print("Erased: consent history, learned models, stored events and the sent log. All optional categories are off.")
    if args.action == "factory-reset":
        print("Identity material removed: %s." % (", ".join(removed) or "none"))
    print("%d erasure requests wait for the uplink to tell upstream to erase what it holds." % pending)
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
    argv = sys.argv[1:] if argv is None else argv
    added = added_commands(argv)
    args = _parser(added).parse_args(argv)
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
                files.write_atomic(args.output, data, files.SHARED)
            else:
                sys.stdout.write(data.decode() + "\n")
            return 0
        if args.command == "simulate":
            profile = load(args.profile)
            drivers, phases = host.simulated(profile, args.seed, args.fault, args.fault_onset, args.fault_ramp)
            hours = DEFAULT_HOURS if args.hours is None else args.hours
            rows = host.record(profile, drivers, phases, int(hours * _HOUR_MS), args.output)
            print("%s: %d rows, %.0f simulated hours" % (args.output, rows, hours))
            return 0
        if args.command == "consent":
            return _consent_command(args)
        if args.command == "data":
            return _data_command(args)
        if args.command == "detect":
            if args.list:
                for name in sorted(DETECTORS):
                    print("%-10s %s" % (name, DETECTORS[name].SUMMARY))
                return 0
            if args.file is None:
                raise UsageError("wichtel detect needs FILE.csv (or --list)")
            return detect.run(
                args.file,
                args.output,
                args.detector,
                settings=args.set,
                time_column=args.time_column,
                column=args.column,
                delimiter=args.delimiter,
                threshold=args.threshold,
            )
        if args.command in added:
            return int(added[args.command].run(args))
        return run_device(_from_bundle(args))
    except (ProfileFileError, TraceError, ConfigError, UsageError) as e:
        print("wichtel: " + str(e), file=sys.stderr)
        return EXIT_BAD_INPUT
    except StorageError as e:
        print("wichtel: " + str(e), file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
