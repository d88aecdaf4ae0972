"""Images: the base image as is, an image per normalized requirements set (built once per
key), or the user's own Dockerfile; a failed build is classified as the user's fault
(BuildError, not retried), the set-up's (ConfigurationError: TLS the trusted CAs cannot verify,
not retried) or the network's/engine's (InfraError, retried).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import inspect
import io
import logging
import re
import tarfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import jinja2
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from agenttui.backends.base import BuildError, BuildLog, InfraError, RunSpec
from agenttui.backends.docker.client import BuildStepFailed, DockerEngine, engine_message, engine_status
from agenttui.backends.docker.host_trust import EXTRA_SETTING, TrustedCAs
from agenttui.backends.docker.staging import AGENT_FILENAME, CA_FILENAME, REQUIREMENTS_FILENAME
from agenttui.core.config import Settings
from agenttui.core.errors import ConfigurationError
from agenttui.core.resources import resource_dir
from agenttui.harness import RUNNER_FILENAME, runner_source

log = logging.getLogger(__name__)

ENV_IMAGE_REPO = "agenttui-env"
CUSTOM_IMAGE_REPO = "agenttui-custom"
BUILD_LOG_TAIL_LINES = 60

# ---------------------------------------------------------------------------------------
# Build failure classification
# ---------------------------------------------------------------------------------------

# Signs that TLS met a certificate the build does not trust: the same on every attempt, so a
# set-up to change (checked before the network's signs, which the same lines carry).
_TLS_VERIFY_MARKERS = (
    "certificate_verify_failed",
    "certificate verify failed",
    "sslcertverificationerror",
)
# Signs that the network, TLS or the engine broke the build (pip reports an unreachable
# index as "No matching distribution", so these are checked first).
_INFRA_BUILD_MARKERS = (
    "no space left on device",
    "could not fetch url",
    "sslerror",
    "problem confirming the ssl certificate",
    "proxyerror",
    "newconnectionerror",
    "max retries exceeded",
    "temporary failure in name resolution",
    "name or service not known",
    "network is unreachable",
    "connection refused",
    "connection reset",
    "connecttimeouterror",
    "readtimeouterror",
    "read timed out",
    "tls handshake timeout",
    "i/o timeout",
    "dial tcp",
    "connection timed out",
    "503 service unavailable",
    "502 bad gateway",
    "cannot connect to the docker daemon",
)
_PIP_USER_MARKERS = (
    "no matching distribution found",
    "could not find a version that satisfies",
    "invalid requirement",
    "resolutionimpossible",
    "conflicting dependencies",
    "subprocess-exited-with-error",
    "failed building wheel",
    "metadata-generation-failed",
)


# The classic builder colours a RUN step's stderr.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _key_error_line(error: str, tail: list[str]) -> str:
    """The most telling line of a failed build: pip's last ERROR line, else the engine's."""
    for line in reversed(tail):
        if line.strip().startswith("ERROR:"):
            return line.strip()
    return error.strip()


def _first_line_with(markers: tuple[str, ...], lines: list[str], default: str) -> str:
    culprit = next((line.strip() for line in lines if any(marker in line.lower() for marker in markers)), default)
    return culprit[:400] + "…" if len(culprit) > 400 else culprit


def _untrusted_certificate(culprit: str, trusted: str, custom: bool) -> ConfigurationError:
    where = (
        f"The build context holds {trusted} as agenttui-ca.pem: your Dockerfile can COPY it and point "
        "pip at it (PIP_CERT)." if custom else f"The build trusted {trusted}."
    )
    return ConfigurationError(
        f"image build failed: a TLS certificate could not be verified ({culprit}). {where} If a proxy "
        f"intercepts TLS on this machine, give its CA bundle with {EXTRA_SETTING}, or make the "
        "host's pip trust it (PIP_CERT, or cert in pip.conf): the builds trust what the host's pip trusts."
    )


def classify_build_failure(error: str, tail: list[str], custom: bool, trusted: str = "") -> Exception:
    """BuildError when the user's requirements/Dockerfile are at fault, ConfigurationError when
    TLS meets a certificate the CAs the build trusted (`trusted`, described) cannot verify, else
    InfraError."""
    tail_text = "\n".join(tail)
    haystack = f"{error}\n{tail_text}".lower()
    key = _key_error_line(error, tail)
    if any(marker in haystack for marker in _TLS_VERIFY_MARKERS):
        culprit = _first_line_with(_TLS_VERIFY_MARKERS, [*tail, error], key)
        return _untrusted_certificate(culprit, trusted or "the image's own CAs", custom)
    if any(marker in haystack for marker in _INFRA_BUILD_MARKERS):
        culprit = _first_line_with(_INFRA_BUILD_MARKERS, [*tail, error], key)
        return InfraError(f"image build failed because of the network or the engine: {culprit}")
    if custom:
        return BuildError(f"your Dockerfile failed to build: {key}", log=tail_text)
    if "returned a non-zero code" in haystack or any(m in haystack for m in _PIP_USER_MARKERS):
        return BuildError(f"pip could not install the requirements: {key}", log=tail_text)
    return InfraError(f"image build failed in the engine: {key}")


# ---------------------------------------------------------------------------------------
# Requirements and image keys
# ---------------------------------------------------------------------------------------


def normalize_requirements(text: str) -> str:
    """Requirements in a canonical form (no comments/blanks, canonical names, sorted), so
    equivalent files share one image (R-13). Empty string when nothing is required."""
    lines: set[str] = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
            requirement.name = canonicalize_name(requirement.name)
            line = str(requirement)
        except InvalidRequirement:
            pass  # domain validation rejects these; keep the text so pip explains
        lines.add(line)
    return "".join(f"{line}\n" for line in sorted(lines))


def requirements_image_tag(base_id: str, requirements: str) -> str:
    """The image of normalized `requirements` on the base image `base_id` (its name says both)."""
    return f"{ENV_IMAGE_REPO}:{_digest(base_id, _template_source(REQUIREMENTS_TEMPLATE), requirements)}"


def _digest(*parts: str | bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        hasher.update(len(data).to_bytes(8, "big"))  # length-prefixed: no ambiguous joins
        hasher.update(data)
    return hasher.hexdigest()[:20]


def _build_context(files: dict[str, bytes]) -> bytes:
    """A gzipped tar of `files` with fixed metadata (the build cache depends on it)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


