"""Failures every layer reports, in a module light enough for the headless client
(agenttui.backends.base and agenttui.core.config re-export them)."""


class InfraError(Exception):
    """The infrastructure failed (engine unreachable, build broken by the network, task failed
    to start). The orchestrator retries these with backoff (R-8)."""


class BuildError(Exception):
    """The user's build failed (bad requirement, broken Dockerfile): not retried.
    `log` holds the build output worth showing."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class SettingsError(Exception):
    """A setting has a bad value; the message names the setting and the source to fix."""
