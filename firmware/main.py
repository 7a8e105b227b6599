"""What a flashed board runs after boot.py: safe mode, Wi-Fi onboarding or the agent with its
Wi-Fi link, NTP time, watchdog, outbox on flash, TLS uplink and local page.

run(env) takes the board's modules from env (BoardEnv): board_env() gives a board's own
(machine, network, ntptime), the tests give emulated ones (hil_tests/emulated/) and run the
same code on the MicroPython unix port. With no Wi-Fi credentials stored, the board opens
its setup access point (onboarding.py) and restarts once the user has entered them; with
them, it runs the device of the bundle on its filesystem (board_config.py) until it is reset.
docs/firmware.md describes the whole.
"""

import asyncio
import gc
import os

from agent import setup_code
from agent.core import limits as core_limits
from agent.core.clock import BoardClock
from agent.core.compat import IS_MICROPYTHON, const, mem_alloc, sleep_ms, ticks_add, ticks_diff, ticks_ms
from agent.core.consent import ConsentLedger
from agent.core.errors import ConfigError
from agent.core.pipeline import Agent
from agent.core.uplink import PortableUplink
from firmware import recovery
from firmware.board_config import BoardConfig
from firmware.flash_store import FlashStore
from firmware.wifi_credentials import CredentialsError, CredentialStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from agent.local_page.board import BoardPage

# -- limits and places ----------------------------------------------------------------------------
PAGE_PORT = const(80)
DATA_DIR = "data"  # the outbox's segments and the device's data (board_data.py), below the filesystem root
# The learned state and the sent log are stored this often while the board runs (as often as
# the host's run stores them: agent/cli.py STATE_CHECKPOINT_S), after each change on the page,
# and when the run stops: a power cut loses at most this much of what was learned. Real time,
# not the agent's clock, which the tests speed up: a flash write per simulated minute would wear it.
STATE_SAVE_MS = const(300_000)
RESTART_DELAY_MS = const(5_000)  # after an unexpected fault: its report reaches the console, then the reset
PAGE_CHECK_MS = const(1_000)  # how often the page's address is matched to the link's
END_CHECK_MS = const(50)  # how often a test's run (BoardEnv.seconds) looks whether it is over
GC_THRESHOLD = const(16 * 1024)  # collect after this many bytes allocated (firmware/runtime.py says why)
_FOREVER_MS = 10 * 365 * 24 * 3600 * 1000  # the agent's run: until the board is reset


class BoardEnv:
    """What the firmware takes from the board: its modules, where its files are, how long to
    run. board_env() gives a board's own; the tests give emulated modules and a directory.

    root: the filesystem root holding the bundle's files ("" on a board: "/"). seconds: run
    at most this long, then stop and return what happened (0: until reset, as on a board; a
    test may end it sooner by setting end_now). speed: the
    agent's clock (1 on a board). tuning: per part ("wifi", "ntp", "watchdog", "page",
    "button", "onboarding", "state") keyword arguments that replace its limits (the tests'
    shorter waits; "state": {"save_ms": ...}).
    """

    def __init__(self, machine: "Any", network: "Any", ntptime: "Any", root: str = "", page_port: int = PAGE_PORT,
                 seconds: float = 0, speed: float = 1.0, safe_mode_window_ms: int = recovery.SAFE_MODE_WINDOW_MS,
                 machine_name: str = "", tuning: "dict | None" = None,
                 report: "Callable[[str], None] | None" = None) -> None:  # fmt: skip
        self.machine = machine
        self.network = network
        self.ntptime = ntptime
        self.root = root.rstrip("/")
        self.page_port = page_port
        self.seconds = seconds
        self.speed = speed
        self.safe_mode_window_ms = safe_mode_window_ms
        self.machine_name = machine_name
        self.tuning = tuning or {}
        self.report = report or _say
        self.end_now = False  # a test's run ends at its next look (END_CHECK_MS) once this is set

    def tuned(self, part: str) -> dict:
        return dict(self.tuning.get(part, {}))


def _say(text: str) -> None:
    print(text)


def board_env() -> BoardEnv:
    """The board's own modules (imported here: the unix port has none of them)."""
    import machine
    import network
    import ntptime

    return BoardEnv(machine, network, ntptime, machine_name=os.uname().machine)


def _button(env: BoardEnv) -> "Callable[[], bool]":
    pin = recovery.button(env.machine, recovery.button_pin(env.machine_name))

    def pressed() -> bool:
        return pin.value() == 0

    return pressed


async def _until_done(env: BoardEnv, stop: asyncio.Event) -> None:
    """Until `stop` is set, or env.seconds have passed, or a test sets env.end_now (the
    run's end when its own steps are done, however busy the machine); a board (seconds 0)
    has no end but `stop`."""
    if not env.seconds:
        await stop.wait()
        return
    deadline = ticks_add(ticks_ms(), int(env.seconds * 1000))
    while not stop.is_set() and not env.end_now and ticks_diff(deadline, ticks_ms()) > 0:
        await sleep_ms(END_CHECK_MS)