_template_env: jinja2.Environment | None = None


def _render(template: str, **values: Any) -> str:
    global _template_env
    if _template_env is None:
        _template_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "docker")),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
        )
    return _template_env.get_template(template).render(**values)


def _template_source(template: str) -> str:
    return (resource_dir("templates") / "docker" / template).read_text(encoding="utf-8")


REQUIREMENTS_TEMPLATE = "requirements.Dockerfile.j2"
# Written by the requirements image's build (its template): the pip freeze lines its pip step added.
INSTALLED_FILE = "/opt/agenttui-installed.txt"
INSTALLED_MAX_BYTES = 1 << 20


def parse_installed(text: str) -> dict[str, str]:
    """{canonical distribution name: version} of `pip freeze` lines (`name==version`; lines
    naming a URL or a path have no version to pin and are left out)."""
    versions: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name and version and not name.startswith(("#", "-")):
            versions[canonicalize_name(name)] = version.strip()
    return dict(sorted(versions.items()))


class _BuildOutput:
    """A build's output passed on in whole lines; its last lines are kept for the error."""

    def __init__(self, on_log: BuildLog, max_line: int):
        self.on_log = on_log
        self.max_line = max_line
        self.tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL_LINES)
        self._partial = ""
        self._dropped = 0  # chars of the unfinished line beyond max_line

    async def feed(self, text: str) -> None:
        # Build output arrives in arbitrary pieces: pass on whole lines only, each at most
        # log_max_line chars (a RUN step may print one line of gigabytes; growing it here
        # would cost the server memory and quadratic time).
        max_line = self.max_line
        *complete, rest = text.split("\n")
        lines = []
        for piece in complete:
            raw = self._partial + piece[: max(0, max_line - len(self._partial))]
            cut = self._dropped + max(0, len(self._partial) + len(piece) - max_line)
            lines.append(raw + (f" …[line truncated: {cut} chars]" if cut else ""))
            self._partial, self._dropped = "", 0
        room = max(0, max_line - len(self._partial))
        self._dropped += max(0, len(rest) - room)
        self._partial += rest[:room]
        for raw in lines:
            line = _ANSI_RE.sub("", raw).rstrip()
            if not line:
                continue
            self.tail.append(line)
            result = self.on_log(line)
            if inspect.isawaitable(result):
                await result

    async def flush(self) -> None:
        """The build ended: pass on its unfinished last line."""
        if self._partial:
            await self.feed("\n")


