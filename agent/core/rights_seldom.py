"""The data-rights acts a device does seldom: the consent check at a start, erasure and
export. DataRights (agent/core/rights.py) imports this module on first use, so a board
keeps their code out of its heap until one of them is needed; each takes the DataRights
it acts for."""

from agent.core.errors import OutboxFullError
from agent.core.outbox import ENTRY_CATEGORY, ENTRY_ID, ENTRY_PAYLOAD, ENTRY_TOPIC
from agent.core.rights import RECEIPT_FIELDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from agent.core.rights import DataRights

# What the export tells of each data category (docs/export.md).
_CATEGORY_FIELDS = ("id", "title", "purpose", "fields", "retention_days", "upstream_retention_days", "recipients",
                    "essential")  # fmt: skip
EXPORT_FORMAT = "wichtel-export/1"


def enforce_consent(rights: "DataRights", consent_lost: bool, t_ms: int, outbox_damaged: bool = False) -> list:
    """At a start, before anything is sent: no waiting message of an optional category
    that is off now may leave. Consent that can no longer be shown (consent_lost: the
    stored consent was damaged) acts as a withdrawal of every optional category that
    is off now: its waiting messages are deleted and upstream is asked to erase what
    it holds of it (an erasure request with reason "consent_lost"). Waiting messages
    of a category that is off are deleted in any case (and its data erased upstream
    too: a withdrawal may have been cut short). After outbox damage (outbox_damaged)
    receipts and erasure requests may be among the lost messages: upstream hears
    each category's latest receipt again, and an erasure request for each that is
    off. Returns what was done, in plain words."""
    consent = rights._consent
    said = []
    latest: dict = {}
    if outbox_damaged:
        for r in consent.history:
            if all(k in r for k in RECEIPT_FIELDS):
                latest[r["category"]] = r
    erase = []
    for cid in sorted(consent.categories):
        if cid in consent.essential or consent.allows(cid):
            continue
        n = rights._outbox.purge(cid)
        if n:
            said.append("%d waiting %s messages were deleted: consent for them is off" % (n, cid))
        if n or consent_lost or cid in latest:
            erase.append(cid)
    asked = []
    try:
        for cid in sorted(latest):
            rights._send("consent_receipt", {k: latest[cid][k] for k in RECEIPT_FIELDS}, t_ms)
        for cid in erase:
            erasure = {"category": cid, "scope": "category"}
            if consent_lost:
                erasure["reason"] = "consent_lost"
            rights._send("erasure_request", erasure, t_ms)
            asked.append(cid)
    except OutboxFullError as e:
        said.append("not all of it could be queued for upstream (%s)" % e)
    if latest:
        said.append("the outbox was damaged: the latest consent receipts go upstream again (%s)"
                    % ", ".join(sorted(latest)))  # fmt: skip
    if asked:
        said.append("upstream is asked to erase what it holds of: " + ", ".join(asked))
    return said


def erase(rights: "DataRights", t_ms: int) -> None:
    """Wipe what the device holds about its use and ask upstream to erase everything.
    Consent returns to privacy by default (essential on, the rest off). OutboxFullError,
    with nothing wiped, when the erasure requests would not fit in the outbox."""
    consent = rights._consent
    optional = [cid for cid in sorted(consent.categories) if cid not in consent.essential]
    rights._room_for(len(optional))
    for cid in optional:
        rights._outbox.purge(cid)
    rights._local_events.clear()
    rights._sent_log.clear()
    consent.reset()
    consent.history = []
    for stock in rights._stock:
        stock.tracker.reset()
    for cid in optional:
        rights._send("erasure_request", {"category": cid, "scope": "all"}, t_ms)


def export(rights: "DataRights") -> dict:
    """Everything the device holds about its use, as plain data (docs/export.md)."""
    outbox = rights._outbox
    return {
        "format": EXPORT_FORMAT,
        "device": rights._gate.device_id,
        "appliance": rights._profile["appliance"],
        "consent": {"current": rights._consent.choices(), "history": list(rights._consent.history)},
        "data_categories": [{k: c[k] for k in _CATEGORY_FIELDS} for c in rights._profile["data_categories"]],
        "learned": {"consumables": rights.learned()},
        "events": [e.as_dict() for e in rights._local_events.items()],
        "outbox": [{"id": e[ENTRY_ID], "topic": e[ENTRY_TOPIC], "category": e[ENTRY_CATEGORY],
                    "payload": e[ENTRY_PAYLOAD].decode(), "status": outbox.state_of(e[ENTRY_ID])}
                   for e in outbox.pending],
        "sent": list(rights._sent_log.items()),
    }  # fmt: skip
