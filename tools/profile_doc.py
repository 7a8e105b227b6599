"""Writes docs/profile.md, the reference of every profile field, from the schema the validator uses.

Type, default, range and unit come from the validators themselves (agent/core/profile.py,
agent/core/schema.py, each processor's settings_schema); what a field means and an example
come from agent/profile_reference.py, keyed by the same field paths. The walkthrough's
outputs are those of `wichtel profile check` run on each step. tests/test_profile_doc.py
fails when the file and this output differ.

usage: python -m tools.profile_doc [--write | --check]
"""

import argparse
import contextlib
import io
import os
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from agent import profile_reference as ref  # noqa: E402
from agent.core import processors  # noqa: E402
from agent.core import profile as core_profile  # noqa: E402
from agent.core.schema import AnyMap, Bool, ListOf, Map, MeanSd, Num, NumOrId, OneOf, Range, Str  # noqa: E402

OUT = os.path.join(ROOT, "docs", "profile.md")
# A processor's settings may depend on the profile's phases: the schema is built with this
# stand-in, which the reference shows as "one of the profile's phases".
PHASE = "<phase>"
SETTINGS = "channels[].processors[].settings"


class Field:
    """One row of the reference: a field path and the validator of its value."""

    __slots__ = ("check", "default", "path", "required")

    def __init__(self, path: str, check: object, required: bool, default: object) -> None:
        self.path = path
        self.check = check
        self.required = required
        self.default = default


def settings_schemas() -> dict:
    """kind -> the settings validator of that processor kind (with the stand-in phase)."""
    return {kind: processors.settings_schema(kind, [PHASE]) for kind in processors.REGISTRY}


def sections() -> list:
    """(section path, [Field]) for every mapping of the profile, outermost first: the
    profile itself, then each nested mapping (a list's items are path + "[]"); the settings
    of each processor kind (SETTINGS + "[kind]") follow the processors."""
    out: list = []
    _walk(core_profile.PROFILE, "", out)
    at = [path for path, _ in out].index("channels[].processors[]") + 1
    for kind, schema in settings_schemas().items():
        kind_sections: list = []
        _walk(schema, SETTINGS + "[" + kind + "]", kind_sections)
        out[at:at] = kind_sections
        at += len(kind_sections)
    return out


def fields() -> list:
    """Every Field of the profile, in the order of the reference."""
    return [f for _, rows in sections() for f in rows]


def _walk(schema: Map, path: str, out: list) -> None:
    rows: list = []
    out.append((path, rows))
    nested: list = []
    keys = [(k, v, True, None) for k, v in schema.required.items()]
    keys += [(k, v[0], False, v[1]) for k, v in schema.optional.items()]
    for key, check, required, default in keys:
        sub = (path + "." if path else "") + key
        rows.append(Field(sub, check, required, default))
        inner = check.item if isinstance(check, ListOf) else check
        if isinstance(inner, Map) and inner is not core_profile._TEXTS:
            nested.append((inner, sub + ("[]" if isinstance(check, ListOf) else "")))
    for inner, sub in nested:
        _walk(inner, sub, out)


def coverage() -> tuple:
    """(schema fields without a reference entry, reference entries without a schema field,
    sections without a title, titles without a section), each sorted."""
    paths = {f.path for f in fields()}
    heads = {path for path, _ in sections()}
    return (sorted(paths - set(ref.FIELDS)), sorted(set(ref.FIELDS) - paths), sorted(heads - set(ref.SECTIONS)),
            sorted(set(ref.SECTIONS) - heads))  # fmt: skip


# -- the columns --------------------------------------------------------------------------
def type_of(check: object) -> str:
    if check is core_profile._TEXTS:
        return "texts {en, de}"
    if isinstance(check, core_profile._Field):
        return "field name"
    if isinstance(check, Str):
        return "identifier" if check.ident else "text"
    if isinstance(check, Num):
        return "whole number" if check.integer else "number"
    if isinstance(check, Bool):
        return "true or false"
    if isinstance(check, OneOf):
        return "one of"
    if isinstance(check, ListOf):
        return "list of " + ("mappings (below)" if isinstance(check.item, Map) and check.item is not
                             core_profile._TEXTS else _plural(type_of(check.item)))  # fmt: skip
    if isinstance(check, Range):
        return "[low, high]"
    if isinstance(check, MeanSd):
        return "[mean, sd]"
    if isinstance(check, AnyMap):
        return "mapping: identifier to " + type_of(check.item)
    if isinstance(check, NumOrId):
        return "number or identifier"
    if isinstance(check, Map):
        return "mapping (below)"
    raise TypeError("no reference type for validator " + type(check).__name__)


def _plural(kind: str) -> str:
    return kind if kind.startswith("texts") else kind + "s"


