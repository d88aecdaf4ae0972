"""The CA bundle the host's pip trusts, found in pip's own order, and what builds and containers
get from it (backends/docker/host_trust.py): real files, each source shadowing the next."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agenttui.backends.docker import host_trust
from agenttui.backends.docker.host_trust import TrustedCAs, host_pip_bundle, pip_config_files
from agenttui.backends.docker.images import classify_build_failure
from agenttui.core.config import load_settings
from agenttui.core.errors import ConfigurationError, InfraError

@pytest.fixture
def host(tmp_path, monkeypatch):
    """An empty host: no pip configuration, no variables, a known system bundle."""
    system = tmp_path / "system.pem"
    system.write_text("SYSTEM\n")
    monkeypatch.setattr(host_trust, "SYSTEM_BUNDLES", (str(system),))
    monkeypatch.setattr(host_trust, "SYSTEM_CONFIG_DIR", tmp_path / "etc")
    monkeypatch.setattr(host_trust.ssl, "get_default_verify_paths", lambda: _Paths(None))
    xdg = tmp_path / "xdg"
    return {
        "environ": {"XDG_CONFIG_DIRS": str(xdg), "XDG_CONFIG_HOME": str(tmp_path / "config")},
        "home": tmp_path / "home",
        "prefix": tmp_path / "venv",
        "root": tmp_path,
        "system": system,
    }


class _Paths:
    def __init__(self, openssl_cafile):
        self.openssl_cafile = openssl_cafile


def pem(root: Path, name: str) -> Path:
    path = root / f"{name}.pem"
    path.write_text(f"{name}\n")
    return path


def pip_conf(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def found(host) -> tuple[Path, str] | None:
    source = host_pip_bundle(host["environ"], host["home"], host["prefix"])
    return None if source is None else (source.path, source.origin)


def test_pip_reads_its_config_files_in_its_order(host):
    env, home, prefix = host["environ"], host["home"], host["prefix"]
    xdg = Path(env["XDG_CONFIG_DIRS"])
    assert pip_config_files(env, home, prefix) == [
        xdg / "pip/pip.conf", host["root"] / "etc/pip.conf", home / ".pip/pip.conf",
        Path(env["XDG_CONFIG_HOME"]) / "pip/pip.conf", prefix / "pip.conf",
    ]
    named = pip_conf(host["root"] / "named.conf", "")
    with_named = pip_config_files({**env, "PIP_CONFIG_FILE": str(named)}, home, prefix)
    assert with_named[-1] == named and home / ".pip/pip.conf" not in with_named  # pip skips the user's
    assert pip_config_files({**env, "PIP_CONFIG_FILE": os.devnull}, home, prefix) == []


def test_each_source_shadows_the_next(host):
    root, env = host["root"], host["environ"]
    assert found(host) == (host["system"], "the system's CA bundle")
    for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):  # requests' order, then OpenSSL's
        env[name] = str(pem(root, name))
        assert found(host) == (root / f"{name}.pem", name)
    xdg_conf = pip_conf(Path(env["XDG_CONFIG_DIRS"]) / "pip/pip.conf", f"[global]\ncert = {pem(root, 'xdg')}\n")
    assert found(host) == (root / "xdg.pem", f"cert in [global] of {xdg_conf}")
    env["XDG_CONFIG_HOME"] = str(host["home"] / ".config")
    user_conf = pip_conf(host["home"] / ".config/pip/pip.conf", f"[global]\ncert = {pem(root, 'user')}\n")
    assert found(host) == (root / "user.pem", f"cert in [global] of {user_conf}")
    # [install] beats [global] whichever file holds it.
    install = pip_conf(host["prefix"] / "pip.conf", f"[install]\ncert = {pem(root, 'site')}\n")
    assert found(host) == (root / "site.pem", f"cert in [install] of {install}")
    env["PIP_CERT"] = str(pem(root, "pip_cert"))
    assert found(host) == (root / "pip_cert.pem", "PIP_CERT")


def test_a_named_bundle_that_is_missing_is_passed_over(host, caplog):
    env = host["environ"]
    env["PIP_CERT"] = str(host["root"] / "gone.pem")
    env["SSL_CERT_FILE"] = str(pem(host["root"], "openssl"))
    assert found(host) == (host["root"] / "openssl.pem", "SSL_CERT_FILE")
    assert "gone.pem (PIP_CERT) is not a readable file" in caplog.text


def test_a_pip_cert_with_a_tilde_is_the_users(host, monkeypatch):
    home = host["home"]
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    mine = pem(home, "mine")
    pip_conf(home / ".pip/pip.conf", "[global]\ncert = ~/mine.pem\n")
    assert found(host) == (mine, f"cert in [global] of {home / '.pip/pip.conf'}")


def test_no_bundle_anywhere(host, monkeypatch):
    monkeypatch.setattr(host_trust, "SYSTEM_BUNDLES", ())
    assert found(host) is None


def test_the_setting_is_added_on_top_and_a_change_is_read_again(monkeypatch, tmp_path):
    host_bundle = pem(tmp_path, "host")
    extra = tmp_path / "extra.pem"
    extra.write_bytes(b"EXTRA")  # no final newline: the join adds one
    monkeypatch.setenv("PIP_CERT", str(host_bundle))
    monkeypatch.setenv("AGENTTUI_EXTRA_CA_BUNDLE", str(extra))
    trusted = TrustedCAs(load_settings())
    assert trusted.bundle() == b"host\nEXTRA\n"
    assert trusted.describe() == (
        f"{host_bundle} (the host pip's CA bundle: PIP_CERT) + "
        f"{extra} (the setting extra_ca_bundle / AGENTTUI_EXTRA_CA_BUNDLE)"
    )
    first = trusted.bundle()
    assert trusted.bundle() is first  # unchanged files: not read again
    extra.write_bytes(b"ROTATED CA\n")
    assert trusted.bundle() == b"host\nROTATED CA\n"
    extra.unlink()
    with pytest.raises(ConfigurationError, match=f"cannot read the CA bundle {extra}"):
        trusted.bundle()


TLS_TAIL = [
    "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection "
    "broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
    "failed: self-signed certificate in certificate chain (_ssl.c:992)'))': /simple/six/",
    "Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming the ssl certificate: "
    "HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: /simple/six/",
    "ERROR: No matching distribution found for six==1.17.0",
]


def test_an_untrusted_certificate_is_a_configuration_error_with_the_fix():
    error = classify_build_failure("returned a non-zero code: 1", TLS_TAIL, False, "/x/ca.pem (PIP_CERT)")
    assert isinstance(error, ConfigurationError)
    message = str(error)
    assert "certificate verify failed" in message and "/x/ca.pem (PIP_CERT)" in message
    assert "extra_ca_bundle / AGENTTUI_EXTRA_CA_BUNDLE" in message
    custom = classify_build_failure("returned a non-zero code: 1", TLS_TAIL, True, "/x/ca.pem (PIP_CERT)")
    assert isinstance(custom, ConfigurationError) and "COPY" in str(custom)
    # A proxy that drops the connection is the network's: retried.
    dropped = ["Could not fetch URL https://pypi.org/simple/six/: There was a problem confirming the ssl "
               "certificate: SSLError(SSLEOFError(8, 'EOF occurred in violation of protocol'))"]
    flaky = classify_build_failure("returned a non-zero code: 1", dropped, False, "/x/ca.pem (PIP_CERT)")
    assert isinstance(flaky, InfraError) and not isinstance(flaky, ConfigurationError)
