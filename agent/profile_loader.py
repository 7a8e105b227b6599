"""Loads appliance profiles from YAML with line numbers, and compiles them to JSON.

The schema lives in the portable core (agent.core.profile); this adapter adds what
only a host has: files, YAML, and the line each field came from. A profile file may
come from anyone, so the YAML is bounded before and while it is parsed: size, nesting,
node count, scalar length; no anchors, aliases or tags. Every refusal is one
ProfileFileError naming file, line and field.
"""

import json
import os
import re
from typing import Any

import yaml

from agent.core import limits
from agent.core import profile as core_profile
from agent.core.errors import ConfigError, ProfileError, WichtelError

EXAMPLES_DIR = os.path.join(os.path.dirname(__file__), "profiles")

# Limits of a profile written in YAML (host only: devices read the compiled JSON).
# Nesting depth and number length are the core's (limits.PROFILE_MAX_*), shared with JSON.
MAX_YAML_BYTES = 65_536  # the examples are under 6 KiB, comments included
MAX_NODES = 8_192  # keys, values and items; a profile that fits a device has fewer than 5,000
MAX_SCALAR_CHARS = 1_024  # the schema's longest text is a 253-character host name

_TAG = "tag:yaml.org,2002:"
# What a scalar may be read as: JSON's kinds, and the dates YAML reads unasked (the schema
# then names the field that wanted text). Merge keys (<<) and value keys (=) are not data.
_SCALAR_TAGS = tuple(_TAG + t for t in ("null", "bool", "int", "float", "str", "timestamp"))
_NUMBER_TAGS = (_TAG + "int", _TAG + "float")
_READS_AS = {"null": "null", "bool": "true or false", "int": "a whole number", "float": "a number",
             "timestamp": "a date", "merge": "a merge key", "value": "a value key"}  # fmt: skip
