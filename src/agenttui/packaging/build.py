"""A finished test → its deployment package: render the templates, scrub secrets, zip them.

`render_package` writes nothing: the engine hands the zip's bytes to its caller, which writes
the file with its own rights (`save_package`), so a server never writes where a client points.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agenttui.core.providers import DEFAULT_OLLAMA_URL
from agenttui.core.redact import Redactor
from agenttui.harness import RUNNER_FILENAME, runner_source
from agenttui.packaging.context import PackageContext, as_datetime, package_context
from agenttui.packaging.result import PackageError, PackageResult
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


def build_package(test: FinishedTest, out_dir: Path, **options: Any) -> PackageResult:
    """Write the deployment package of `test` into `out_dir` (with this process's rights) and
    describe it; `options` are render_package's."""
    return save_package(*render_package(test, **options), Path(out_dir))


def render_package(
    test: FinishedTest,
    *,
    base_image: str,
    base_image_id: str | None = None,
    now: datetime | float | None = None,
    extra_secrets: Iterable[str] = (),
    versions: Mapping[str, str] | None = None,
    ollama_url: str = DEFAULT_OLLAMA_URL,
) -> tuple[PackageResult, bytes]:
    """The deployment package of `test`: its description (whose `path` is the zip's file name
    alone) and the zip's bytes. Writes nothing.

    base_image: the image the test ran on (the Dockerfile's default BASE_IMAGE);
    base_image_id: its id/digest, recorded in the README (the caller asks the engine);
    now: generation time (fixed in tests); extra_secrets: more values to scrub (e.g. AWS
    credentials resolved at run time); versions: {distribution: version} known from the test
    environment, used to pin unpinned requirements; ollama_url: the setting the test's Ollama
    was reached at (the package's .env.example points at the same port on the host).
    """
    started = time.perf_counter()
    request = test.request
    secrets = secret_values(request, extra_secrets)
    # Every secret is removed from the text the test produced; the final pass over whole
    # files skips values too short to tell from ordinary words.
    context = package_context(
        test, base_image=base_image, base_image_id=base_image_id, now=now, versions=versions,
        redact_text=Redactor(secrets), ollama_url=ollama_url,
    )
    files = render_files(context, request.agent_code)
    warnings = scrub_files(files, request, secrets)
    top = context.naming.stem
    data = _zip(files, top, as_datetime(now))
    result = PackageResult(
        path=Path(f"{top}.zip"),
        size=len(data),
        files=_ordered(files),
        elapsed=time.perf_counter() - started,
        top_folder=top,
        image_name=context.naming.image_name,
        warnings=warnings,
    )
    return result, data


def save_package(result: PackageResult, data: bytes, folder: Path) -> PackageResult:
    """`result`'s zip (`data`) written into `folder` with this process's rights: the result,
    with the zip's path. PackageError says what stands in the way."""
    return dataclasses.replace(result, path=write_zip(prepare_folder(folder), result.path.name, data))


def prepare_folder(folder: Path) -> Path:
    """`folder`, created (private) when missing; PackageError when the zip cannot go there."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise PackageError(f"{folder} is a file, not a folder: name the folder the zip is to be written into") from None
    except OSError as exc:
        raise PackageError(_cannot_write(folder, exc, "create the folder")) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PackageError(_cannot_write(folder, PermissionError(), "write into"))
    return folder


def write_zip(folder: Path, name: str, data: bytes) -> Path:
    """`data` as `folder/name`: written into a new file of a name nobody else chose (mkstemp:
    O_EXCL, O_NOFOLLOW, mode 600), then renamed over `name`, which replaces a link of that name
    instead of following it. `name` comes from the server: a plain file name, or refused."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise PackageError(f"refusing to write a package named {name!r}: not a plain file name")
    target = folder / name
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise PackageError(_cannot_write(folder, exc, "write into")) from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise PackageError(_cannot_write(target, exc, "write")) from None
    return target


def _cannot_write(path: Path, exc: OSError, doing: str) -> str:
    if isinstance(exc, PermissionError):
        return f"cannot {doing} {path}: permission denied; choose a folder you can write (-o, setting package_dir)"
    if isinstance(exc, IsADirectoryError):
        return f"cannot write {path}: a folder of that name is in the way; move it or choose another folder (-o)"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return f"cannot {doing} {path}: part of that path is a file, not a folder"
    return f"cannot {doing} {path}: {exc.strerror or exc}"


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


def _ordered(files: Mapping[str, str]) -> list[str]:
    return sorted(files, key=lambda n: (n.count("/"), n))
