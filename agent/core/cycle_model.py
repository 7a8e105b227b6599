"""The appliance's cycle model on the device: the profile's per-cycle features of several
channels judged together (multivariate.py), as one alert source with an explanation.

Imported only for a profile with a cycle_model: a board whose profile has none keeps this
and multivariate.py out of its heap.
"""

from agent.core import explain
from agent.core.alerts import CLEARED, AlertBook, AlertEpisode
from agent.core.events import ANOMALY, Event
from agent.core.multivariate import ALARM, NORMAL, CycleFeatures, PcaMonitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

CHANNEL = "cycle_model"  # the events' channel: several channels are judged together
_EXPLAINED = 3  # features named in an explanation


class CycleModelRuntime:
    """Feeds every valid sample of every channel to the cycle features; judges each cycle's
    vector when it ends, and turns ALARM and NORMAL verdicts into an alert episode (one alert
    per episode: raised, worse when the verdict's ratio to its limit grows by half, cleared
    after `clear_cycles` normal cycles)."""

    def __init__(self, spec: dict, profile: dict, alerts: AlertBook | None = None) -> None:
        ids = [c["id"] for c in profile["channels"]]
        specs: list = []
        for f in spec["features"]:
            if f["feature"] == "duration":
                specs.append(("duration", f["phase"]))
            else:
                specs.append((f["feature"], ids.index(f["channel"]), f["phase"]))
        self.spec = spec
        self.category = spec["category"]
        self.hint = spec["hint"]
        self.labels = [c.get("label") or {"en": c["id"], "de": c["id"]} for c in profile["channels"]]
        self.phase_names = profile["phase_names"]
        self.features = CycleFeatures(specs, profile["phases"], ids)
        s = spec["settings"]
        self.monitor = PcaMonitor(len(specs), alarm_rate=s["alarm_rate"], confirm=s["confirm"],
                                  learn_cycles=s["learn_cycles"], reference=spec["reference"],
                                  reference_cycles=s["reference_cycles"])  # fmt: skip
        self.episode = AlertEpisode(s["clear_cycles"])
        self.alerts = AlertBook() if alerts is None else alerts  # the device's

    def sample(self, index: int, t_ms: int, value: float, phase: str, emit: "Callable[[Event], None]") -> None:
        """One valid sample of channel `index`; emit(Event) when a cycle's verdict makes news."""
        vec = self.features.sample(index, t_ms, value, phase)
        if vec is None:
            return
        verdict = self.monitor.judge(vec)
        if verdict.status == ALARM:
            state = self.episode.abnormal(t_ms, verdict.ratio())
        elif verdict.status == NORMAL:
            state = self.episode.normal(t_ms)
        else:
            return  # learning, or over a limit once: no news yet
        if state is None:
            return
        top = self.monitor.explain(_EXPLAINED)
        feats = self.spec["features"]
        about = feats[top[0][0]]["phase"]
        if state == CLEARED:
            text = {"en": "The appliance's program cycles are back to normal.",
                    "de": "Die Programmabläufe des Geräts sind wieder normal."}  # fmt: skip
        else:
            parts: list = []
            for i, share, direction, pct in top:
                if share < 0.1 and parts:
                    break  # a feature with a tenth of the verdict or less does not explain it
                f = feats[i]
                label = None if f["feature"] == "duration" else self.labels[self.features.channel[i]]
                parts.append((f["feature"], explain.phase_name(self.phase_names, f["phase"]), label, pct, direction))
            text = several_changes(parts, self.hint)
        fields = {"detector": CHANNEL, "value": verdict.ratio(), "score": verdict.severity,
                  "explanation_en": text["en"], "explanation_de": text["de"]}  # fmt: skip
        self.alerts.report(self.episode, Event(ANOMALY, self.category, CHANNEL, t_ms, about, fields), state, emit)


def several_changes(parts: list, hint: dict | None) -> dict:
    """Why a cycle stands out in several measurements together, e.g. 'The last cycles differ
    from usual in several measurements together: Motor current during draining 38% higher,
    Draining 20% longer — the drain pump may be clogging.'

    parts: (feature, phase names, channel label or None for a duration, change in percent,
    direction: +1 up, -1 down, 0 usual on its own but not with the others)."""
    en = []
    de = []
    for feature, phase, channel, pct, direction in parts:
        p = explain.percent(pct)
        if feature == "duration":
            head_en, head_de = phase["en"], phase["de"]
            up_en, down_en, up_de, down_de = "longer", "shorter", "länger", "kürzer"
        else:
            peak = feature == "peak"
            head_en = ("Peak " + channel["en"].lower() if peak else channel["en"]) + " during " + phase["en"].lower()
            head_de = ("Spitzenwert von " if peak else "") + channel["de"] + " während " + phase["de"]
            up_en, down_en, up_de, down_de = "higher", "lower", "höher", "niedriger"
        if direction == 0:
            en.append(head_en + " unchanged on its own, but not as usual with the others")
            de.append(head_de + " für sich unverändert, aber nicht wie sonst mit den anderen")
        else:
            up = direction > 0
            en.append(head_en + " " + p + "% " + (up_en if up else down_en))
            de.append(head_de + " " + p + " % " + (up_de if up else down_de))
    head_en = "The last cycles differ from usual in several measurements together: "
    head_de = "Die letzten Programmabläufe weichen in mehreren Messungen zugleich vom Üblichen ab: "
    return {
        "en": explain.hint_added(head_en + "; ".join(en), hint, "en"),
        "de": explain.hint_added(head_de + "; ".join(de), hint, "de"),
    }
