"""What building a package gives back: the result, or the error naming what went wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class PackageError(Exception):
    """A package could not be generated (a template error names the template and line)."""


@dataclass(frozen=True)
class PackageResult:
    path: Path  # the zip; its file name alone until a client has written it (save_package)
    size: int  # bytes
    files: list[str]  # paths inside the zip, below its top folder
    elapsed: float  # seconds spent generating
    top_folder: str = ""
    image_name: str = ""  # what README/compose call the built image
    warnings: list[str] = field(default_factory=list)  # e.g. a secret scrubbed from agent.py
    # With the AWS backend: the zip's S3 key and a presigned URL valid 24 hours.
    url: str | None = None
    url_expires_at: float | None = None
    s3_key: str | None = None
