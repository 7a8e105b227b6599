"""Wichtel: an edge agent for home appliances that keeps what it learns to itself.

The portable core is in agent.core; the rest of this package is the host runtime.
"""
