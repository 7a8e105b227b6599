"""The agent's state as it is kept across restarts: what Agent.save() gives the host to
store, and what Agent.restore() takes back from it.

Plain data in and out, no I/O (agent/device.py stores it on the host). A module of its
own, imported on first use: a board that stores no state keeps this code out of its heap.
"""

from agent.core.consent import last_receipt_seq
from agent.core.errors import StateError
from agent.core.events import Event
from agent.core.pipeline import BROKER_ACCEPTED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.pipeline import Agent


def save(agent: "Agent") -> dict:
    """Agent.save(): the outbox made durable first (the state names its last message id,
    which must then be on the disk), then the state as plain data."""
    agent.outbox.sync()
    return {
        "consumables": agent.rights.learned(),
        "sent": agent.sent_log.items(),
        "events": [e.as_dict() for e in agent.local_events.items()],
        "command_seq": agent.commands.last_seq,
        "consent_seq": last_receipt_seq(agent.consent.history),
        "outbox_last_id": agent.outbox.next_id - 1,
        # Alert numbers go on across restarts: upstream tells alerts apart by them. Open
        # alerts are not kept (the detectors learn anew too): a fault still there is raised again.
        "alert_last_id": agent.alerts.last_id,
    }


def restore(agent: "Agent", saved: dict, choices: dict | None) -> list:
    """Agent.restore(): each part of `saved` back into the agent; a message for each part
    that could not be taken back (it starts fresh)."""
    said = []
    learned = saved.get("consumables", {})
    for stock in agent.stock:
        state = learned.get(stock.tracker.id)
        if state is None:
            continue
        try:
            stock.tracker.restore(state)
        except StateError as e:
            said.append(str(e) + "; starting with a fresh model")
    for stock in agent.stock:
        if choices and stock.tracker.id in choices:
            stock.tracker.choice = choices[stock.tracker.id]
    said += agent.commands.restore(saved.get("command_seq", 0))
    last = saved.get("alert_last_id", 0)
    if type(last) is int and last >= 0:
        agent.alerts.last_id = last
    else:
        said.append("the stored alert number %r is not a whole number from 0; alerts are numbered from 1 again"
                    % (last,))  # fmt: skip
    for item in saved.get("sent", []):
        if isinstance(item, dict) and "status" not in item:
            # Logged before the backend's confirmations were told apart: the broker's
            # acknowledgement is all that was known of it.
            item["status"] = BROKER_ACCEPTED
        agent.sent_log.push(item)
    for item in saved.get("events", []):
        try:
            agent.local_events.push(Event.from_dict(item))
        except (KeyError, TypeError):
            said.append("a stored event could not be read and was left out.")
    return said