# Characters PyYAML takes but an editor shows otherwise: line breaks it counts and editors
# may not (so a line number would point elsewhere), and direction controls that make text
# show unlike it reads. Profiles are English and German.
_MISLEADING = re.compile("[\x85\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BREAK = re.compile("\r\n|\r|\n")
_KIND: dict = {yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}  # of a key that is not text


class ProfileFileError(WichtelError):
    """A profile file cannot be used. str() is the one-paragraph message for the user."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        where = file + (":" + str(line) if line else "")
        super().__init__("profile error in " + where + ": " + message)


class _ProfileYAML(yaml.SafeLoader):
    """PyYAML's safe loader, bounded while it composes, recording each field's line.

    The composer recurses once per nesting level and would expand an alias as often as
    it is used; both are stopped here, at the event that would pass a bound, before any
    Python object is made.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.path: tuple = ()  # field path of the node being composed
        self.lines: dict = {}  # field path -> 1-based line (a mapping value: its key's line)
        self.open: list = []  # start events of the collections being composed, outermost first
        self.nodes = 0

    def refuse(self, mark: Any, got: str, expected: str) -> ProfileFileError:
        message = str(ProfileError(self.path, None, expected, got=got))
        return ProfileFileError(self.file, mark.line + 1, message)

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if not self.check_event(yaml.StreamEndEvent):
            # PyYAML would report this at the first document's start; the second one is the news.
            raise self.refuse(
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                "a second YAML document",
                "one profile per file",
            )
        return node

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        outer = self.path
        if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.Node):
            self._enter_value(index)
        elif isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            self.path = outer + (index,)
            self.lines[self.path] = event.start_mark.line + 1
        elif parent is None:
            self.lines[self.path] = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise self.refuse(event.start_mark, "an alias (*" + str(event.anchor) + ")",
                              "the value written out: a profile has no anchors or aliases")  # fmt: skip
        if event.anchor is not None:
            raise self.refuse(event.start_mark, "an anchor (&" + str(event.anchor) + ")",
                              "the value written out: a profile has no anchors or aliases")  # fmt: skip
        if event.tag not in (None, "!"):
            raise self.refuse(event.start_mark, "the tag " + event.tag.replace(_TAG, "!!"),
                              "a value without a tag (write text in quotes)")  # fmt: skip
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(event.start_mark, "more than " + str(MAX_NODES) + " keys, values and items",
                              "a profile of at most " + str(MAX_NODES))  # fmt: skip
        opens = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if opens:
            self.open.append(event)
            if len(self.open) > limits.PROFILE_MAX_DEPTH:
                raise self.refuse(event.start_mark, str(len(self.open)) + " lists and mappings within each other",
                                  "at most " + str(limits.PROFILE_MAX_DEPTH) + " levels")  # fmt: skip
        node = super().compose_node(parent, index)  # type: ignore[arg-type]
        if opens:
            self.open.pop()
        if isinstance(node, yaml.ScalarNode):
            self._check_scalar(node)
        self.path = outer
        return node

    def _enter_value(self, key: yaml.Node) -> None:
        """The value of this key comes next: the key must be text, and new in its mapping."""
        if not (isinstance(key, yaml.ScalarNode) and key.tag == _TAG + "str"):
            # YAML reads `1:`, `on:` or `[a]:` as a number, true or a list.
            if isinstance(key, yaml.ScalarNode):
                got = "the key " + repr(key.value) + ", which YAML reads as " + _reads_as(key.tag)
            else:
                got = _KIND[type(key)] + " as a key"
            raise self.refuse(key.start_mark, got, "a key that is text (write it in quotes)")
        line = key.start_mark.line + 1
        self.path = self.path + (key.value,)
        first = self.lines.get(self.path)
        if first is not None:
            got = "the key given twice (first on line " + str(first) + ")"
            raise self.refuse(key.start_mark, got, "each key once in a mapping")
        self.lines[self.path] = line

    def _check_scalar(self, node: yaml.ScalarNode) -> None:
        if node.tag not in _SCALAR_TAGS:
            raise self.refuse(node.start_mark, repr(node.value[:40]) + ", which YAML reads as " + _reads_as(node.tag),
                              "text, a number, true/false or null")  # fmt: skip
        if node.tag in _NUMBER_TAGS and len(node.value) > limits.PROFILE_MAX_NUMBER_CHARS:
            raise self.refuse(node.start_mark, "a number written with " + str(len(node.value)) + " characters",
                              "at most " + str(limits.PROFILE_MAX_NUMBER_CHARS) + " characters")  # fmt: skip
        if len(node.value) > MAX_SCALAR_CHARS:
            raise self.refuse(node.start_mark, "a value of " + str(len(node.value)) + " characters",
                              "a value of at most " + str(MAX_SCALAR_CHARS) + " characters")  # fmt: skip

    def syntax_error(self, e: yaml.MarkedYAMLError) -> ProfileFileError:
        """Name the line where the broken construct begins (an unclosed bracket or quote), and
        the line where the parser gave up, which may be the end of the file."""
        problem = _one_line(str(e.problem or "")) or "broken YAML"
        gave_up = e.problem_mark.line + 1 if e.problem_mark is not None else None
        context = _one_line(str(e.context or ""))
        flow = [event for event in self.open if event.flow_style]
        if e.context_mark is not None and context.startswith("while scanning "):
            # The scanner's construct (a quoted text, a key) lies within any open bracket.
            begins, what = e.context_mark.line + 1, context[len("while scanning ") :]
        elif flow:
            # PyYAML names where it stopped, or the item it expected: the bracket is what is open.
            begins = flow[-1].start_mark.line + 1
            what = "the list [" if isinstance(flow[-1], yaml.SequenceStartEvent) else "the mapping {"
        else:
            # A block construct is broken where the parser stopped (a wrong indentation):
            # the line it began on (often line 1) would not help.
            return ProfileFileError(self.file, gave_up, "not valid YAML: " + problem)
        message = "not valid YAML: in " + what + " that begins on this line: " + problem
        if gave_up is not None and gave_up != begins:
            message += " (the parser gave up on line " + str(gave_up) + ")"
        return ProfileFileError(self.file, begins, message)

    def build(self, node: yaml.Node, path: tuple) -> object:
        """Python data from a composed, checked node (depth bounded, keys text)."""
        if isinstance(node, yaml.MappingNode):
            return {key.value: self.build(value, path + (key.value,)) for key, value in node.value}
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            return self.construct_object(node, deep=True)
        except (ValueError, OverflowError) as e:
            # What YAML reads as a number or date but cannot be one: 0x_, 2024-13-45.
            self.path = path
            raise self.refuse(node.start_mark, repr(node.value) + ", which YAML reads as "
                              + _reads_as(node.tag) + " but cannot be one (" + str(e) + ")",
                              "a valid value, or text in quotes") from e  # fmt: skip


