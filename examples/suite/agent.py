"""A tiny agent for the example suite: it answers from a table, so its suite passes without a model.
Swap in your own agent (any framework agenttui runs: docs/agents.md)."""

import json

CAPITALS = {"france": "Paris", "japan": "Tokyo", "peru": "Lima"}


def run(query: str) -> str:
    words = query.lower().replace("?", "").split()
    if "json" in words:
        country = next((w for w in words if w in CAPITALS), "france")
        return json.dumps({"country": country.title(), "capital": CAPITALS[country]})
    for word in words:
        if word in CAPITALS:
            return f"The capital of {word.title()} is {CAPITALS[word]}."
    return "I don't know."
