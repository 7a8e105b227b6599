"""Inbound commands from the operator: checked strictly, answered always, trusted never blindly.

A command arrives on wichtel/v1/<device>/cmd/<name> as JSON
{"device": <this device's id>, "seq": <greater than any before>, "args": {...}}.
Anything else (too large, not JSON, another device, an old or repeated sequence number,
an unknown command or argument) changes nothing and gets an error reply. No command
can switch a consent on: consent is changed only on the device, by its user.
"""

import json

MAX_COMMAND_BYTES = 1024

STATUS_REPORT = "status_report"
ERASURE_ACK = "erasure_ack"
CONFIG = "config"
# Settings a command may change, with their allowed ranges.
CONFIG_KEYS = {"status_interval_h": (1, 168)}


class CommandError(Exception):
    """A command that is refused; the message says why, for the error reply."""


class CommandDesk:
    """Validates commands; remembers the highest sequence number seen (keep it on flash)."""

    def __init__(self, device_id: str, last_seq: int = 0) -> None:
        self.device_id = device_id
        self.last_seq = last_seq
        self.log: list = []  # (seq or None, command, outcome), the last 32

    def check(self, topic: str, payload: bytes) -> tuple:
        """(command, args, seq) for a valid command; CommandError otherwise."""
        prefix = "/v1/" + self.device_id + "/cmd/"
        at = topic.find(prefix)
        if at < 0:
            raise CommandError("not a command topic of this device: " + topic[:80])
        name = topic[at + len(prefix) :]
        if len(payload) > MAX_COMMAND_BYTES:
            raise CommandError("command of %d bytes; at most %d" % (len(payload), MAX_COMMAND_BYTES))
        try:
            cmd = json.loads(payload)
        except (ValueError, UnicodeError):
            raise CommandError("command is not JSON") from None
        if not isinstance(cmd, dict) or sorted(cmd) != ["args", "device", "seq"]:
            raise CommandError("command must be an object with exactly device, seq and args")
        if cmd["device"] != self.device_id:
            raise CommandError("command for device %r, this is %r" % (cmd["device"], self.device_id))
        seq = cmd["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq <= self.last_seq:
            raise CommandError("sequence number %r is not greater than %d (replayed or old)" % (seq, self.last_seq))
        args = cmd["args"]
        if not isinstance(args, dict):
            raise CommandError("args must be an object")
        if "consent" in name or any("consent" in str(k) for k in args):
            raise CommandError("consent is changed only on the device, by its user")
        if name == STATUS_REPORT:
            if args:
                raise CommandError("status_report takes no arguments")
        elif name == ERASURE_ACK:
            if sorted(args) != ["category"] or not isinstance(args["category"], str) or len(args["category"]) > 32:
                raise CommandError("erasure_ack takes exactly a category name")
        elif name == CONFIG:
            if not args:
                raise CommandError("config needs at least one setting")
            for key, value in args.items():
                bounds = CONFIG_KEYS.get(key)
                if bounds is None:
                    raise CommandError(
                        "config cannot change %r; it can change %s" % (key, ", ".join(sorted(CONFIG_KEYS)))
                    )
                if not isinstance(value, int) or isinstance(value, bool) or not bounds[0] <= value <= bounds[1]:
                    raise CommandError("%s must be a whole number from %d to %d" % (key, bounds[0], bounds[1]))
        else:
            raise CommandError("unknown command %r" % name[:40])
        self.last_seq = seq
        return name, args, seq

    def note(self, seq: object, name: str, outcome: str) -> None:
        self.log.append((seq, name, outcome))
        if len(self.log) > 32:
            del self.log[0]
