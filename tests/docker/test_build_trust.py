"""Image builds trust what the host's pip trusts (backends/docker/host_trust.py), through this
machine's TLS-intercepting proxy, with no setting; a certificate they cannot verify ends the test
at once as a set-up to fix, naming the bundle and the setting. Through the installed command."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.docker

AGENT = "import six\n\n\ndef run(query):\n    return 'six ' + six.__version__ + ': ' + query\n"
IMAGE_RE = re.compile(r"agenttui-env:[0-9a-f]{20}")


def fresh_requirements() -> str:
    """six, under a marker no other run shares: a new image key, so the build really runs."""
    return f'six==1.17.0 ; platform_release != "agenttui-{uuid.uuid4().hex}"\n'


def unrelated_ca(path) -> None:
    """A self-made CA that signed nothing the proxy shows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agenttui test CA nobody uses")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def submit(cli, tmp_path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "agent.py").write_text(AGENT)
    (tmp_path / "requirements.txt").write_text(fresh_requirements())
    result = cli("submit", str(tmp_path / "agent.py"), "-q", "through the proxy", "-r",
                 str(tmp_path / "requirements.txt"), "--egress", "none", "--json", timeout=300, env=env)
    try:
        return result, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}") from None


def remove_images(log: str) -> None:
    for image in set(IMAGE_RE.findall(log)):
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def test_a_build_trusts_what_the_hosts_pip_trusts(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTTUI_EXTRA_CA_BUNDLE", raising=False)  # no setting: the host's trust only
    result, view = submit(cli, tmp_path)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert view["status"] == "COMPLETED" and view["attempt"] == 1
        assert view["response"] == "six 1.17.0: through the proxy"
        assert re.search(r"image agenttui-env:[0-9a-f]{20} built in", result.stderr), result.stderr[-2000:]
    finally:
        remove_images(result.stderr)


def test_an_untrusted_certificate_is_not_retried_and_names_the_fix(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTTUI_EXTRA_CA_BUNDLE", raising=False)
    wrong = tmp_path / "wrong-ca.pem"
    unrelated_ca(wrong)
    result, view = submit(cli, tmp_path, env={"PIP_CERT": str(wrong), "AGENTTUI_MAX_ATTEMPTS": "3"})
    remove_images(result.stderr)
    assert result.returncode == 3, result.stderr[-3000:]
    assert (view["status"], view["failure_kind"], view["attempt"]) == ("FAILED", "infra", 1)
    error = view["error"]
    assert "not retried" in error and "certificate verify failed" in error
    assert f"{wrong} (the host pip's CA bundle: PIP_CERT)" in error
    assert "extra_ca_bundle / AGENTTUI_EXTRA_CA_BUNDLE" in error
    assert "retrying in" not in result.stderr
