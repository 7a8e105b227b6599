"""The local page's template language and its compiler: HTML files with {{ value }} and
{% statement %}, compiled to Python generator functions in which every value is escaped.

Owns the language; used at import where no build compiled the templates ahead of time
(template.py), and by the build (tools/build_mpy.py --page). There is no way to write a
value unescaped: a template puts another template's output in its own only by
`{% include name ... %}`, never a string.

The language, in the spirit of utemplate (templates compiled to generators), with escaping:
  {% args a, b=1 %}     the template's parameters (its first statement)
  {{ expr }}            the value of a Python expression, as text, escaped
  {% if e %} {% elif e %} {% else %} {% endif %}, {% for x in e %} {% endfor %}
  {% include name k=v, ... %} another template of the same directory, with its arguments
  {# text #}            a comment
A line break and the indentation after it are not output, so the HTML can be laid out
readably and still come out as before; where a space is wanted there, it is written before
the break. An expression is a Python expression over the arguments and builtins only.
"""

from agent.local_page.template import SUFFIX, TEMPLATE_DIR, TemplateError, _e

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_BLOCKS = ("if", "for")


def _is_name(text: str) -> bool:
    """A Python identifier: letters, digits and "_", not starting with a digit (MicroPython has no isidentifier)."""
    return bool(text) and not text[0].isdigit() and all(c == "_" or c.isalpha() or c.isdigit() for c in text)


def _literal(text: str) -> str:
    """Template text as output: each line break with the indentation after it dropped."""
    out = []
    for i, line in enumerate(text.split("\n")):
        out.append(line.lstrip(" \t") if i else line)
    return "".join(out)


