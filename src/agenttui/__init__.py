"""agenttui: test AI agents in isolated containers, watch them live, package them for deployment."""

__version__ = "0.1.0"
