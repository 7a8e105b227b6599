"""Inbound commands from the operator: taken at a bounded rate, checked strictly within
bounds before any work, answered (unless not for this device), trusted never blindly.

A command arrives on exactly this device's own command topic, <root>/v1/<device id>/cmd/<name>,
as JSON {"device": <this device's id>, "seq": <whole number>, "args": {...}} of at most
MAX_COMMAND_BYTES, checked by the bounded scanner (inbound_json.py) before it is parsed.
seq runs from 1 to MAX_SEQ and must be above the last one taken and at most MAX_SEQ_STEP
above it; every refusal reply says the last one taken, so a backend whose counter is
behind or far ahead learns where to go on (no lock-out). Anything else changes nothing
and gets an error reply; a message on another topic gets none. A valid command gets an
ok reply, except a confirm (QUIET_WHEN_DONE). No command can switch a consent on:
consent is changed only on the device, by its user.
"""

from agent.core import limits
from agent.core.errors import CommandError, ConfigError, InboundJsonError, describe
from agent.core.inbound_json import COMMAND_BOUNDS, loads
from agent.core.ratelimit import TokenBucket

STATUS_REPORT = "status_report"
ERASURE_ACK = "erasure_ack"
CONFIG = "config"
ALERT_ACK = "alert_ack"  # the service has seen an alert (no reminders for it)
CONFIRM = "confirm"  # the backend holds these messages (by outbox id): receipts and erasure requests may go
# Settings a command may change, with their allowed ranges.
CONFIG_KEYS = {"status_interval_h": (1, 168)}
# Commands answered only when refused: a confirmation is itself the answer to the device's
# messages, and a reply to it would be an acknowledgement of an acknowledgement.
QUIET_WHEN_DONE = (CONFIRM,)
COMMAND_LOG_LEN = 32  # (seq, command, outcome) kept for the local page


def _no_args(name: str, args: dict) -> None:
    if args:
        raise CommandError(name + " takes no arguments")


def _one_category(name: str, args: dict) -> None:
    category = args.get("category")
    if len(args) != 1 or not isinstance(category, str) or not 0 < len(category) <= limits.MAX_ID_LEN:
        raise CommandError("%s takes exactly a category name (at most %d characters)" % (name, limits.MAX_ID_LEN))


def _config_settings(name: str, args: dict) -> None:
    if not args:
        raise CommandError("config needs at least one setting")
    for key, value in args.items():
        bounds = CONFIG_KEYS.get(key)
        if bounds is None:
            raise CommandError("config cannot change %r; it can change %s" % (key, ", ".join(sorted(CONFIG_KEYS))))
        if not isinstance(value, int) or isinstance(value, bool) or not bounds[0] <= value <= bounds[1]:
            raise CommandError("%s must be a whole number from %d to %d" % (key, bounds[0], bounds[1]))


def _message_ids(name: str, args: dict) -> None:
    ids = args.get("ids")
    if len(args) != 1 or not isinstance(ids, list) or not 0 < len(ids) <= limits.MAX_CONFIRM_IDS:
        raise CommandError("%s takes exactly ids, a list of 1 to %d message ids" % (name, limits.MAX_CONFIRM_IDS))
    for mid in ids:
        if not isinstance(mid, int) or isinstance(mid, bool) or not 1 <= mid <= limits.MAX_MESSAGE_ID:
            raise CommandError("a message id is a whole number from 1 to %d; got %s" % (limits.MAX_MESSAGE_ID,
                                                                                          describe(mid)))  # fmt: skip


def _one_alert(name: str, args: dict) -> None:
    alert = args.get("alert")
    if len(args) != 1 or not isinstance(alert, int) or isinstance(alert, bool) or not 1 <= alert <= limits.MAX_SEQ:
        raise CommandError("%s takes exactly alert, the alert's number (a whole number from 1)" % name)


# Each command the device knows, with the check of its arguments. A new command is one
# entry here and one handler in Agent.COMMANDS (pipeline.py); a test keeps the two equal.
ARGUMENT_CHECKS = {STATUS_REPORT: _no_args, ERASURE_ACK: _one_category, CONFIG: _config_settings,
                   CONFIRM: _message_ids, ALERT_ACK: _one_alert}  # fmt: skip


