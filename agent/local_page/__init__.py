"""The local privacy page: what the appliance holds and sends, the user's choices, erase.

limits.py (every bound), intake.py (which connections and request heads are taken in),
access.py (who may), crypto.py (HMAC, PBKDF2, tokens on both runtimes), texts.py (words),
views.py (what to show) do no I/O; templates/*.html hold the HTML, written with every value
escaped by template.py (compiled by template_compiler.py); routes.py is the microdot app
that answers a complete request; server.py (CPython) and board.py (MicroPython) are the socket servers inside the
agent's asyncio loop (docs/local-page.md).
"""
