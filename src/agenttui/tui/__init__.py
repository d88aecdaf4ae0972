"""The full-screen Textual app (R-24). Reaches the engine only through agenttui.client."""
