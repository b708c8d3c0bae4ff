"""Test certificates and a gateway configured with them.

``make_ca`` makes a CA; ``issue`` a server certificate it signs. ``TlsGateway`` is the
demo gateway of ``tests/gateway.py`` with ``proxy.tls_cert_file``/``tls_key_file`` set
(as paths relative to its settings file) and any listen or ``api`` options a test names.
``own_address`` is this machine's first non-loopback IPv4 address, for tests that need a
client that is not on loopback (None when the machine has none).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sqlgate.config import load_settings
from sqlgate.server.run import start_gateway
from tests.gateway import RunningGateway
from tests.pgserver import PgServer


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate file and signing key."""

    cert_file: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_ca(directory: Path, name: str = "sqlgate test CA") -> Authority:
    """A self-signed CA written to ``directory/<name>.crt``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / (name.replace(" ", "-") + ".crt")
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert_file, cert, key)


def issue(ca: Authority, directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """A server certificate for ``hosts`` signed by ``ca``: (cert file, key file) in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return cert_file, key_file


class TlsGateway(RunningGateway):
    """The demo gateway with settings changed before it starts: ``listen`` addresses, ``api`` options, extra YAML.

    Listening off loopback needs ``--insecure-dev`` (the dev issuer mints the test tokens), which this passes.
    """

    def __init__(  # the parent's, with the settings file edited and --insecure-dev
        self,
        pg_server: PgServer,
        workdir: Path,
        policy: str,
        database: str,
        tag: str,
        *,
        listen: tuple[str, str] = ("127.0.0.1:0", "127.0.0.1:0"),
        api: str = "",
        extra: str = "",
    ) -> None:
        self.pg_server, self.workdir, self.database, self.tag = pg_server, workdir, database, tag
        self.roles = {"read": f"read_{tag}", "write": f"write_{tag}", "owner": f"owner_{tag}"}
        self.admin = f"admin_{tag}"
        self._prepare_database(policy)
        self._edit_settings(listen, api, extra)
        self.settings = load_settings(workdir / "sqlgate.yaml")
        self._start(start_gateway(self.settings, insecure_dev=True))

    def _edit_settings(self, listen: tuple[str, str], api: str, extra: str) -> None:
        path = self.workdir / "sqlgate.yaml"
        text = path.read_text().replace(
            "listen: {postgres: '127.0.0.1:0', http: '127.0.0.1:0'}",
            f"listen: {{postgres: '{listen[0]}', http: '{listen[1]}'}}",
        )
        text = re.sub(r"^api: \{", "api: {" + api + (", " if api else ""), text, flags=re.MULTILINE)
        path.write_text(text + extra)


def with_certificate(cert_file: Path, key_file: Path, base: Path, proxy: str = "") -> str:
    """The ``proxy:`` YAML line naming a certificate and key relative to ``base`` (the settings file's folder)."""
    options = f"tls_cert_file: {cert_file.relative_to(base)}, tls_key_file: {key_file.relative_to(base)}"
    return f"proxy: {{{options}{', ' + proxy if proxy else ''}}}\n"


def own_address() -> str | None:
    """The first non-loopback IPv4 address of this machine that can be bound (from ``hostname -I``)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in out.split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback and _bindable(word):
            return word
    return None


def _bindable(address: str) -> bool:
    try:
        with socket.socket() as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True
