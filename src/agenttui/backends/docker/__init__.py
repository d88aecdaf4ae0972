"""The Docker backend (backend.py) and its parts: the engine wrapper, images, staging, the
container's configuration, the log stream, resource use, sandbox networking and the warm pool."""

from agenttui.backends.docker.backend import DockerBackend

__all__ = ["DockerBackend"]