class CommandDesk:
    """Takes commands in at a bounded rate and checks them; remembers the last sequence
    number taken (keep it on flash: restore() takes it back). No I/O, no clock of its own."""

    def __init__(self, device_id: str, last_seq: int = 0, root: str = "wichtel", now_ms: int = 0) -> None:
        self.device_id = device_id
        self.topic_prefix = root + "/v1/" + device_id + "/cmd/"
        self.last_seq = 0
        problems = self.restore(last_seq)
        if problems:
            raise ConfigError(problems[0])
        self.log: list = []  # (seq or None, command, outcome), the last COMMAND_LOG_LEN
        self.intake = TokenBucket(1000 / limits.COMMAND_REFILL_MS, limits.COMMAND_BURST, now_ms)
        # Confirmations have an intake of their own: a flood of other commands cannot hold
        # them back (receipts would pile up until the user is told "try again later"),
        # and a flood of them costs bounded work and no replies.
        self.confirm_intake = TokenBucket(1000 / limits.CONFIRM_REFILL_MS, limits.CONFIRM_BURST, now_ms)
        self.over_rate = 0  # commands dropped unanswered: more than the intake rate
        self.not_ours = 0  # messages refused unanswered: not on this device's command topic

    def restore(self, value: object) -> list:
        """Take back the last sequence number kept on flash. A value that cannot be one
        (not a whole number from 0 to MAX_SEQ: damaged storage) is refused and the desk
        starts from 0; returns what to tell the user about it."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limits.MAX_SEQ:
            self.last_seq = value
            return []
        self.last_seq = 0
        return [
            "the stored command sequence number %s is not a whole number from 0 to %d; commands start again from 1"
            % (describe(value), limits.MAX_SEQ)
        ]

    def admit(self, now_ms: int, name: str = "") -> bool:
        """Whether a command `name` (name_of its topic) that arrives at now_ms is taken in
        at all: COMMAND_BURST at once, then one per COMMAND_REFILL_MS; a confirm within
        its own intake (CONFIRM_BURST, then one per CONFIRM_REFILL_MS). A command over the
        rate is dropped unanswered and counted, so a flood costs neither work nor replies."""
        if (self.confirm_intake if name == CONFIRM else self.intake).take(now_ms):
            return True
        self.over_rate += 1
        return False

    def name_of(self, topic: str) -> str:
        """The command name a topic asks for, for the log and the reply ("" if not ours)."""
        if not topic.startswith(self.topic_prefix):
            return ""
        return topic[len(self.topic_prefix) :][:40]

    def check(self, topic: str, payload: bytes) -> tuple:
        """(command, args, seq) for a valid command, and seq becomes the last one taken;
        CommandError otherwise (its reply attribute says whether to answer), and nothing
        changes. Raises nothing else, whatever topic and payload hold."""
        if not topic.startswith(self.topic_prefix):
            self.not_ours += 1
            raise CommandError("not this device's command topic: " + repr(topic[:80]), reply=False)
        name = topic[len(self.topic_prefix) :]
        try:
            cmd = loads(payload, COMMAND_BOUNDS)
        except InboundJsonError as e:
            raise CommandError("command is not JSON within its bounds: " + str(e)) from e
        if not isinstance(cmd, dict) or sorted(cmd) != ["args", "device", "seq"]:
            raise CommandError("command must be an object with exactly device, seq and args")
        if cmd["device"] != self.device_id:
            raise CommandError("command for device %s, this is %r" % (describe(cmd["device"]), self.device_id))
        seq = self._check_seq(cmd["seq"])
        args = cmd["args"]
        if not isinstance(args, dict):
            raise CommandError("args must be an object; got " + describe(args))
        if "consent" in name or any("consent" in k for k in args):
            raise CommandError("consent is changed only on the device, by its user")
        check_args = ARGUMENT_CHECKS.get(name)
        if check_args is None:
            raise CommandError("unknown command %r; known: %s" % (name[:40], ", ".join(sorted(ARGUMENT_CHECKS))))
        check_args(name, args)
        self.last_seq = seq
        return name, args, seq

    def _check_seq(self, seq: object) -> int:
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= limits.MAX_SEQ:
            raise CommandError("seq must be a whole number from 1 to %d; got %s" % (limits.MAX_SEQ, describe(seq)))
        if seq <= self.last_seq:
            raise CommandError(
                "sequence number %d is not greater than %d, the last one taken (replayed or old)" % (seq, self.last_seq)
            )
        if seq - self.last_seq > limits.MAX_SEQ_STEP:
            raise CommandError(
                "sequence number %d is more than %d above %d, the last one taken"
                % (seq, limits.MAX_SEQ_STEP, self.last_seq)
            )
        return seq

    def reply(self, name: str, seq: int = 0, error: str = "") -> dict:
        """The body of a command_reply: ok with the command's seq, or the error with the
        last seq taken, from which the backend goes on (docs/asyncapi.yaml)."""
        if error:
            return {"command": name[:40], "ok": False, "error": error[:200], "last_seq": self.last_seq}
        return {"command": name, "ok": True, "seq": seq}

    def note(self, seq: object, name: str, outcome: str) -> None:
        self.log.append((seq, name, outcome[:200]))
        if len(self.log) > COMMAND_LOG_LEN:
            del self.log[0]
