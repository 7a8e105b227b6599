"""Loads appliance profiles from YAML with line numbers, and compiles them to JSON.

The schema lives in the portable core (agent.core.profile); this adapter adds what
only a host has: files, YAML, and the line each field came from.
"""

import json
import os

import yaml

from agent.core import limits
from agent.core import profile as core_profile
from agent.core.errors import ProfileError, format_path

EXAMPLES_DIR = os.path.join(os.path.dirname(__file__), "profiles")


class ProfileFileError(Exception):
    """A profile file cannot be used. str() is the one-paragraph message for the user."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        where = file + (":" + str(line) if line else "")
        super().__init__("profile error in " + where + ": " + message)


def _lines(node: yaml.Node, path: tuple, out: dict, file: str) -> None:
    """Record the 1-based line of every value (and key) under node, by field path."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ProfileFileError(
                    file,
                    key_node.start_mark.line + 1,
                    format_path(path + (key,)) + ": key given twice (first on line " + str(seen[key]) + ")",
                )
            seen[key] = key_node.start_mark.line + 1
            _lines(value_node, path + (key,), out, file)
            # A field is shown at its key: a nested value starts on a later line.
            out[path + (key,)] = seen[key]
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, path + (i,), out, file)


def _line_for(lines: dict, path: tuple) -> int | None:
    """The line of the deepest part of path that the file has."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)


def load_text(text: str, file: str = "<profile>") -> dict:
    """Parse and validate a profile given as YAML (JSON is YAML too)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ProfileFileError(file, line, "not valid YAML: " + str(e.problem or e.context)) from e
    except yaml.YAMLError as e:
        raise ProfileFileError(file, None, "not valid YAML: " + str(e)) from e
    if node is None:
        raise ProfileFileError(file, None, "the file is empty; expected an appliance profile")
    lines: dict = {}
    _lines(node, (), lines, file)
    try:
        return core_profile.validate(doc)
    except ProfileError as e:
        raise ProfileFileError(file, _line_for(lines, e.path), str(e)) from e


def load(path: str) -> dict:
    """Read, parse and validate a profile file (YAML or compiled JSON)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(limits.PROFILE_JSON_MAX_BYTES * 8 + 1)
    except OSError as e:
        raise ProfileFileError(path, None, "cannot read the file: " + (e.strerror or str(e))) from e
    except UnicodeDecodeError as e:
        raise ProfileFileError(path, None, "not UTF-8 text (byte " + str(e.start) + ")") from e
    if len(text) > limits.PROFILE_JSON_MAX_BYTES * 8:
        raise ProfileFileError(path, None, "larger than " + str(limits.PROFILE_JSON_MAX_BYTES * 8) + " characters")
    return load_text(text, path)


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
