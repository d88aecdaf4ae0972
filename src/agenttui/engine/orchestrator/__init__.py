"""The orchestrator: the loop that works the queue (loop.py), the pump that stores a running
test's log (log_pump.py) and the classifier that decides how it ended (outcome.py)."""

from agenttui.engine.orchestrator.loop import Orchestrator, new_owner_id
from agenttui.engine.orchestrator.run import LeaseLost

__all__ = ["Orchestrator", "LeaseLost", "new_owner_id"]