def _reads_as(tag: str) -> str:
    return _READS_AS.get(tag[len(_TAG) :], tag.replace(_TAG, "!!")) if tag.startswith(_TAG) else tag


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _line_at(text: str, index: int) -> int:
    """The 1-based line of text[index], counting line breaks as YAML does (CR LF, CR, LF)."""
    return len(_BREAK.findall(text, 0, index)) + 1


def _check_size(size: int, file: str) -> None:
    if size > MAX_YAML_BYTES:
        raise ProfileFileError(file, None, "got " + str(size) + " bytes or more; expected a profile of at most "
                               + str(MAX_YAML_BYTES) + " bytes")  # fmt: skip


def _decode(data: bytes, file: str) -> str:
    """The file's bytes as text, or a refusal naming the line of the first byte that is not UTF-8."""
    _check_size(len(data), file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", "replace")
        line = _line_at(before, len(before))
        raise ProfileFileError(file, line, "got the byte 0x%02X (byte %d of the file), which is not UTF-8; expected "
                               "UTF-8 text" % (data[e.start], e.start)) from e  # fmt: skip


def _check_text(text: str, file: str) -> None:
    """Refuse, by line, what PyYAML would refuse without one or read unlike an editor shows it."""
    _check_size(len(text.encode("utf-8", "surrogatepass")), file)
    if text.startswith("\ufeff"):
        raise ProfileFileError(file, 1, "got a byte order mark at the start; expected UTF-8 text without one")
    found = yaml.reader.Reader.NON_PRINTABLE.search(text) or _MISLEADING.search(text)
    if found is not None:
        got = "got the control character U+%04X" % ord(found.group())
        expected = "expected printable text (tab, line feed and carriage return are fine)"
        raise ProfileFileError(file, _line_at(text, found.start()), got + "; " + expected)


def load_text(text: str, file: str = "<profile>") -> dict:
    """Parse and validate a profile given as YAML (JSON is YAML too)."""
    _check_text(text, file)
    loader = _ProfileYAML(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ProfileFileError(file, None, "the file is empty; expected an appliance profile")
        doc = loader.build(node, ())
    except yaml.MarkedYAMLError as e:
        raise loader.syntax_error(e) from e
    except yaml.YAMLError as e:
        raise ProfileFileError(file, None, "not valid YAML: " + _one_line(str(e))) from e
    finally:
        loader.dispose()
    try:
        prof = core_profile.validate(doc)
    except ProfileError as e:
        raise ProfileFileError(file, _line_for(loader.lines, e.path), str(e)) from e
    _check_cycle_reference(prof, file, loader.lines)
    return prof


def _check_cycle_reference(prof: dict, file: str, lines: dict) -> None:
    """The cycle model's reference as the device will take it: correlations that no data set
    can have (a negative eigenvalue) are found by `wichtel profile check`, not when the agent
    is built. On the host only: the schema checks the shape, this the matrix (it needs the
    model's code, which a board whose size leaves the cycle model out does not import)."""
    model = prof["cycle_model"]
    if model is None or model["reference"] is None:
        return
    from agent.core.multivariate import PcaMonitor

    ref = {k: v for k, v in model["reference"].items() if v is not None}
    try:
        PcaMonitor(len(model["features"]), reference=ref)
    except ConfigError as e:
        path = ("cycle_model", "reference")
        raise ProfileFileError(file, _line_for(lines, path), "cycle_model." + str(e)) from e


def _line_for(lines: dict, path: tuple) -> int | None:
    """The line of the deepest part of path that the file has."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def load(path: str) -> dict:
    """Read, parse and validate a profile file (YAML or compiled JSON)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except OSError as e:
        raise ProfileFileError(path, None, "cannot read the file: " + (e.strerror or str(e))) from e
    return load_text(_decode(data, path), path)


def compile_json(prof: dict) -> bytes:
    """The validated profile as compact JSON for devices without YAML, within its bound."""
    data = json.dumps(prof, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    if len(data) > limits.PROFILE_JSON_MAX_BYTES:
        raise ProfileFileError(
            "<compiled>",
            None,
            "compiled profile is "
            + str(len(data))
            + " bytes; at most "
            + str(limits.PROFILE_JSON_MAX_BYTES)
            + " fit on a device",
        )
    return data


def example(kind: str) -> str:
    """Path of a shipped example profile."""
    return os.path.join(EXAMPLES_DIR, kind + ".yaml")
