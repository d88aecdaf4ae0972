"""Execution backends. `make_backend` picks one from the settings."""

from __future__ import annotations

from agenttui.backends.base import Backend
from agenttui.core.config import Settings


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "noop":
        from agenttui.backends.noop import NoopBackend

        return NoopBackend(run_s=settings.noop_run_s)
    if settings.backend == "ecs":
        from agenttui.backends.ecs.backend import EcsBackend

        return EcsBackend(settings)
    from agenttui.backends.docker.backend import DockerBackend

    return DockerBackend(settings)
