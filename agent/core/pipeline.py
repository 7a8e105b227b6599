"""The agent's pipeline: sampler -> channel processors -> events -> privacy gate -> outbox.

Three asyncio tasks joined by bounded channels. Drivers, the clock, the consent view
and the uplink are passed in, so the pipeline itself does no I/O.
"""

import asyncio

from agent.core import VERSION, limits, processors
from agent.core.alerts import ACKNOWLEDGED, CLEARED, AlertBook, AlertEpisode
from agent.core.channel import BoundedChannel
from agent.core.commands import (
    ALERT_ACK,
    CONFIG,
    CONFIRM,
    ERASURE_ACK,
    QUIET_WHEN_DONE,
    STATUS_REPORT,
    CommandDesk,
)
from agent.core.compat import sleep_ms, ticks_diff, ticks_ms
from agent.core.consent import ConsentLedger
from agent.core.consumables import ConsumableRuntime
from agent.core.errors import CommandError, ConfigError, OutboxFullError, SensorError
from agent.core.events import ANOMALY, CONSUMABLE, SENSOR_FAULT, Event
from agent.core.gate import SENT, PrivacyGate
from agent.core.outbox import (
    CATEGORY_PRIORITIES,
    CRITICAL,
    ENTRY_CATEGORY,
    ENTRY_ID,
    ENTRY_PAYLOAD,
    ENTRY_PRIORITY,
    ENTRY_TOPIC,  # fmt: skip
    GONE,
    HIGH,
    REPLY,
    Outbox,
)
from agent.core.ratelimit import ThrottledReport, doubling_ms
from agent.core.rights import DataRights
from agent.core.ring import RingBuffer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.consumables import ReorderChoice
    from agent.core.gate import Decision
    from agent.core.interfaces import Clock, Driver, Observer, PhaseSource, Uplink
    from agent.core.snapshot import ConsumableView, Snapshot

DAY_MS = 86_400_000

# The outbox priority of the device's own messages (besides replies: REPLY); an event's
# is its data category's (the profile's "priority").
_KIND_PRIORITIES = {"consent_receipt": CRITICAL, "erasure_request": CRITICAL, "status": HIGH}

_NAN = float("nan")
# One round of flush() (a window of publishes) ends by then whatever the uplink does:
# the uplink's own send and acknowledgement timeouts, and a margin.
FLUSH_ROUND_MS = limits.SEND_TIMEOUT_MS + limits.ACK_TIMEOUT_MS + 1000

# What the sent log says of a message that left (its "status"): the broker acknowledged
# it (under MQTT 3.1.1 also when its ACL denied it), or the backend confirmed its id.
BROKER_ACCEPTED = "accepted by broker"
CONFIRMED = "confirmed"


def retry_wait_ms(failures: int) -> int:
    """The wait before offering again after `failures` failed rounds in a row (1: the
    first): UPLINK_RETRY_MS, doubling, at most UPLINK_RETRY_CAP_MS."""
    return doubling_ms(limits.UPLINK_RETRY_MS, failures - 1, limits.UPLINK_RETRY_CAP_MS)


class SampleSchedule:
    """Which channel is due when. Pure arithmetic: no sleeping, checkable on a host."""

    def __init__(self, periods_ms: list, start_ms: int) -> None:
        self.periods = periods_ms
        self.due = [start_ms] * len(periods_ms)

    def next_due(self) -> int:
        return min(self.due)

    def take_due(self, now_ms: int) -> list:
        """Indexes of channels due at now_ms, each rescheduled one period on."""
        ready = []
        for i, due in enumerate(self.due):
            if due <= now_ms:
                ready.append(i)
                # Skip missed slots instead of bursting to catch up.
                while self.due[i] <= now_ms:
                    self.due[i] += self.periods[i]
        return ready


