"""What a client call can fail with, besides InvalidRequest and InfraError: defined with the
error table in agenttui.core.errors (light: the socket client imports it without the store)."""

from agenttui.core.errors import AccessDenied, NotActionable, NotFound

__all__ = ["AccessDenied", "NotActionable", "NotFound"]
