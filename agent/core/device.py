"""Opening and closing a device on any runtime: what its stored data brings back into the
agent, what is stored again, and the user's data rights carried out on both.

No I/O of its own: `data` is a StoredData (agent/core/stored_data.py) of the runtime, and the
outbox's store is the runtime's too. agent/device.py (the host) and firmware/main.py (a
board) open a device in the same three steps: load() before the Agent is built, outbox()
for it, settle() once it is built; then checkpoints() and close(), set_consent() and
erase() as it runs.
"""

from agent.core import limits
from agent.core.compat import sleep_ms
from agent.core.outbox import Outbox

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.core.consent import ConsentLedger
    from agent.core.pipeline import Agent
    from agent.core.stored_data import StoredData


def load(data: "StoredData", ledger: "ConsentLedger") -> tuple:
    """Before the Agent is built: (saved state, pseudonym key, consent lost, messages for the
    user). The ledger is rebuilt from the consent journal; every damage found is among the
    messages (a damaged state: fresh models; a damaged key: a new one, never the old)."""
    messages = []
    had_data = data.holds_data()
    state, problem = data.load_state()
    if problem:
        messages.append("State: " + problem + "; the device starts with fresh models.")
    saved = state or {}
    problems, lost = data.load_consent(ledger, count(saved, "consent_seq"))
    messages += ["Consent: " + m for m in problems]
    key, problem = data.load_pseudonym_key(had_data)
    if problem:
        messages.append("Pseudonym key: " + problem)
    return saved, key, lost, messages


def outbox(store: object, ledger: "ConsentLedger", saved: dict, board: str) -> tuple:
    """(the Outbox on the runtime's store, sized for the board, messages for the user): the
    stored state names the last message id, so an outbox that lost its tail is found out."""
    sizes = limits.board_sizes(board)
    box = Outbox(sizes["outbox"], store, tuple(ledger.essential), count(saved, "outbox_last_id"),
                 sizes["outbox_reserve"])  # fmt: skip
    return box, ["Outbox: " + m for m in box.problems]


def settle(agent: "Agent", data: "StoredData", saved: dict, lost: bool, choices: "dict | None" = None) -> list:
    """Once the Agent is built: the saved state back into it (a choice given now wins), and
    consent put into effect before anything can be sent: consent that cannot be shown
    counts as withdrawn (waiting messages of categories that are off are deleted, upstream
    is asked to erase them). Returns messages for the user."""
    messages = ["State: " + m for m in agent.restore(saved, choices)]
    damaged = agent.snapshot().outbox_damaged
    said = agent.rights.enforce_consent(lost, agent.clock.now_ms(), damaged)
    messages += ["Consent: " + m for m in said]
    if lost or damaged:
        # Stored at once: the erasure requests, and a state that no longer expects the lost receipts.
        messages += close(agent, data)
    return messages


def count(saved: dict, name: str) -> int:
    """A counter from the stored state (0 when absent or not a whole number >= 0)."""
    value = saved.get(name, 0)
    return value if type(value) is int and value > 0 else 0


def close(agent: "Agent", data: "StoredData | None") -> list:
    """Store what the device learned and logged (also after each change on the local page
    and now and then during a run). Returns problems for the user; a state that cannot
    be stored (a full disk) leaves the one stored before intact, and the agent goes on
    with the new one in memory: the next call tries again."""
    if data is None:
        return []
    problem = data.save_state(agent.save())
    return ["State: " + problem] if problem else []


async def checkpoints(agent: "Agent", data: "StoredData", say: "Callable[[str], None]", every_ms: int) -> None:
    """Store the device's state every every_ms during a run (until cancelled). A failure is
    said once (not at every try) and tried again at the next checkpoint; the run goes on."""
    last: list = []
    while True:
        await sleep_ms(every_ms)
        problems = close(agent, data)
        for problem in problems:
            if problem not in last:
                say(problem)
        last = problems


def set_consent(agent: "Agent", data: "StoredData | None", category: str, allowed: bool, t_ms: int,
                wall_s: int) -> dict:  # fmt: skip
    """The user's choice: checked, stored in the journal, then put into effect."""
    receipt = agent.rights.consent_receipt(category, allowed, t_ms, wall_s)
    if data is not None:
        data.append_receipt(receipt)  # StorageError here: nothing changed
    trimmed = agent.rights.apply_consent(receipt)
    if data is not None:
        if trimmed:
            data.rewrite_consent(agent.snapshot().receipts)
        # The state names the receipt and the last message id, so a journal or outbox that
        # later loses them is found out (a failure is in data.problems).
        close(agent, data)
    return receipt


def erase(agent: "Agent", data: "StoredData | None", t_ms: int) -> int:
    """Wipe what the device holds about its use, on its storage too, and ask upstream to
    erase; a fresh pseudonym key from now on. Returns how many erasure requests wait to go."""
    agent.rights.erase(t_ms)
    if data is not None:
        data.erase()
        agent.rights.use_pseudonym_key(data.new_pseudonym_key()[0])  # a key that cannot be stored is in data.problems
        close(agent, data)  # a state that cannot be stored is in data.problems
    return agent.rights.erasures_waiting()