class ChannelRuntime:
    """One channel: its driver, valid range and processors."""

    def __init__(self, spec: dict, driver: "Driver", profile: dict, alerts: AlertBook | None = None) -> None:
        self.id = spec["id"]
        self.alerts = AlertBook() if alerts is None else alerts  # the device's, shared by its channels
        self.driver = driver
        self.period_ms = max(1, int(1000 / spec["sample_hz"]))
        self.lo, self.hi = spec["range"]
        self.procs = []
        for p in spec["processors"]:
            info = processors.ChannelInfo(spec, profile["phases"], profile["phase_names"], p["hint"],
                                          p.get("reference"))  # fmt: skip
            self.procs.append((processors.build(p["kind"], p["settings"], info), p["category"]))
        self.fault_category = self.procs[0][1] if self.procs else None
        # A sensor fault is one episode: raised at the first bad reading, cleared after an hour
        # of good ones (each good reading is a normal finding).
        self.fault_episode = AlertEpisode(1, limits.SENSOR_FAULT_CLEAR_MS)
        self.samples = 0

    def sample(self, t_ms: int, phase: str, emit: "Callable[[Event], None]") -> tuple:
        """Read the driver and feed the reading: (value, valid). A driver that could not
        give one (SensorError) makes a sensor-fault event naming the reason, and NaN."""
        try:
            value = self.driver.read(t_ms)
        except SensorError as e:
            self.samples += 1
            self.fault(t_ms, phase, {"reason": e.reason}, emit)
            return _NAN, False
        return value, self.process(t_ms, value, phase, emit)

    def fault(self, t_ms: int, phase: str, fields: dict, emit: "Callable[[Event], None]") -> None:
        """A sensor-fault event when its episode is raised (or reminded of): one alert for a
        sensor that fails, however often and in whatever way."""
        state = self.fault_episode.abnormal(t_ms, 1.0)
        if self.fault_category is not None and state is not None:
            event = Event(SENSOR_FAULT, self.fault_category, self.id, t_ms, phase, fields)
            self.alerts.report(self.fault_episode, event, state, emit)

    def process(self, t_ms: int, value: float, phase: str, emit: "Callable[[Event], None]") -> bool:
        """Feed one sample; out-of-range samples become sensor-fault events, not data.
        Returns whether the sample was valid."""
        self.samples += 1
        if not (self.lo <= value <= self.hi):
            reason = "out_of_range" if value == value else "failed"  # NaN: the driver had no reading
            self.fault(t_ms, phase, {"reason": reason, "value": value, "low": self.lo, "high": self.hi}, emit)
            return False
        if self.fault_episode.open and self.fault_episode.normal(t_ms) is not None and self.fault_category:
            event = Event(SENSOR_FAULT, self.fault_category, self.id, t_ms, phase, {"reason": ""})
            self.alerts.report(self.fault_episode, event, CLEARED, emit)
        for proc, category in self.procs:
            out = proc.feed(t_ms, value, phase)
            if out is not None:
                about = phase if out.phase is None else out.phase
                event = Event(out.kind, category, self.id, t_ms, about, out.fields)
                state = out.fields.get("state")
                if state is None:
                    emit(event)
                else:
                    self.alerts.report(proc.episode, event, state, emit)
        return True


