"""The alert lifecycle: one alert per fault episode, not one per finding.

A processor's findings (abnormal or normal judgments) go through its AlertEpisode, which says
when an episode is raised, when it got worse, when a reminder is due, when it is cleared; the
device's AlertBook groups episodes that start together into one alert.
"""

from agent.core import limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.events import Event

# Event field `state` of an alert event, in the order an episode goes through them.
RAISED = "raised"  # a new episode: the first abnormal finding after a normal spell
WORSE = "worse"  # the episode's severity grew by WORSE_RATIO over what was last reported
REMINDER = "reminder"  # still abnormal, not acknowledged, nothing reported for REMIND_MS
ACKNOWLEDGED = "acknowledged"  # the user (page) or the service (command) has seen it
CLEARED = "cleared"  # back to normal: the episode is over

WORSE_RATIO = 1.5  # a severity this many times the last reported one is news


class AlertEpisode:
    """The episode state of one alert source (a processor of a channel, or its sensor).

    `abnormal(t_ms, severity)` and `normal(t_ms)` return the state to report now, or None.
    An episode is raised by the first abnormal finding; it is cleared after `clear_after`
    normal findings in a row with no abnormal one in between and, if `clear_ms` is given,
    only when the last abnormal finding is at least that old (a per-sample detector judges
    every sample, most of them unremarkable even in a fault). Severity is a non-negative
    number where larger is worse (a change in percent, a deviation in scales).
    """

    __slots__ = ("acknowledged", "clear_after", "clear_ms", "last_abnormal_ms", "last_report_ms", "normals", "number",
                 "open", "reported")  # fmt: skip

    def __init__(self, clear_after: int = 1, clear_ms: int = 0) -> None:
        self.clear_after = clear_after
        self.clear_ms = clear_ms
        self.open = False
        self.number = 0  # episodes so far: the id of the current or last one
        self.acknowledged = False
        self.reported = 0.0  # severity last reported (raised or worse)
        self.last_report_ms = 0
        self.last_abnormal_ms = 0
        self.normals = 0

    def abnormal(self, t_ms: int, severity: float) -> str | None:
        self.normals = 0
        self.last_abnormal_ms = t_ms
        if not self.open:
            self.open = True
            self.number += 1
            self.acknowledged = False
            self.reported = severity
            self.last_report_ms = t_ms
            return RAISED
        if severity >= self.reported * WORSE_RATIO and severity > self.reported:
            self.reported = severity
            self.last_report_ms = t_ms
            return WORSE
        if not self.acknowledged and t_ms - self.last_report_ms >= limits.ALERT_REMIND_MS:
            self.last_report_ms = t_ms
            return REMINDER
        return None

    def normal(self, t_ms: int) -> str | None:
        if not self.open:
            return None
        self.normals += 1
        if self.normals < self.clear_after or t_ms - self.last_abnormal_ms < self.clear_ms:
            return None
        self.open = False
        self.normals = 0
        return CLEARED

    def acknowledge(self) -> bool:
        """The user or the service has seen the open episode: no reminders for it. False
        when there is no open episode or it was acknowledged before (nothing to report)."""
        if not self.open or self.acknowledged:
            return False
        self.acknowledged = True
        return True


JOINED = "joined"  # another finding joins an open alert (a fault that shows in several places)
PART_CLEARED = "part_cleared"  # one finding of an alert is back to normal; others are not


class AlertBook:
    """The device's alerts: its sources' episodes grouped, so that one fault that shows in
    several places (the drain pump's current up, the drain longer, the cycle model) is one
    alert, not three.

    route() takes each episode's news and says what the alert makes of it: a raising while
    another alert was raised within ALERT_JOIN_MS joins that alert; a clearing ends the alert
    only with its last finding; a finding grown worse is news at most daily per alert
    (ALERT_UPDATE_MS); reminders come at most weekly per alert and not once it is
    acknowledged. Bounded: one entry per episode of the profile, one per open alert.
    """

    def __init__(self) -> None:
        self.last_id = 0
        self.members: dict = {}  # episode -> alert id
        self.alerts: dict = {}  # alert id -> [category, channel, phase, raised_ms, last_report_ms, acknowledged]

    def route(self, episode: AlertEpisode, state: str, t_ms: int, category: str, channel: str,
              phase: str) -> tuple | None:  # fmt: skip
        """(alert id, state to report, whether it goes upstream: False keeps it on the device)
        for an episode's news, or None when it is no news."""
        if state == RAISED:
            newest = self.last_id if self.last_id in self.alerts else 0
            if newest and t_ms - self.alerts[newest][3] < limits.ALERT_JOIN_MS:
                rec = self.alerts[newest]
                self.members[episode] = newest
                if rec[5]:
                    episode.acknowledge()  # the user has seen this alert: no reminders for its parts
                rec[4] = t_ms
                return newest, JOINED, True
            self.last_id += 1
            self.members[episode] = self.last_id
            self.alerts[self.last_id] = [category, channel, phase, t_ms, t_ms, False]
            return self.last_id, RAISED, True
        aid = self.members.get(episode)
        if aid is None:
            return None
        rec = self.alerts[aid]
        if state == CLEARED:
            del self.members[episode]
            if aid in self.members.values():
                return aid, PART_CLEARED, True
            del self.alerts[aid]
            return aid, CLEARED, True
        if state == REMINDER and (rec[5] or t_ms - rec[4] < limits.ALERT_REMIND_MS):
            return None
        if state == WORSE and t_ms - rec[4] < limits.ALERT_UPDATE_MS:
            # News of the alert went out less than a day ago: this one stays on the device
            # (the page shows the trend); the next one upstream tells where it went.
            return aid, WORSE, False
        rec[4] = t_ms
        return aid, state, True

    def report(self, episode: AlertEpisode, event: "Event", state: str, emit: "Callable[[Event], None]") -> None:
        """Emit an episode's event as its alert makes it (route()): the alert's number and
        the news in its fields, the device's only (no category) when it is not for upstream."""
        routed = self.route(episode, state, event.t_ms, event.category, event.channel, event.phase)
        if routed is not None:
            event.fields["alert"] = routed[0]
            event.fields["state"] = routed[1]
            if not routed[2]:
                event.category = ""  # the device's only: the gate lets nothing of it out
            emit(event)

    def acknowledge(self, aid: int) -> list | None:
        """The user or the service has seen alert aid: its findings are not reminded of.
        Returns [category, channel, phase] of the alert for the acknowledgement's event, or
        None when no such alert is open or it was acknowledged before."""
        rec = self.alerts.get(aid)
        if rec is None or rec[5]:
            return None
        rec[5] = True
        for episode, member in self.members.items():
            if member == aid:
                episode.acknowledge()
        return rec[:3]  # type: ignore[no-any-return]

    def open_ids(self) -> list:
        """The ids of the open alerts, oldest first."""
        return sorted(self.alerts)
