"""The manufacturer's backend for tests without a broker: it confirms messages to an agent
on the same host through the agent's own command path, as a `confirm` command does."""

import json

from agent.core import limits
from agent.core.pipeline import Agent


def confirm(agent: Agent, ids: list | None = None) -> list:
    """Confirm ids (default: every message awaiting confirmation) in commands of at most
    MAX_CONFIRM_IDS ids, each with the next sequence number; returns the ids. Fails
    loudly if the agent did not take a command (its intake rate, for one)."""
    if ids is None:
        ids = sorted(agent.outbox.awaiting)
    topic = agent.commands.topic_prefix + "confirm"
    for i in range(0, len(ids), limits.MAX_CONFIRM_IDS):
        seq = agent.commands.last_seq + 1
        body = {"device": agent.commands.device_id, "seq": seq, "args": {"ids": ids[i : i + limits.MAX_CONFIRM_IDS]}}
        agent.on_command(topic, json.dumps(body).encode())
        assert agent.commands.last_seq == seq, agent.commands.log[-1:]
    return ids
