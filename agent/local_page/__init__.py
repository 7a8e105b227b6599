"""The local privacy page: what the appliance holds and sends, the user's choices, erase.

limits.py (every bound), intake.py (which connections and request heads are taken in),
access.py (who may), texts.py (words), views.py (what to show) do no I/O; server.py is
the socket server and microdot adapter inside the agent's asyncio loop (docs/local-page.md).
"""
