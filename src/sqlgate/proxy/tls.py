"""TLS for both listeners, PostgreSQL and HTTP: the configured certificate, or a self-signed one in data_dir.

``proxy.tls_cert_file`` and ``proxy.tls_key_file`` name the certificate (with its chain)
and key; without them a self-signed certificate for localhost is made once into
``data_dir/tls`` and reused until it nears expiry. Clients must use TLS 1.2 or newer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sqlgate.config import Settings
from sqlgate.errors import ConfigError

SELF_SIGNED_DAYS = 365


def server_context(settings: Settings) -> ssl.SSLContext:
    """An SSLContext for clients: TLS 1.2+, the configured or a generated certificate."""
    cert, key = settings.proxy.tls_cert_file, settings.proxy.tls_key_file
    if (cert is None) != (key is None):
        raise ConfigError("proxy.tls_cert_file and proxy.tls_key_file must be set together")
    if cert is None or key is None:
        cert, key = ensure_self_signed(settings.data_dir / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert}: {exc}") from exc
    return context


def http_server_context(settings: Settings) -> ssl.SSLContext:
    """The HTTP listener's SSLContext: the PostgreSQL listener's certificate, offering HTTP/1.1 by ALPN."""
    context = server_context(settings)
    context.set_alpn_protocols(["http/1.1"])
    return context


def ensure_self_signed(
    directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
) -> tuple[Path, Path]:
    """A self-signed certificate for ``hosts`` in ``directory``, made once and reused until it nears expiry."""
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    if cert_path.exists() and key_path.exists() and not _expires_soon(cert_path):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sqlgate self-signed")])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _expires_soon(path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < dt.timedelta(days=7)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)