# -- onboarding -----------------------------------------------------------------------------------
async def onboard(env: BoardEnv, store: CredentialStore) -> dict:
    """The setup access point and its page until the user has stored credentials; then the reset."""
    from firmware import onboarding

    record = setup_code.read_record(env.root or "/")
    ssid, address = onboarding.open_access_point(env.network)
    saved = asyncio.Event()
    tune = env.tuned("onboarding")
    page = onboarding.OnboardingPage(record, store, env.report, saved.set, **env.tuned("page"))
    await page.start(address, env.page_port)
    env.report("onboarding: access point %r open; the setup page is at http://%s:%d/"
               % (ssid, address, env.page_port))  # fmt: skip
    try:
        await _until_done(env, saved)
        if saved.is_set():
            await sleep_ms(tune.get("reboot_delay_ms", onboarding.REBOOT_DELAY_MS))
    finally:
        await page.stop()
        onboarding.close_access_point(env.network)
    result = {"mode": "onboarding", "access_point": ssid, "stored": saved.is_set(), "page": page.stats,
              "heap_in_use": mem_alloc()}  # fmt: skip
    if saved.is_set():
        env.report("onboarding: restarting into the home network")
        env.machine.reset()  # a board does not come back from this
    return result


# -- running --------------------------------------------------------------------------------------
def build_drivers(profile: dict, machine: "Any", seed: int = 1, report: "Any" = print) -> tuple:
    """(drivers, phase source): each channel's driver from board_drivers.make, but `sim`
    channels, which share one appliance simulated from the profile (agent/sim/profile_model.py).
    The phase comes from the profile's phase_source (firmware/board_phase.py) when it has
    one, else from the simulated appliance, else it is always the profile's first phase."""
    from firmware import board_drivers

    drivers: dict = {}
    sim = None
    for spec in profile["channels"]:
        if spec["driver"] == "sim":
            if sim is None:
                from agent.sim.profile_model import build

                sim = build(profile, seed)
            from agent.sim.engine import SimDriver

            drivers[spec["id"]] = SimDriver(sim, spec["id"])
        else:
            drivers[spec["id"]] = board_drivers.make(spec, machine)
    if profile.get("phase_source") is not None:
        from firmware import board_phase

        return drivers, board_phase.make(profile, machine, report)
    return drivers, sim if sim is not None else _FixedPhase(profile["phases"][0])


class _FixedPhase:
    """The phase of an appliance with real sensors and no phase_source: its first phase."""

    def __init__(self, phase: str) -> None:
        self.name = phase

    def phase(self, t_ms: int) -> str:
        return self.name


class PageKeeper:
    """The local page on the link's address: started when the link is up, moved when its
    address changes, stopped when it drops (it never listens on all addresses: intake.py),
    and started anew after each join, even at the same address: a link that dropped and came
    back between two looks may have taken the listening socket with it."""

    def __init__(self, page: "BoardPage", port: int, address: "Callable[[], str]",
                 report: "Callable[[str], None]", joins: "Callable[[], int]" = lambda: 0,
                 name: str = "") -> None:  # fmt: skip
        self.page = page
        self.port = port
        self.name = name  # the board's name on the network (mDNS, answered by the Wi-Fi stack): "" for none
        self.address = address
        self.joins = joins
        self.report = report
        self.serving = ""
        self._joined = 0  # the link's count of joins when the page was started

    async def run(self, check_ms: int = PAGE_CHECK_MS) -> None:
        try:
            while True:
                now, joined = self.address(), self.joins()
                if now != self.serving or (now and joined != self._joined):
                    if self.serving:
                        await self.page.stop()
                        self.serving = ""
                    if now:
                        await self.page.start(now, self.port, (self.name + ".local",) if self.name else ())
                        self.serving, self._joined = now, joined
                        self.report("page: serving on http://%s:%d/" % (now, self.port))
                        if self.name:
                            self.report("page: also as http://%s.local:%d/ (mDNS)" % (self.name, self.port))
                await sleep_ms(check_ms)
        finally:
            if self.serving:
                await self.page.stop()


