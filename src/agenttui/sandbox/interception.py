"""TLS interception on the egress path: the forwarder reads inside an agent's HTTPS calls
(docs/recorder.md).

A CA of the server's own (`CertificateAuthority`: an EC key, mode 0600, in a 0700 folder of the
server user's data directory; it never enters a container) mints a certificate for each name the
sandbox reaches an endpoint at (the tunnel's `container_host`), kept in memory. `Interceptor`
terminates the agent's TLS with it and opens its own verified TLS connection to the endpoint,
trusting what the host trusts (the system's CAs, the host pip's bundle, `extra_ca_bundle`).
Between the two the forwarder carries the plain bytes unchanged (a SigV4 signature stays valid)
and hands a copy to the recorder, exactly as for plain HTTP. The container trusts the CA through
the bundle `container_bundle` builds (the host's CAs plus this CA's certificate), staged private
to that test.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fcntl
import ipaddress
import logging
import os
import socket
import ssl
import stat
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agenttui.sandbox.egress import Tunnel

log = logging.getLogger(__name__)

CA_KEY_FILE = "ca-key.pem"
CA_CERT_FILE = "ca.pem"
LOCK_FILE = ".lock"
FOLDER_MODE = 0o700
KEY_MODE = 0o600
CA_LIFETIME = datetime.timedelta(days=3650)
LEAF_LIFETIME = datetime.timedelta(days=7)
LEAF_RENEW_AFTER_S = 24 * 3600.0  # a long-running server mints a name's certificate again daily
HANDSHAKE_TIMEOUT_S = 10.0
ALPN = ["http/1.1"]  # the recorder reads HTTP/1.1; an HTTP/2 client falls back to it


class InterceptionError(Exception):
    """The CA cannot be made or read: the message names the file and the fix."""


def _private_folder(folder: Path) -> None:
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=FOLDER_MODE, parents=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise InterceptionError(f"{folder} is not a folder of this user's (uid {os.geteuid()}): remove it")
    if stat.S_IMODE(info.st_mode) != FOLDER_MODE:
        folder.chmod(FOLDER_MODE)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Written whole under a temporary name, then renamed: a reader never sees half a key."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".new-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _name_entry(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


class CertificateAuthority:
    """The server's interception CA, made on first use and kept in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.key_path = folder / CA_KEY_FILE
        self.cert_path = folder / CA_CERT_FILE
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._cert: x509.Certificate | None = None
        self._contexts: dict[str, tuple[float, ssl.SSLContext]] = {}  # host → (minted at, its context)
        self._lock = threading.Lock()
        self._minting = threading.Lock()

    @property
    def cert_pem(self) -> bytes:
        self._load()
        assert self._cert is not None
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def _load(self) -> None:
        if self._cert is not None:
            return
        with self._lock:
            if self._cert is not None:
                return
            try:
                _private_folder(self.folder)
                with open(self.folder / LOCK_FILE, "a") as lock:  # one maker among this user's processes
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    if not (self.key_path.exists() and self.cert_path.exists()):  # none yet, or half made
                        self._create()
                    self._read()
            except OSError as exc:
                raise InterceptionError(
                    f"cannot make or read agenttui's TLS interception CA in {self.folder}: {exc.strerror or exc}; "
                    "fix the folder's rights, or turn the setting tls_interception off") from exc
            except ValueError as exc:
                raise InterceptionError(
                    f"agenttui's TLS interception CA in {self.folder} cannot be read ({exc}): remove the folder "
                    "(a new CA is made), or turn the setting tls_interception off") from exc

    def _create(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agenttui"),
            x509.NameAttribute(NameOID.COMMON_NAME,
                               f"agenttui interception CA ({socket.gethostname()[:30]}, uid {os.geteuid()})"),
        ])
        now = datetime.datetime.now(datetime.timezone.utc)
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        _write_file(self.key_path, key_pem, KEY_MODE)  # the key first: a certificate never lacks its key
        _write_file(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _read(self) -> None:
        info = self.key_path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise ValueError(f"{self.key_path} is not a file of this user's")
        if stat.S_IMODE(info.st_mode) != KEY_MODE:
            self.key_path.chmod(KEY_MODE)
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("its key is not an EC key")
        self._key = key
        self._cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def cached_context(self, host: str) -> ssl.SSLContext | None:
        """The context already minted for `host` (no I/O), None when there is none or it is due."""
        cached = self._contexts.get(host)
        if cached is not None and time.monotonic() - cached[0] < LEAF_RENEW_AFTER_S:
            return cached[1]
        return None

    def server_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `host` signed by this CA."""
        self._load()
        with self._minting:
            now = time.monotonic()
            cached = self._contexts.get(host)
            if cached is not None and now - cached[0] < LEAF_RENEW_AFTER_S:
                return cached[1]
            context = self._mint(host)
            self._contexts[host] = (now, context)
            return context

    def _mint(self, host: str) -> ssl.SSLContext:
        assert self._key is not None and self._cert is not None
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + LEAF_LIFETIME)
            .add_extension(x509.SubjectAlternativeName([_name_entry(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(ALPN)
        # ssl loads a chain only from a file: a 0600 one in the CA's folder, gone once read.
        fd, path = tempfile.mkstemp(dir=self.folder, prefix=".leaf-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context


def upstream_context(trusted_pem: bytes | None) -> ssl.SSLContext:
    """The verified client side: the system's CAs plus `trusted_pem` (the host pip's bundle and
    `extra_ca_bundle`), host names checked."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(ALPN)
    if trusted_pem and b"-----BEGIN CERTIFICATE-----" in trusted_pem:
        try:
            context.load_verify_locations(cadata=trusted_pem.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            log.warning("TLS interception: the host's CA bundle cannot be loaded (%s); the system's CAs only", exc)
    return context


def container_bundle(ca: CertificateAuthority, trusted_pem: bytes | None) -> bytes:
    """What a container with intercepted endpoints trusts: the host's CAs, then agenttui's CA."""
    head = trusted_pem or b""
    if head and not head.endswith(b"\n"):
        head += b"\n"
    return head + ca.cert_pem


def describe_tls_error(exc: BaseException, host: str) -> str:
    """Why the verified connection to an endpoint failed, with the fix."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"the endpoint's TLS certificate is not trusted ({exc.verify_message}) for {host}: add its CA "
                "with the setting extra_ca_bundle, or turn tls_interception off")
    return f"TLS with the endpoint failed: {exc}"


class Interceptor:
    """Terminates an agent's TLS and opens the verified connection upstream (see the module's docstring)."""

    def __init__(self, ca: CertificateAuthority, trusted_pem: bytes | None):
        self.ca = ca
        self.trusted_pem = trusted_pem
        self._upstream: ssl.SSLContext | None = None

    @property
    def upstream(self) -> ssl.SSLContext:
        if self._upstream is None:
            self._upstream = upstream_context(self.trusted_pem)
        return self._upstream

    def bundle(self) -> bytes:
        return container_bundle(self.ca, self.trusted_pem)

    async def connect(self, tunnel: Tunnel, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The verified TLS connection to the tunnel's endpoint (its configured host name)."""
        return await asyncio.wait_for(asyncio.open_connection(
            tunnel.target_host, tunnel.target_port, ssl=self.upstream, server_hostname=tunnel.target_host,
            ssl_handshake_timeout=timeout), timeout + 1)

    async def accept(self, writer: asyncio.StreamWriter, tunnel: Tunnel) -> None:
        """Turn the agent's side of the connection into TLS, presenting a certificate for the
        name the sandbox reaches the endpoint at. Raises OSError/ssl.SSLError when the agent
        does not complete the handshake (it does not trust the CA, or hung up)."""
        context = self.ca.cached_context(tunnel.container_host) or await asyncio.to_thread(
            self.ca.server_context, tunnel.container_host)  # minting signs: off the event loop
        await writer.start_tls(context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
