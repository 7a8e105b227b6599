"""The local privacy page: what the appliance holds and sends, the user's choices, erase.

access.py (who may), texts.py (words), views.py (what to show) do no I/O; server.py is
the microdot adapter that runs inside the agent's asyncio loop (docs/local-page.md).
"""