async def operate(env: BoardEnv, ssid: str, password: str) -> dict:
    """The device of the bundle on env.root, on the user's network, until reset (or env.seconds).
    What it stored before (consent, learned state, sent log, pseudonym key, waiting messages)
    comes back first, any damage said and acted on before anything can be sent."""
    from agent.core import device as core_device
    from agent.local_page import mdns
    from agent.local_page.board import BoardPage
    from agent.local_page.routes import StoredActions
    from firmware.board_data import BoardData
    from firmware.timesync import TimeSync
    from firmware.watchdog import LoopWatchdog
    from firmware.wifi import WifiLink

    say = env.report
    config = BoardConfig(env.root or ".", release=True)
    record = setup_code.read_record(env.root or "/")
    prof = config.profile
    drivers, phases = build_drivers(prof, env.machine, report=say)
    clock = BoardClock(env.speed)
    where = (env.root or "") + "/" + DATA_DIR
    data = BoardData(where)
    ledger = ConsentLedger(prof["data_categories"], config.device_id)
    saved, key, lost, messages = core_device.load(data, ledger)
    outbox, said = core_device.outbox(FlashStore(where), ledger, saved, core_limits.ESP32)
    box: list = []
    uplink = PortableUplink(config.host, config.port, config.device_id, config.tls_context, root=config.topic_prefix,
                            keepalive=prof["uplink"]["keepalive_s"], on_command=lambda t, p: box[0].on_command(t, p),
                            report=say)  # fmt: skip
    agent = Agent(prof, config.device_id, drivers, clock, phases, uplink, ledger, pseudonym_key=key, outbox=outbox,
                  board=core_limits.ESP32)  # fmt: skip
    box.append(agent)
    agent.report_to(say)
    for message in messages + said + core_device.settle(agent, data, saved, lost):
        say(message)
    del saved, messages, said
    page = BoardPage(agent, record, say, wall=clock.wall_s, actions=StoredActions(agent, data), **env.tuned("page"))
    name = mdns.local_name(prof["appliance"]["model"], config.device_id)
    wifi = WifiLink(env.network, ssid, password, say, hostname=name, **env.tuned("wifi"))
    ntp = TimeSync(env.ntptime, clock, wifi.is_up, say, **env.tuned("ntp"))
    store = CredentialStore(env.root)
    forget = asyncio.Event()

    def forget_wifi() -> None:
        say("button: held %d s: forgetting the Wi-Fi credentials; restarting into onboarding"
            % (recovery.CLEAR_HOLD_MS // 1000))  # fmt: skip
        store.clear()
        forget.set()

    save_ms = env.tuned("state").get("save_ms", STATE_SAVE_MS)
    tasks = {
        "agent": asyncio.create_task(agent.run(_FOREVER_MS)),
        "wifi": asyncio.create_task(wifi.run()),
        "time": asyncio.create_task(ntp.run()),
        "page": asyncio.create_task(
            PageKeeper(page, env.page_port, lambda: wifi.address, say, lambda: wifi.joins, name).run()
        ),
        "button": asyncio.create_task(recovery.watch_long_press(_button(env), forget_wifi, **env.tuned("button"))),
        "page_clock": asyncio.create_task(page.keep_time()),
        "state": asyncio.create_task(core_device.checkpoints(agent, data, say, save_ms)),
    }
    uplink.start()
    watchdog = LoopWatchdog(env.machine, dict(tasks), say, **env.tuned("watchdog"))
    tasks["watchdog"] = asyncio.create_task(watchdog.run())
    try:
        await _until_done(env, forget)
        ended = watchdog.ended()  # before the tasks are stopped below
    finally:
        for task in tasks.values():
            task.cancel()
        await uplink.stop()
        await sleep_ms(0)
        for problem in core_device.close(agent, data):
            say(problem)
    snap = agent.snapshot()
    result = {
        "mode": "running", "device": config.device_id, "made": snap.made, "left": snap.waiting + snap.awaiting,
        "connects": uplink.connects, "wifi": {"attempts": wifi.attempts, "joins": wifi.joins, "drops": wifi.drops,
        "waits_ms": wifi.waits_ms}, "ntp": {"syncs": ntp.syncs, "waits_ms": ntp.waits_ms},
        "time_synced_age_s": clock.synced_age_s(), "wall_s": clock.wall_s(), "feeds": watchdog.feeds,
        "starving": watchdog.starving, "ended": ended, "page": page.stats, "choices": snap.choices,
        "receipts": [r["seq"] for r in snap.receipts], "stored": not data.unsaved, "heap_in_use": mem_alloc(),
    }  # fmt: skip
    del snap
    if forget.is_set():
        env.machine.reset()
    return result


# -- the start ------------------------------------------------------------------------------------
async def main(env: BoardEnv) -> dict:
    """Onboarding or running, as the stored credentials say; what happened (a test's run)."""
    store = CredentialStore(env.root)
    try:
        credentials = store.load()
    except CredentialsError as e:
        env.report("wifi: %s; asking for them again" % e)
        credentials = None
    if credentials is None:
        return await onboard(env, store)
    return await operate(env, credentials[0], credentials[1])


def run(env: BoardEnv) -> dict:
    """The board's whole run: safe mode first (before the watchdog can start), then main."""
    if IS_MICROPYTHON:
        gc.threshold(GC_THRESHOLD)
    reason = recovery.safe_mode_reason(env.root, _button(env), env.safe_mode_window_ms)
    if reason:
        env.report("safe mode: %s; main.py starts nothing, the prompt is free" % reason)
        return {"mode": "safe", "reason": reason}
    try:
        return asyncio.run(main(env))
    except (ConfigError, setup_code.SetupCodeError) as e:
        # The bundle on the board is damaged or missing: a restart would not mend it. The
        # watchdog has not started, so the board stays at its prompt for a service person.
        env.report("main: cannot start: %s" % e)
        return {"mode": "stopped", "reason": str(e)}
    except Exception as e:  # the top of a device nobody watches: said, then a clean start (re-raised)
        env.report("main: %s: %s; restarting in %d ms" % (type(e).__name__, e, RESTART_DELAY_MS))
        asyncio.run(sleep_ms(RESTART_DELAY_MS))
        env.machine.reset()
        raise


if __name__ == "__main__":
    run(board_env())