class Images:
    """Finds or builds the image a test runs on."""

    def __init__(self, engine: DockerEngine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.trusted = TrustedCAs(settings)
        self._build_locks: dict[str, asyncio.Lock] = {}
        self._installed: dict[str, dict[str, str]] = {}  # image → its build's record (images never change)

    async def prepare(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        """The image for `spec`, and whether it was built now."""
        request = spec.request
        if request.dockerfile.strip():
            return await self._prepare_custom(spec, on_log)
        base = self.settings.base_image
        base_id = await self.engine.image_id(base)
        if base_id is None:
            raise InfraError(
                f"the base image {base} is not in the Docker engine at {self.engine.where}. "
                f"Pull it (`docker pull {base}`), build it (scripts/dev-docker.sh builds "
                "agenttui-base:bookworm), or set AGENTTUI_BASE_IMAGE to an image that exists."
            )
        requirements = normalize_requirements(request.requirements)
        if not requirements:
            return base, False  # stdlib-only agents run on the base image: no build
        tag = requirements_image_tag(base_id, requirements)

        def context() -> bytes:
            ca_bundle = self.trusted.bundle()
            dockerfile = _render(REQUIREMENTS_TEMPLATE, base_image=base, ca_bundle=bool(ca_bundle))
            files = {"Dockerfile": dockerfile.encode(), REQUIREMENTS_FILENAME: requirements.encode()}
            if ca_bundle:
                files[CA_FILENAME] = ca_bundle
            return _build_context(files)

        labels = {"agenttui.image": "requirements", "agenttui.base-id": base_id}
        return await self._build_once(tag, context, labels, on_log, custom=False)

    async def installed(self, image: str) -> dict[str, str]:
        """The versions the requirements step of `image` installed, read from the record its
        build left in it (an unstarted container's file); {} for the base image, a custom
        Dockerfile's image, or an image built before the record existed."""
        if not image.startswith(f"{ENV_IMAGE_REPO}:"):
            return {}
        if image not in self._installed:
            action = f"read the installed versions of {image}"
            config = {"Image": image, "Cmd": ["true"], "NetworkDisabled": True, "Labels": {"agenttui.role": "installed"}}
            container = await self.engine.create(f"agenttui-installed-{uuid.uuid4().hex[:12]}", config, action)
            try:
                data = await self.engine.read_file(container, INSTALLED_FILE, INSTALLED_MAX_BYTES, action)
            finally:
                await self.engine.delete(container)
            self._installed[image] = parse_installed((data or b"").decode("utf-8", "replace"))
        return self._installed[image]

    async def _prepare_custom(self, spec: RunSpec, on_log: BuildLog) -> tuple[str, bool]:
        request = spec.request
        files = {
            "Dockerfile": request.dockerfile.encode(),
            AGENT_FILENAME: request.agent_code.encode(),
            REQUIREMENTS_FILENAME: request.requirements.encode(),
            RUNNER_FILENAME: runner_source().encode(),
        }
        ca_bundle = self.trusted.bundle()
        if ca_bundle:
            files[CA_FILENAME] = ca_bundle
        tag = f"{CUSTOM_IMAGE_REPO}:{_digest(*(p for item in sorted(files.items()) for p in item))}"
        labels = {"agenttui.image": "custom"}
        return await self._build_once(tag, lambda: _build_context(files), labels, on_log, True)

    async def _build_once(
        self, tag: str, context: Callable[[], bytes], labels: dict[str, str], on_log: BuildLog, custom: bool
    ) -> tuple[str, bool]:
        # One build per key even when several tests want the same image at once.
        lock = self._build_locks.setdefault(tag, asyncio.Lock())
        async with lock:
            if await self.engine.image_id(tag) is not None:
                return tag, False
            await self._build(tag, context(), labels, on_log, custom)
            return tag, True

    async def _build(
        self, tag: str, context: bytes, labels: dict[str, str], on_log: BuildLog, custom: bool
    ) -> None:
        output = _BuildOutput(on_log, self.settings.log_max_line)
        started = time.monotonic()
        try:
            await self.engine.build(tag, context, labels, self.settings.build_timeout_s, output.feed)
        except BuildStepFailed as exc:  # the build itself failed
            await output.flush()
            raise classify_build_failure(exc.message, list(output.tail), custom, self.trusted.describe()) from exc
        except InfraError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise InfraError(
                    f"building {tag} did not finish within {self.settings.build_timeout_s} s "
                    "(setting build_timeout_s)"
                ) from exc
            if custom and engine_status(exc) == 400:
                # The engine refused the user's Dockerfile itself (e.g. a parse error).
                raise BuildError(
                    f"your Dockerfile failed to build: {engine_message(exc)}", log="\n".join(output.tail)
                ) from exc
            raise
        await output.flush()
        if await self.engine.image_id(tag) is None:
            raise InfraError(
                f"building {tag} ended without producing the image (the engine connection "
                f"may have dropped); last output: {' | '.join(list(output.tail)[-3:])}"
            )
        log.info("built %s in %.1f s", tag, time.monotonic() - started)
