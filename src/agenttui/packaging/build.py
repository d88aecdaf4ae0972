"""A finished test → its deployment package: render the templates, scrub secrets, write the zip."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from agenttui.core.redact import Redactor
from agenttui.harness import RUNNER_FILENAME, runner_source
from agenttui.packaging.context import PackageContext, as_datetime, package_context
from agenttui.packaging.result import PackageResult
from agenttui.packaging.scrub import scrub_files, secret_values
from agenttui.packaging.source import FinishedTest
from agenttui.packaging.templates import (
    AGENT_FILENAME,
    CUSTOM_DOCKERFILE,
    EXECUTABLE,
    TEMPLATES,
    render_template,
    templates_dir,
)


def render_files(context: PackageContext, agent_code: str) -> dict[str, str]:
    """Package path → text, before scrubbing."""
    files: dict[str, str] = {AGENT_FILENAME: agent_code, RUNNER_FILENAME: runner_source()}
    if context.build.custom_dockerfile_text:
        files[CUSTOM_DOCKERFILE] = context.build.custom_dockerfile_text
    folder = templates_dir()
    values = context.template_vars()
    for template, target in TEMPLATES:
        files[target] = render_template(template, values, folder)
    return files


def build_package(
    test: FinishedTest,
    out_dir: Path,
    *,
    base_image: str,
    base_image_id: str | None = None,
    now: datetime | float | None = None,
    extra_secrets: Iterable[str] = (),
    versions: Mapping[str, str] | None = None,
) -> PackageResult:
    """Write the deployment package of `test` into `out_dir` and describe it.

    base_image: the image the test ran on (the Dockerfile's default BASE_IMAGE);
    base_image_id: its id/digest, recorded in the README (the caller asks the engine);
    now: generation time (fixed in tests); extra_secrets: more values to scrub (e.g. AWS
    credentials resolved at run time); versions: {distribution: version} known from the test
    environment, used to pin unpinned requirements.
    """
    started = time.perf_counter()
    request = test.request
    secrets = secret_values(request, extra_secrets)
    # Every secret is removed from the text the test produced; the final pass over whole
    # files skips values too short to tell from ordinary words.
    context = package_context(
        test, base_image=base_image, base_image_id=base_image_id, now=now, versions=versions,
        redact_text=Redactor(secrets),
    )
    files = render_files(context, request.agent_code)
    warnings = scrub_files(files, request, secrets)
    top = context.naming.stem
    data = _zip(files, top, as_datetime(now))
    path = _write_atomically(Path(out_dir).expanduser() / f"{top}.zip", data)
    return PackageResult(
        path=path,
        size=len(data),
        files=_ordered(files),
        elapsed=time.perf_counter() - started,
        top_folder=top,
        image_name=context.naming.image_name,
        warnings=warnings,
    )


def _zip(files: Mapping[str, str], top: str, generated: datetime) -> bytes:
    """The zip of `files` under one `top` folder, every entry dated `generated`."""
    stamp = generated.timetuple()[:6]
    if stamp[0] < 1980:  # zip's epoch
        stamp = (1980, 1, 1, 0, 0, 0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in _ordered(files):
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ((0o755 if name in EXECUTABLE else 0o644) | 0o100000) << 16
            archive.writestr(info, files[name].encode("utf-8"))
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path


def _ordered(files: Mapping[str, str]) -> list[str]:
    return sorted(files, key=lambda n: (n.count("/"), n))
