"""The local page's templates at run time: the compiled templates (templates/*.html), the
HTML escaping every value they write goes through, and the page's text from them.

Owns escaping and where the compiled templates come from: a module a build compiled ahead
of time (tools/build_mpy.py --page; a board then needs neither the template files nor the
compiler), else template_compiler.py compiles the files at import. Runs on CPython and
MicroPython alike; the template language is described in template_compiler.py.
"""

from agent.core.errors import WichtelError

# The template files: NAME.html in this directory's templates/ (no os.path on MicroPython).
TEMPLATE_DIR = __file__.rpartition("/")[0] + "/templates"
SUFFIX = ".html"
# The module a build writes beside this one: every template compiled ahead of time.
COMPILED_MODULE = "templates_compiled"
_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;"))


class TemplateError(WichtelError):
    """A template that does not compile: the file and line, what was found, what was wanted."""


def escape(text: str) -> str:
    """text for HTML, in element content and quoted attributes alike: html.escape(text,
    quote=True), which MicroPython does not have. "&" first, so nothing is escaped twice."""
    for plain, entity in _ENTITIES:
        if plain in text:  # a copy of the text only where there is something to replace
            text = text.replace(plain, entity)
    return text


def _e(value: object) -> str:
    """What {{ value }} writes: any value as text, escaped."""
    return escape(value if isinstance(value, str) else str(value))


def page_templates() -> dict:
    """name -> generator function of every page template: as a build compiled them, or
    compiled now from the files in TEMPLATE_DIR."""
    try:
        from agent.local_page import templates_compiled  # type: ignore[attr-defined]
    except ImportError as e:
        if COMPILED_MODULE not in str(e):
            raise  # the compiled module is there but could not load: not a reason to compile anew
        from agent.local_page import template_compiler

        return template_compiler.load(template_compiler.files(TEMPLATE_DIR))
    return dict(templates_compiled.TEMPLATES)


class Templates:
    """Compiled templates by name; render(name, **args) is the page's text."""

    def __init__(self, table: dict) -> None:
        self.table = table

    def generate(self, name: str, **args: object) -> object:
        """The text in pieces, as the template writes them."""
        return self.table[name](**args)

    def render(self, name: str, **args: object) -> str:
        return "".join(self.table[name](**args))