class _Compiler:
    """One template's text -> the Python source of one generator function."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.code: list = []  # (source line, template line)
        self.stack: list = []  # open blocks: [kind, template line, has a statement in it]
        self.args = ""
        self.pending = ""  # literal text not yet written: adjacent pieces become one yield
        self.line = 1

    def fail(self, found: str, wanted: str) -> TemplateError:
        return TemplateError("template %s%s line %d: %s; %s" % (self.name, SUFFIX, self.line, found, wanted))

    def emit(self, source: str) -> None:
        self.code.append(("    " * (len(self.stack) + 1) + source, self.line))
        if self.stack:
            self.stack[-1][2] = True

    def flush(self) -> None:
        if self.pending:
            self.emit("yield " + repr(self.pending))
            self.pending = ""

    def statement(self, stmt: str) -> None:
        parts = stmt.split(None, 1)
        word = parts[0] if parts else ""
        rest = parts[1].strip() if len(parts) > 1 else ""
        if word == "args":
            if self.code or self.pending:
                raise self.fail("{% args %} after output", "the parameters come first")
            self.args = rest
            return
        self.flush()
        if word in _BLOCKS:
            if not rest:
                raise self.fail("{%% %s %%} without a condition" % word, "{% if EXPR %} or {% for X in EXPR %}")
            self.emit("%s %s:" % (word, rest))
            self.stack.append([word, self.line, False])
        elif word in ("elif", "else"):
            if not self.stack or self.stack[-1][0] != "if":
                raise self.fail("{%% %s %%} outside an {%% if %%}" % word, "it belongs inside an if block")
            self._close_body()
            self.stack.pop()
            self.emit(("elif %s:" % rest) if word == "elif" else "else:")
            self.stack.append(["if", self.line, False])
        elif word in ("endif", "endfor"):
            if not self.stack or self.stack[-1][0] != word[3:]:
                open_block = self.stack[-1][0] if self.stack else "no block"
                raise self.fail("{%% %s %%} closing %s" % (word, open_block), "blocks close in the order they open")
            self._close_body()
            self.stack.pop()
        elif word == "include":
            parts = rest.split(None, 1)
            target = parts[0] if parts else ""
            if not _is_name(target):
                raise self.fail("{%% include %s %%}" % target, "the name of a template file, without " + SUFFIX)
            self.emit("yield from _T[%r](%s)" % (target, parts[1] if len(parts) > 1 else ""))
        else:
            raise self.fail("{%% %s %%}" % word, "one of args, if, elif, else, endif, for, endfor, include")

    def _close_body(self) -> None:
        if not self.stack[-1][2]:
            self.emit("pass")  # a block with no output still needs a body

    def compile(self) -> list:
        text = self.text
        at = 0
        while at < len(text):
            start = text.find("{", at)
            while start >= 0 and text[start + 1 : start + 2] not in ("{", "%", "#"):
                start = text.find("{", start + 1)
            if start < 0:
                self.pending += _literal(text[at:])
                break
            self.pending += _literal(text[at:start])
            self.line += text.count("\n", at, start)
            kind = text[start + 1]
            close = {"{": "}}", "%": "%}", "#": "#}"}[kind]
            end = text.find(close, start + 2)
            if end < 0:
                raise self.fail("%s%s without %s" % ("{", kind, close), "every tag closed")
            inner = text[start + 2 : end].strip()
            if kind == "{":
                if not inner:
                    raise self.fail("an empty {{ }}", "an expression")
                self.flush()
                self.emit("yield _e(%s)" % inner)
            elif kind == "%":
                self.statement(inner)
            self.line += text.count("\n", start, end)
            at = end + 2
        self.flush()
        if self.stack:
            self.line = self.stack[-1][1]
            raise self.fail("{%% %s %%} never closed" % self.stack[-1][0], "{%% end%s %%}" % self.stack[-1][0])
        if not any(source.lstrip().startswith("yield") for source, _ in self.code):
            self.emit("yield ''")  # a generator even when it writes nothing
        return (
            [("def _t_%s(%s):" % (self.name, self.args), 1)]
            + self.code
            + [("_T[%r] = _t_%s" % (self.name, self.name), 1)]
        )


def source(name: str, text: str) -> tuple:
    """(the Python source of template `name` (text), for each of its lines the template line it comes from)."""
    if not _is_name(name):
        raise TemplateError("template file %s%s: the name must be a Python identifier" % (name, SUFFIX))
    code = _Compiler(name, text).compile()
    return "\n".join(line for line, _ in code) + "\n", [at for _, at in code]


def module_source(templates: dict) -> str:
    """The module (template.COMPILED_MODULE, .py) a build writes: every template of `templates`
    (name -> text) in TEMPLATES, the same functions load() makes."""
    head = '"""The local page\'s templates, compiled by tools/build_mpy.py: not to be edited."""\n\n'
    head += "from agent.local_page.template import _e\n\n_T = {}\nTEMPLATES = _T\n"
    return head + "".join(source(name, templates[name])[0] for name in sorted(templates))


def files(directory: str) -> "Iterator[tuple[str, str]]":
    """(name, text) of every NAME.html of directory, one file at a time."""
    import os  # MicroPython's os has listdir too; imported where the files are read

    for entry in sorted(os.listdir(directory)):
        if entry.endswith(SUFFIX):
            with open(directory + "/" + entry, encoding="utf-8") as f:
                yield entry[: -len(SUFFIX)], f.read()


def read_dir(directory: str = TEMPLATE_DIR) -> dict:
    """Every NAME.html of directory: name -> text."""
    return dict(files(directory))


def load(templates: "dict | Iterable[tuple[str, str]]") -> dict:
    """name -> generator function for every template of `templates` (a dict name -> text, or
    (name, text) pairs), each compiled on its own: no block as large as all of them at once."""
    table: dict = {}
    scope = {"_e": _e, "_T": table}
    for name, text in templates.items() if isinstance(templates, dict) else templates:
        python, where = source(name, text)
        try:
            code = compile(python, name + SUFFIX, "exec")
        except SyntaxError as e:
            # The line of the generated source says which template line holds the broken expression.
            line = getattr(e, "lineno", None)  # None on MicroPython
            place = "template %s%s%s" % (name, SUFFIX, " line %d" % where[line - 1] if line else "")
            raise TemplateError("%s: not a Python expression or statement (%s)" % (place, e)) from e
        exec(code, scope)  # the package's own template, compiled above
        del python, code
    return table
