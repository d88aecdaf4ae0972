"""The CAs image builds and containers trust: the bundle the host's pip verifies with, found
as pip finds it, plus the `extra_ca_bundle` setting's. Behind a TLS-intercepting proxy whose CA
the host already trusts, a build then installs requirements with no setting at all.

pip's order, first found wins: the PIP_CERT variable; `cert` in pip's configuration files
([install] before [global]; PIP_CONFIG_FILE, then the site, user and global files); then what
pip's HTTP stack reads from the environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, OpenSSL's
SSL_CERT_FILE); else the system bundle.
"""

from __future__ import annotations

import configparser
import logging
import os
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agenttui.core.config import Settings
from agenttui.core.errors import ConfigurationError

log = logging.getLogger(__name__)

PIP_CONFIG_NAME = "pip.conf"
SYSTEM_CONFIG_DIR = Path("/etc")  # pip reads /etc/pip.conf after the XDG_CONFIG_DIRS ones
# pip install reads its [install] section over [global].
PIP_CERT_KEYS = ("install.cert", "global.cert")
# What requests (pip's HTTP library) and OpenSSL read, in requests' order.
ENVIRONMENT_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
# Where distributions keep the system bundle, when Python's OpenSSL names none that exists.
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine
)
EXTRA_SETTING = "the setting extra_ca_bundle / AGENTTUI_EXTRA_CA_BUNDLE"


@dataclass(frozen=True)
class CaSource:
    """A CA bundle and where it was named."""

    path: Path
    origin: str

    def __str__(self) -> str:
        return f"{self.path} ({self.origin})"


def pip_config_files(environ: Mapping[str, str], home: Path, prefix: Path) -> list[Path]:
    """pip's configuration files, the lowest precedence first: the global ones, the user's, the
    site's (the running Python's), then PIP_CONFIG_FILE's. None when that is os.devnull."""
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return []
    xdg_dirs = [d for d in environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep) if d] or ["/etc/xdg"]
    files = [Path(d) / "pip" / PIP_CONFIG_NAME for d in xdg_dirs] + [SYSTEM_CONFIG_DIR / PIP_CONFIG_NAME]
    if not (named and Path(named).exists()):  # a PIP_CONFIG_FILE that exists replaces the user's
        config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
        files += [home / ".pip" / PIP_CONFIG_NAME, config_home / "pip" / PIP_CONFIG_NAME]
    files.append(prefix / PIP_CONFIG_NAME)
    if named:
        files.append(Path(named))
    return files


def _pip_config_cert(files: list[Path]) -> CaSource | None:
    """The `cert` pip install would read from `files` (a later file overrides an earlier one)."""
    found: dict[str, CaSource] = {}
    for file in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(file, encoding="utf-8")
        except (OSError, configparser.Error, UnicodeDecodeError) as exc:
            log.warning("cannot read pip's configuration %s: %s", file, exc)
            continue
        for key in PIP_CERT_KEYS:
            section, option = key.split(".")
            value = parser.get(section, option, fallback="").strip()
            if value:
                found[key] = CaSource(Path(value).expanduser(), f"cert in [{section}] of {file}")
    return next((found[key] for key in PIP_CERT_KEYS if key in found), None)


def _system_bundle() -> CaSource | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.openssl_cafile, *SYSTEM_BUNDLES):
        if candidate and Path(candidate).is_file():
            return CaSource(Path(candidate), "the system's CA bundle")
    return None


def _usable(source: CaSource | None) -> bool:
    if source is None:
        return False
    if source.path.is_file() and os.access(source.path, os.R_OK):
        return True
    log.warning("the CA bundle %s is not a readable file: looking further", source)
    return False


def host_pip_bundle(
    environ: Mapping[str, str] | None = None, home: Path | None = None, prefix: Path | None = None
) -> CaSource | None:
    """The CA bundle the host's pip verifies with (see the module's docstring for the order)."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    prefix = Path(sys.prefix) if prefix is None else prefix
    candidates = [
        CaSource(Path(environ["PIP_CERT"]).expanduser(), "PIP_CERT") if environ.get("PIP_CERT") else None,
        _pip_config_cert(pip_config_files(environ, home, prefix)),
        *(CaSource(Path(environ[name]), name) for name in ENVIRONMENT_BUNDLES if environ.get(name)),
    ]
    return next((source for source in candidates if _usable(source)), None) or _system_bundle()


class TrustedCAs:
    """What builds and containers trust: the host pip's bundle, then `extra_ca_bundle`'s on top.
    Found once (an engine's start); the files are read again only when one of them changes."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None):
        host = host_pip_bundle(environ)
        extra = settings.extra_ca_bundle
        self.sources = tuple(
            source for source in (
                CaSource(host.path, f"the host pip's CA bundle: {host.origin}") if host else None,
                CaSource(Path(extra), EXTRA_SETTING) if extra is not None else None,
            ) if source is not None
        )
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._data: bytes | None = None

    def describe(self) -> str:
        """The bundles trusted, each with where it was named (for messages)."""
        return " + ".join(map(str, self.sources)) or "only the image's own CAs (no CA bundle found on the host)"

    def bundle(self) -> bytes | None:
        """The PEM bundle to give a build or a container; None when there is none."""
        if not self.sources:
            return None
        try:
            stamp = tuple((info.st_mtime_ns, info.st_size) for info in (s.path.stat() for s in self.sources))
            if stamp != self._stamp:
                parts = [source.path.read_bytes() for source in self.sources]
                self._data = b"".join(part if part.endswith(b"\n") else part + b"\n" for part in parts)
                self._stamp = stamp
        except OSError as exc:
            raise ConfigurationError(f"cannot read the CA bundle {exc.filename} ({self.describe()}): {exc.strerror}") from exc
        return self._data
