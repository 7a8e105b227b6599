"""What the agent shows at one moment: the figures and lists the local page, the CLI and
a status report read, taken from the agent's parts without giving the parts away.

Read-only by construction: counts are numbers, lists and dicts are copies (the items in
them are shared, and must not be changed), consumables are ConsumableView values.
"""

from agent.core.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.consumables import ConsumableRuntime
    from agent.core.pipeline import Agent


class ConsumableView:
    """One consumable as the page shows it: level, forecast (None while the tracker is
    faulty), the user's reorder choice and whether its reorder reminder is due."""

    __slots__ = ("capacity", "category", "choice", "faulty", "forecast", "id", "lead_days", "level", "name",
                 "reorder_due")  # fmt: skip

    def __init__(self, stock: "ConsumableRuntime") -> None:
        tracker = stock.tracker
        self.id = tracker.id
        self.name = tracker.name  # {"en": ..., "de": ...}
        self.category = stock.category
        self.level = tracker.level
        self.capacity = tracker.capacity
        self.faulty = tracker.faulty
        self.forecast = None if tracker.faulty else tracker.forecast()
        self.choice = tracker.choice  # replaced, never changed, by Agent.set_reorder_choice
        self.lead_days = tracker.lead_days
        # A reorder moment came and no refill since: the reminder the page shows (remind or share).
        self.reorder_due = tracker.reorder_sent and tracker.choice.mode != "off"


class Snapshot:
    """The agent at one moment (Agent.snapshot()).

    profile: the validated profile (shared: read it only). phase: the appliance's last
    phase ("" when it reports none). uplink: the host's uplink object or None.
    consumables: ConsumableView per consumable. events: recent events, oldest first.
    alerts: the open alerts, oldest first, as (alert id, acknowledged, raised at t_ms).
    choices: category -> "on"/"off". receipts: consent receipts, oldest first. sent: the
    sent log, oldest first. waiting / awaiting: outbox messages not yet taken by the
    broker / taken and awaiting the backend's confirmation. made: message ids given out.
    """

    __slots__ = ("alerts", "awaiting", "choices", "consumables", "decisions", "delivery_faults", "device_id", "dropped",
                 "events", "inbound_faults", "made", "outbox_damaged", "outbox_problems", "phase", "profile",
                 "receipts", "replies_dropped", "samples", "sent", "uplink", "waiting")  # fmt: skip

    def __init__(self, a: "Agent") -> None:
        outbox = a.outbox
        self.profile = a.profile
        self.device_id = a.device_id
        self.phase = a.last_phase
        self.uplink = a.uplink
        self.consumables = [ConsumableView(s) for s in a.stock]
        self.events = a.local_events.items()
        # The open alerts, oldest first: (id, acknowledged, raised at t_ms).
        self.alerts = [(aid, a.alerts.alerts[aid][5], a.alerts.alerts[aid][3]) for aid in a.alerts.open_ids()]
        self.choices = a.consent.choices()
        self.receipts = list(a.consent.history)
        self.sent = a.sent_log.items()
        self.awaiting = len(outbox.awaiting)
        self.waiting = len(outbox) - self.awaiting
        self.made = outbox.next_id - 1
        self.dropped = outbox.dropped
        self.outbox_damaged = outbox.damaged
        self.outbox_problems = list(outbox.problems)
        self.samples = sum(c.samples for c in a.channels)
        self.decisions = dict(a.decisions)
        self.inbound_faults = a.inbound_faults
        self.delivery_faults = a.delivery_faults
        self.replies_dropped = a.replies_dropped

    def consumable(self, consumable_id: str) -> ConsumableView:
        """One consumable; ConfigError naming the known ones otherwise."""
        for c in self.consumables:
            if c.id == consumable_id:
                return c
        known = ", ".join(c.id for c in self.consumables) or "none"
        raise ConfigError("no consumable " + repr(consumable_id) + "; known: " + known)