class Agent:
    """Runs the pipeline for one validated profile.

    drivers: channel id -> Driver. phase_source: None when the appliance reports no
    phases. uplink: None keeps everything in the outbox. observer: told about each step
    (demo, local store). See interfaces.py. board: what the agent keeps in memory is
    sized for it (limits.BOARD_SIZES; ConfigError for a board not known there); an outbox
    passed in keeps its own size.

    Host code (the CLI, the device's storage, the local page, firmware, benchmarks) uses
    only the names in API (tests/test_agent_api.py checks it): the agent's parts
    (outbox, consent, gate, commands, channels, stock, logs) are its own, and open to
    the tests only.
    """

    API = (
        # Built by the host, and the host's to read or replace.
        "profile", "device_id", "clock", "observer",
        # The stored state: back at a start, out for storing.
        "restore", "save",
        # What the page, the CLI and a status read; one consumable of it.
        "snapshot", "consumable",
        # The user's rights over the data (consent, export, erase): a DataRights.
        "rights",
        # The user's consumable actions.
        "set_reorder_choice", "refilled",
        # The user or the service has seen an alert (the page, a command).
        "acknowledge_alert",
        # The uplink and what comes from it; where rate-limited lines go.
        "attach_uplink", "detach_uplink", "on_command", "report_to",
        # Running.
        "run", "deliver", "flush", "judge", "sync", "waiting_messages",
    )  # fmt: skip

    def __init__(
        self,
        profile: dict,
        device_id: str,
        drivers: dict,
        clock: "Clock",
        phase_source: "PhaseSource | None" = None,
        uplink: "Uplink | None" = None,
        consent: ConsentLedger | None = None,
        observer: "Observer | None" = None,
        choices: dict | None = None,
        pseudonym_key: bytes = b"",
        outbox: Outbox | None = None,
        board: str = limits.PI,
    ) -> None:
        self.profile = profile
        self.device_id = device_id
        self.clock = clock
        self.phase_source = phase_source
        self.uplink = uplink
        self.observer = observer
        self.channels: list = []
        self.alerts = AlertBook()  # the device's open alerts: one per fault episode
        for spec in profile["channels"]:
            if spec["id"] not in drivers:
                raise ConfigError("no driver for channel " + repr(spec["id"]))
            self.channels.append(ChannelRuntime(spec, drivers[spec["id"]], profile, self.alerts))
        # Several channels judged together once per cycle (imported only when the profile has it
        # and the board runs it: limits.BOARD_SIZES).
        sizes = limits.board_sizes(board)
        self.cycle_model = None
        if profile.get("cycle_model") is not None and sizes["cycle_model"]:
            from agent.core.cycle_model import CycleModelRuntime

            self.cycle_model = CycleModelRuntime(profile["cycle_model"], profile, self.alerts)
        idle = profile["phases"][0]
        periods = {ch.id: ch.period_ms for ch in self.channels}
        self.stock = [ConsumableRuntime(c, idle, (choices or {}).get(c["id"]), periods.get(c.get("channel"), 0))
                      for c in profile["consumables"]]  # fmt: skip
        # A phase source that infers the phase from the channels (phases.RulePhases) is told
        # each valid sample, after the tick's phase was read: its phase lags one tick.
        self._phase_told = getattr(phase_source, "on_sample", None)
        self.last_phase = ""
        self.status_day = -1
        self.status_interval_h = 24
        self.commands = CommandDesk(device_id, root=profile["uplink"]["topic_prefix"], now_ms=clock.now_ms())
        # What a peer can make the agent say (refused commands, failing deliveries) goes
        # through a rate limit: report_to() names where it goes.
        self.inbound_log = ThrottledReport(None, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.delivery_log = ThrottledReport(None, 1000 / limits.LOG_REFILL_MS, limits.LOG_BURST)
        self.inbound_faults = 0  # inbound messages whose handling failed (contained)
        self.delivery_faults = 0  # rounds of delivery that failed with an exception (contained)
        self.replies_dropped = 0  # replies (and statuses on request) that found no room in the outbox
        self.failed_rounds = 0  # rounds of delivery that failed in a row (the retry wait doubles with each)
        self._links_seen = 0  # the uplink's count of links made, when delivery last looked
        self._ticks = ticks_ms()
        self._uptime = 0  # ms since the agent was made, added up from the ticks (which wrap on the board)
        self._delivering = False
        self.consent = consent or ConsentLedger(profile["data_categories"], device_id)
        self.gate = PrivacyGate(profile, device_id, self.consent, pseudonym_key)
        # What the device holds for the local page: recent events and every message that
        # left, each with its status (BROKER_ACCEPTED or CONFIRMED).
        self.local_events = RingBuffer(sizes["local_events"])
        self.sent_log = RingBuffer(sizes["sent_log"])
        self.events = BoundedChannel(sizes["event_queue"])
        if outbox is None:
            outbox = Outbox(sizes["outbox"], reserve=sizes["outbox_reserve"])
        self.outbox = outbox
        self.decisions: dict = {}
        self._priorities = {c["id"]: CATEGORY_PRIORITIES[c["priority"]] for c in profile["data_categories"]}
        self.rights = DataRights(profile, self.consent, self.gate, outbox, self.local_events, self.sent_log, self.stock,
                                 self._queue)  # fmt: skip
        self._emit = self.events.put
        self._outbox_ready = asyncio.Event()
        self._synced = 0

    def _tell(self, stage: str, a: object = None, b: object = None) -> None:
        if self.observer is not None:
            self.observer(stage, a, b)

    def sample_once(self, now_ms: int, due: list) -> None:
        """Read and process the channels with these indexes at now_ms."""
        phase = self.phase_source.phase(now_ms) if self.phase_source is not None else ""
        self._tell("tick", now_ms, phase)
        period = now_ms // (self.status_interval_h * 3_600_000)
        if period != self.status_day:
            # Once a day (or as configured) the essential category says the device is well.
            self.status_day = period
            self._queue_status(now_ms)
        if phase != self.last_phase:
            self.last_phase = phase
            for stock in self.stock:
                self._stock_events(stock, now_ms, stock.on_phase(now_ms, phase))
        for i in due:
            ch = self.channels[i]
            value, valid = ch.sample(now_ms, phase, self._emit)
            self._tell("sample", ch, value)
            if valid:
                if self.cycle_model is not None:
                    self.cycle_model.sample(i, now_ms, value, phase, self._emit)
                if self._phase_told is not None:
                    self._phase_told(ch.id, now_ms, value)
                for stock in self.stock:
                    self._stock_events(stock, now_ms, stock.on_sample(ch.id, now_ms, value))

    def stock_of(self, consumable_id: str) -> ConsumableRuntime:
        """The runtime of one consumable; ConfigError naming the known ones otherwise."""
        for stock in self.stock:
            if stock.tracker.id == consumable_id:
                return stock
        known = ", ".join(s.tracker.id for s in self.stock) or "none"
        raise ConfigError("no consumable " + repr(consumable_id) + "; known: " + known)

    def consumable(self, consumable_id: str) -> "ConsumableView":
        """One consumable as the page shows it (level, forecast, reorder choice);
        ConfigError naming the known ones otherwise."""
        from agent.core.snapshot import ConsumableView

        return ConsumableView(self.stock_of(consumable_id))

    def set_reorder_choice(self, consumable_id: str, choice: "ReorderChoice") -> None:
        """The user's reorder choice (off / remind / share, product, retailer, lead time)."""
        self.stock_of(consumable_id).tracker.choice = choice

    def refilled(self, consumable_id: str, t_ms: int) -> None:
        """The user says "I refilled": the level is full again, its events go the usual way."""
        stock = self.stock_of(consumable_id)
        self._stock_events(stock, t_ms, stock.tracker.refill(t_ms))

    def acknowledge_alert(self, alert_id: int, t_ms: int, by: str) -> bool:
        """The user (by "user", on the page) or the service (by "service", a command) has seen
        an open alert: it is not reminded of, and its acknowledgement goes the way of its
        events. False when no such alert is open or it was acknowledged before."""
        about = self.alerts.acknowledge(alert_id)
        if about is None:
            return False
        self._emit(Event(ANOMALY, about[0], about[1], t_ms, about[2],
                         {"state": ACKNOWLEDGED, "alert": alert_id, "by": by}))  # fmt: skip
        return True

    def _stock_events(self, stock: ConsumableRuntime, t_ms: int, events: list) -> None:
        for kind, fields in events:
            fields["event"] = kind
            self._emit(Event(CONSUMABLE, stock.category_of(kind), fields["consumable"], t_ms, "", fields))

    def judge_pending(self) -> int:
        """Pass every queued event through the gate; return how many were judged."""
        n = 0
        while len(self.events):
            self.judge(self.events.get_nowait())
            n += 1
        return n

    def judge(self, event: object) -> None:
        """Pass one event through the privacy gate now, and queue what it lets out (a
        benchmark or a replay that makes its own events; the pipeline's go through
        the event queue)."""
        if not isinstance(event, Event):
            raise TypeError("only events may reach the privacy gate, got " + repr(event))
        decision = self.gate.judge(event, self.outbox.next_id)
        self.decisions[decision.reason] = self.decisions.get(decision.reason, 0) + 1
        self.local_events.push(event)
        self._tell("decision", event, decision)
        try:
            self._queue(decision)
        except OutboxFullError:
            # Everything waiting ranks at least as high (the link has been down a while):
            # this event's message is the one that gives way. Counted and said; the event
            # itself stays on the device for the local page.
            self.outbox.dropped += 1
            self.delivery_log("outbox full: a %s message was dropped (%d so far)" % (decision.category,
                                                                                      self.outbox.dropped))  # fmt: skip

    # restore, save, snapshot and consumable live in modules of their own, imported on first
    # use: a board that stores no state and shows no page keeps their code out of its heap
    # (about 3 KB of imports on the unix port, measured).
    def restore(self, saved: dict, choices: dict | None = None) -> list:
        """Take back the state save() gave (from a previous run): learned consumable
        models, the command sequence, the sent log and recent events. A reorder choice
        in `choices` (consumable id -> ReorderChoice) wins over the stored one. Returns a
        message for each part that could not be taken back (it starts fresh)."""
        from agent.core import saved_state

        return saved_state.restore(self, saved, choices)

    def save(self) -> dict:
        """The state to store (restore() takes it back), as plain data. The outbox is
        made durable first: the state names its last message id, which must then be on
        the disk."""
        from agent.core import saved_state

        return saved_state.save(self)

    def snapshot(self) -> "Snapshot":
        """What the agent shows now (local page, CLI, status), read-only."""
        from agent.core.snapshot import Snapshot

        return Snapshot(self)

    def sync(self) -> bool:
        """Make what the outbox holds durable now (the pipeline does it after each round of
        sampling; a caller that judges events itself calls this); False (and said in the
        outbox's problems) when the storage refused."""
        return self.outbox.sync()

    def waiting_messages(self) -> int:
        """How many messages the outbox holds (awaiting confirmation included): cheap, for
        a loop that waits until delivery is done."""
        return len(self.outbox)

    def attach_uplink(self, uplink: "Uplink") -> None:
        """Deliver through this uplink from now on (its on_command should be ours)."""
        self.uplink = uplink

    def detach_uplink(self) -> "Uplink | None":
        """Deliver no more: what waits stays in the outbox. Returns the uplink there was."""
        uplink = self.uplink
        self.uplink = None
        return uplink

    def report_to(self, report: "Callable[[str], None] | None") -> None:
        """Where the agent's rate-limited lines go (refused commands, delivery faults)."""
        self.inbound_log.report = report
        self.delivery_log.report = report

    def _queue_status(self, t_ms: int, on_request: bool = False) -> None:
        status = {"status": "ok", "firmware": VERSION, "update": "none"}
        # A clock that learns wall time from a source (clock.BoardClock: NTP on a board) says
        # how old its last sync is (None: not yet), so the backend can judge the device's dates.
        synced_age_s = getattr(self.clock, "synced_age_s", None)
        if synced_age_s is not None:
            status["time_synced_age_s"] = synced_age_s()
        decision = self.gate.control("status", status, t_ms, self.outbox.next_id, on_request)
        if on_request:
            self._queue_requested(decision, "status")
        else:
            self._queue(decision, "status")

    def on_command(self, topic: str, payload: bytes) -> None:
        """An inbound message on the command tree: taken in at the intake rate, checked,
        carried out if valid and answered either way (within the replies' own daily
        share; a confirm that was carried out is not answered: QUIET_WHEN_DONE).
        Supervised: never raises, whatever arrives; a failure is contained, counted and
        said (rate-limited), and the uplink goes on."""
        try:
            self._command(topic, payload)
        except Exception as e:  # noqa: BLE001 - the supervisor of an inbound path: nothing may escape to the uplink
            self.inbound_faults += 1
            self.inbound_log("command: handling failed (%s: %s); the agent goes on" % (type(e).__name__, str(e)[:120]))

    def _command(self, topic: str, payload: bytes) -> None:
        t_ms = self.clock.now_ms()
        desk = self.commands
        if not desk.admit(t_ms, desk.name_of(topic)):
            self.inbound_log("command: more than the intake rate; dropped unanswered (%d so far)" % desk.over_rate)
            return
        try:
            name, args, seq = desk.check(topic, payload)
        except CommandError as e:
            name = desk.name_of(topic)
            desk.note(None, name, "refused: " + str(e))
            if e.reply:
                self._reply(desk.reply(name, error=str(e)), t_ms)
            else:
                self.inbound_log("command: refused unanswered: " + str(e))
            return
        self.COMMANDS[name](self, args, t_ms)
        desk.note(seq, name, "done")
        if name not in QUIET_WHEN_DONE:
            self._reply(desk.reply(name, seq), t_ms)

    def _reply(self, reply: dict, t_ms: int) -> None:
        self._queue_requested(self.gate.control("command_reply", reply, t_ms, self.outbox.next_id), "command_reply")

    def _queue_requested(self, decision: "Decision", kind: str) -> None:
        """A reply, or what a command asked for: the lowest priority in the outbox, so it
        pushes out only its like; when the outbox holds nothing it may push out, it goes
        (counted in replies_dropped)."""
        try:
            self._queue(decision, kind, REPLY)
        except OutboxFullError:
            self.replies_dropped += 1

    def _status_report(self, args: dict, t_ms: int) -> None:
        self._queue_status(t_ms, on_request=True)

    def _erasure_ack(self, args: dict, t_ms: int) -> None:
        """The backend confirms an erasure; noted in the command log, nothing to change."""

    def _config(self, args: dict, t_ms: int) -> None:
        self.status_interval_h = args.get("status_interval_h", self.status_interval_h)

    def _confirm(self, args: dict, t_ms: int) -> None:
        """The backend holds these messages: they leave the outbox, and the sent log says
        so. An id not waiting (confirmed before, or never ours) changes nothing; it is
        counted (Outbox.unknown_confirms)."""
        for mid in args["ids"]:
            self.outbox.confirm(mid)
            self._log_confirmed(mid)
        self.outbox.sync()

    def _log_confirmed(self, mid: int) -> None:
        for entry in self.sent_log.items():
            if entry.get("id") == mid:
                entry["status"] = CONFIRMED

    # What each command does (checked first by commands.ARGUMENT_CHECKS; same names).
    def _alert_ack(self, args: dict, t_ms: int) -> None:
        # An alert not open (cleared meanwhile, or never) is no error: the service saw it.
        self.acknowledge_alert(args["alert"], t_ms, "service")

    COMMANDS = {STATUS_REPORT: _status_report, ERASURE_ACK: _erasure_ack, CONFIG: _config, CONFIRM: _confirm,
                ALERT_ACK: _alert_ack}  # fmt: skip

    def _queue(self, decision: "Decision", kind: str = "", priority: int | None = None) -> None:
        if decision.reason != SENT:
            return
        if priority is None:
            priority = _KIND_PRIORITIES.get(kind)
        if priority is None:
            priority = self._priorities[decision.category]
        self.outbox.push(decision.topic, decision.payload, decision.category, priority, decision.msg_id)
        self._outbox_ready.set()

    async def sampler(self, until_ms: int) -> None:
        schedule = SampleSchedule([c.period_ms for c in self.channels], self.clock.now_ms())
        while True:
            t = schedule.next_due()
            if t >= until_ms:
                return
            await self.clock.sleep_until(t)
            now = self.clock.now_ms()
            self.sample_once(now, schedule.take_due(now))
            if self.outbox.accepted != self._synced:
                self._synced = self.outbox.accepted
                self.outbox.sync()
            if len(self.events) or (self.uplink is not None and len(self.outbox)):
                await sleep_ms(0)  # let the gate and the uplink take their turn

    async def gatekeeper(self) -> None:
        while True:
            self.judge(await self.events.get())

    def _offerable(self, limit: int) -> list:
        """Up to `limit` outbox entries to offer now. A link made since the last look (the
        uplink's `connects` grew) first makes everything awaiting confirmation due again:
        what a broker took on an old link may never have reached the backend."""
        uplink = self.uplink
        if uplink is not None and uplink.connects != self._links_seen:
            self._links_seen = uplink.connects
            self.outbox.reoffer()
        return self.outbox.offerable(self._uptime_ms(), limit)

    def _uptime_ms(self) -> int:
        """Milliseconds since the agent was made, for the waits of messages awaiting
        confirmation: real time, not the appliance clock (which a simulation runs fast),
        and never wrapping (looked at every second or so by deliver())."""
        now = ticks_ms()
        self._uptime += max(0, ticks_diff(now, self._ticks))
        self._ticks = now
        return self._uptime

    async def flush(self) -> bool:
        """Offer waiting messages to the uplink in order, up to UPLINK_WINDOW in flight at
        once (one, to probe, after a failed round); False at the first failure. Messages
        after a failed one are not counted as delivered even if the broker took them: they
        go again (the receiver drops duplicates by id), so each category's order holds. A
        round is bounded in time (FLUSH_ROUND_MS) whatever the uplink does; a publish that
        raises counts as failed. What the broker took goes to the sent log as "accepted by
        broker"; receipts and erasure requests then await the backend's confirmation in
        the outbox (offered again after a doubling wait, and on every new link)."""
        window = 1 if self.failed_rounds else limits.UPLINK_WINDOW
        while self.uplink is not None:
            batch = self._offerable(window)
            purged = False
            for entry in batch:
                # The last check before anything leaves: consent may be gone since it was queued.
                if not self.consent.allows(entry[ENTRY_CATEGORY]):
                    self.outbox.purge(entry[ENTRY_CATEGORY])
                    purged = True
            if purged:  # the batch as it is without the withdrawn messages
                batch = self._offerable(window)
            self.outbox.sync()  # durable before it is offered (and any deletion just made)
            if not batch:
                break
            try:
                results: list = await asyncio.wait_for(self._publish_window(batch), FLUSH_ROUND_MS / 1000)
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython has no builtin TimeoutError)
                self.delivery_log("delivery: the uplink did not answer within %d ms" % FLUSH_ROUND_MS)
                return False
            for i, entry in enumerate(batch):
                if results[i] is not True:
                    if isinstance(results[i], Exception):
                        self.delivery_faults += 1
                        self.delivery_log("delivery: publish failed (%s: %s)" % (type(results[i]).__name__, results[i]))
                    return False
                self._taken(entry)
            window = limits.UPLINK_WINDOW  # the probe went through: the full window again
        return True

    def _taken(self, entry: list) -> None:
        """The broker acknowledged an entry: the outbox learns it, the sent log shows it.
        A message offered again is logged once; one owed to the user that is gone by
        now was confirmed meanwhile (nothing else takes it out: it is never dropped, and
        its category cannot be withdrawn)."""
        mid = entry[ENTRY_ID]
        category = entry[ENTRY_CATEGORY]
        topic = entry[ENTRY_TOPIC]
        payload = entry[ENTRY_PAYLOAD]
        state = self.outbox.took(mid, self._uptime_ms())
        owed = entry[ENTRY_PRIORITY] >= CRITICAL
        if owed:
            for logged in self.sent_log.items():
                if logged.get("id") == mid:
                    return  # offered again: its entry stands (and says whether it was confirmed)
        status = CONFIRMED if owed and state == GONE else BROKER_ACCEPTED
        # A non-owed message purged (consent withdrawn) or dropped while in flight did leave: it is logged.
        self.sent_log.push({"t_ms": self.clock.now_ms(), "id": mid, "category": category, "topic": topic,
                            "size": len(payload), "content": payload.decode(), "status": status})  # fmt: skip
        self._tell("sent", topic, payload)

    async def _publish_window(self, batch: list) -> list:
        # A coroutine of its own, so that a timeout or cancellation of the round reaches
        # the gathered publishes and their outcome is always collected.
        uplink = self.uplink
        if uplink is None:
            return [False] * len(batch)
        sends = [uplink.publish(e[ENTRY_TOPIC], e[ENTRY_PAYLOAD], e[ENTRY_ID]) for e in batch]
        return list(await asyncio.gather(*sends, return_exceptions=True))

    async def deliver(self) -> None:
        """Hand outbox messages to the uplink as they come; retry after a failure.

        After a failed round the next waits retry_wait_ms: UPLINK_RETRY_MS, doubling with
        each failed round in a row up to UPLINK_RETRY_CAP_MS, from the start again after a
        round that succeeds; a new link ends the wait at once. So a broker that refuses
        (MQTT 5 reason code >= 0x80) meets a few probes, not a flood. Supervised: an
        exception from the uplink or the outbox is contained, counted and said
        (rate-limited), and delivery goes on after the same wait; it never ends on its own
        while the agent runs. Every wait is bounded (a missed wake-up costs at most
        UPLINK_RETRY_MS), and the loop ends when run() ends even if a cancellation is lost
        on the way (asyncio.wait_for of CPython 3.11 can swallow one)."""
        self._delivering = True
        while self.uplink is not None and self._delivering:
            try:
                if not self._offerable(1):
                    # Nothing to offer now (messages awaiting confirmation wait for their time).
                    self._outbox_ready.clear()
                    try:
                        await asyncio.wait_for(self._outbox_ready.wait(), limits.UPLINK_RETRY_MS / 1000)
                    except asyncio.TimeoutError:  # noqa: UP041 (as above)
                        pass  # nothing came: look again
                elif await self.flush():
                    self.failed_rounds = 0
                else:
                    self.failed_rounds += 1
                    await self._retry_wait()
            except Exception as e:  # noqa: BLE001 - the delivery loop's supervisor: it must not die silently
                self.delivery_faults += 1
                self.failed_rounds += 1
                self.delivery_log("delivery: %s: %s; trying again" % (type(e).__name__, str(e)[:120]))
                await self._retry_wait()

    async def _retry_wait(self) -> None:
        """Wait retry_wait_ms(failed_rounds), in steps of UPLINK_RETRY_MS; a new link (or
        the end of the run) ends it early."""
        left = retry_wait_ms(self.failed_rounds)
        while left > 0 and self._delivering:
            step = min(left, limits.UPLINK_RETRY_MS)
            await sleep_ms(step)
            left -= step
            uplink = self.uplink
            if uplink is not None and uplink.connects != self._links_seen:
                return

    async def run(self, duration_ms: int) -> None:
        """Run the pipeline for duration_ms of clock time, then drain the events."""
        until = self.clock.now_ms() + duration_ms
        gate_task = asyncio.create_task(self.gatekeeper())
        deliver_task = asyncio.create_task(self.deliver())
        try:
            await self.sampler(until)
            self.judge_pending()
            await self.flush()  # what the uplink does not take stays in the outbox
        finally:
            self._delivering = False
            for task in (gate_task, deliver_task):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
