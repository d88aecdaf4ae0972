"""Where a test's secret values live between submit and container start (R-18).

- The submitting client resolves them in the user's own process (AWS default chain, the user's
  OPENAI_API_KEY) and sends them with the request over the server's socket.
- The server takes them out of the request (`domain.strip_secrets`): the stored request keeps
  their names only. The values are sealed with Fernet (AES-128-CBC + HMAC-SHA256) under a key
  kept outside the store — the file `secrets_key_file` (default: state dir/secrets.key, mode
  0600, created on first use) — and the sealed blob is stored beside the test, so the test can
  wait in the queue, survive a server restart and be adopted by another process on this host.
- The orchestrator unseals them right before the container starts, gives them to the container's
  environment and registers each value with the test's Redactor.
- The blob is deleted when the test ends (any terminal state, dequeued, archived). A retry
  resolves the secrets again in the retrying user's process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from agenttui.core.errors import InfraError
from agenttui.core.paths import PRIVATE_FILE, private_dir, state_dir


class SecretsUnavailable(InfraError):
    """The sealed secrets of a test cannot be opened (key file replaced or unreadable)."""


class SecretBox:
    def __init__(self, key_file: Path):
        self.key_file = Path(key_file)
        self._fernet: Fernet | None = None

    def _key(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(_read_or_create_key(self.key_file))
        return self._fernet

    def seal(self, values: dict[str, str]) -> str:
        return self._key().encrypt(json.dumps(values, sort_keys=True).encode()).decode("ascii")

    def open(self, sealed: str) -> dict[str, str]:
        try:
            data = self._key().decrypt(sealed.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnavailable(
                f"the test's secrets cannot be decrypted with the key in {self.key_file} (was the key file "
                "replaced, or does another server with another key share this store?); submit the test again"
            ) from exc
        values = json.loads(data)
        return {str(k): str(v) for k, v in values.items()}


def _read_or_create_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        private_dir(path.parent, ours=path.parent == state_dir())
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
        except FileExistsError:  # another process created it first: use theirs
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
        return key
    except OSError as exc:
        raise SecretsUnavailable(f"cannot read the secrets key {path} (setting secrets_key_file): {exc}") from exc
    if path.stat().st_mode & 0o077:
        raise SecretsUnavailable(
            f"the secrets key {path} is readable by other users; `chmod 600 {path}` (setting secrets_key_file)"
        )
    return key