def range_of(check: object) -> str:
    if check is core_profile._TEXTS:
        return "each " + range_of(core_profile._TEXT)
    if isinstance(check, core_profile._Field):
        return range_of(core_profile._ID) + "; not a forbidden name (below)"
    if isinstance(check, Str):
        text = "1 to " + str(check.max_len) + " characters"
        return text + ": a-z, 0-9 and _, starting with a letter" if check.ident else text
    if isinstance(check, Num):
        return number(check.lo) + " to " + number(check.hi)
    if isinstance(check, OneOf):
        if check.choices == (PHASE,):
            return "one of the profile's `phases`"
        names = sorted(check.choices) if isinstance(check.choices, dict) else check.choices
        return ", ".join("`" + str(c) + "`" for c in names)
    if isinstance(check, ListOf):
        text = str(check.min_len) + " to " + str(check.max_len) + " items" + (", each once" if check.unique else "")
        item = "" if isinstance(check.item, Map) and check.item is not core_profile._TEXTS else range_of(check.item)
        return text + ("; each " + item.removeprefix("each ") if item else "")
    if isinstance(check, Range):
        return "low < high, each " + range_of(Num(-1e9, 1e9))
    if isinstance(check, MeanSd):
        return "mean " + range_of(Num(check.lo, check.hi)) + "; sd 0 or more"
    if isinstance(check, AnyMap):
        item = range_of(check.item)
        return "at most " + str(check.max_len) + " entries" + ("; each " + item.removeprefix("each ") if item else "")
    if isinstance(check, NumOrId):
        return range_of(Num(-1e9, 1e9)) + ", or an identifier"
    return ""


def number(x: float) -> str:
    """1e6 -> 1,000,000; 0.001 -> 0.001; 3.0 -> 3."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    return repr(x)


def unit_of(f: Field) -> str:
    own = f.check.unit if isinstance(f.check, Num) else ""
    return own or ref.FIELDS[f.path].get("unit", "")


def default_of(f: Field) -> str:
    if f.required:
        return "required"
    return "none" if f.default is None else "`" + flow(f.default) + "`"


def flow(value: object) -> str:
    """A value as YAML in flow style, on one line."""
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- the document ---------------------------------------------------------------------------
def reference() -> str:
    missing, extra, untitled, stale = coverage()
    if missing or extra or untitled or stale:
        raise KeyError(
            "agent/profile_reference.py and the schema differ: fields without an entry %s, entries without a "
            "field %s, sections without a title %s, titles without a section %s" % (missing, extra, untitled, stale)
        )
    out = []
    for path, rows in sections():
        title = ref.SECTIONS[path]
        out.append("### " + title[0] + (" (`" + path + "`)" if path else ""))
        out.append("")
        out.append(title[1])
        out.append("")
        out.append("| Field | Type | Default | Range | Unit | Example | Meaning |")
        out.append("|---|---|---|---|---|---|---|")
        for f in rows:
            entry = ref.FIELDS[f.path]
            key = f.path.rsplit(".", 1)[-1]
            cells = (
                "`" + key + "`",
                type_of(f.check),
                default_of(f),
                range_of(f.check),
                unit_of(f),
                "`" + flow(entry["example"]) + "`",
                entry["doc"],
            )
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    out.append("Field names that identify a device, a network or a person cannot be allowlisted in a data")
    out.append("category, whatever the profile says: " + ", ".join("`" + n + "`" for n in core_profile.FORBIDDEN_FIELDS)
               + ".")  # fmt: skip
    out.append("")
    return "\n".join(out)


def check_output(text: str, file: str) -> tuple:
    """(exit code, what `wichtel profile check FILE` prints) for a profile with this text,
    the file named as given."""
    from agent.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, file)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = main(["profile", "check", file])
        finally:
            os.chdir(cwd)
    return code, out.getvalue().strip()


def walkthrough() -> str:
    out = []
    for step in ref.WALKTHROUGH:
        out.append("#### " + step["title"])
        out.append("")
        out.append(step["text"].strip())
        out.append("")
        if step.get("replace"):
            out.append("```diff")
            for old, new in step["replace"]:
                out += ["-" + line for line in old.rstrip("\n").split("\n")]
                out += ["+" + line for line in new.rstrip("\n").split("\n")]
            out.append("```")
            out.append("")
        if step["yaml"]:
            if step.get("replace"):
                out.append("Then add at the end of the file:")
                out.append("")
            out.append("```yaml")
            out.append(step["yaml"].strip("\n"))
            out.append("```")
            out.append("")
        code, printed = check_output(ref.profile_at(step), ref.WALKTHROUGH_FILE)
        out.append("```console")
        out.append("$ wichtel profile check " + ref.WALKTHROUGH_FILE)
        out.append(printed)
        out.append("$ echo $?")
        out.append(str(code))
        out.append("```")
        out.append("")
        if step.get("after"):
            out.append(step["after"].strip())
            out.append("")
    out.append("The whole profile, as it ends:")
    out.append("")
    out.append("```yaml")
    out.append(ref.profile_at(ref.WALKTHROUGH[-1]).strip("\n"))
    out.append("```")
    out.append("")
    return "\n".join(out)


def document() -> str:
    guides = ref.PHASE_SOURCES.strip() + "\n\n"
    return ref.INTRO.strip() + "\n\n" + walkthrough() + guides + ref.REFERENCE_INTRO.strip() + "\n\n" + reference()


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/profile.md from the profile schema.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write docs/profile.md (default: print it)")
    mode.add_argument("--check", action="store_true", help="exit 1 if docs/profile.md is not what the schema gives")
    args = parser.parse_args(argv)
    text = document()
    if args.check:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print(
                    "docs/profile.md differs from the schema: run python -m tools.profile_doc --write", file=sys.stderr
                )
                return 1
        return 0
    if args.write:
        with open(OUT, "w", encoding="utf-8") as f:
            f.write(text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
