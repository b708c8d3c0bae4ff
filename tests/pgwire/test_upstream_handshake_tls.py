"""SCRAM-SHA-256-PLUS against a real PostgreSQL with TLS: channel binding to the server certificate.

The embedded PostgreSQL wheel is built without SSL, so a throwaway server is started from
the system's PostgreSQL binaries (skipped when there are none) with a certificate made here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sqlgate.embedded import RUN_AS
from sqlgate.pgwire.backend import ReadyForQuery, decode_backend
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query, Terminate
from sqlgate.pgwire.upstream_handshake import (
    SSL_REQUEST,
    UpstreamHandshake,
    UpstreamLogin,
    UpstreamRefused,
    server_accepts_tls,
)


def certificate(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 (PEM) and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def system_postgres_bin() -> Path | None:
    """The newest Debian/Ubuntu PostgreSQL binaries (built with OpenSSL, unlike the embedded wheel)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def tls_server():
    """A throwaway PostgreSQL with TLS on (so SCRAM-SHA-256-PLUS is offered); yields (host, port, password, cert)."""
    bin_dir = system_postgres_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL built with SSL in /usr/lib/postgresql (Debian package postgresql)")
    run_as = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam(RUN_AS)
        except KeyError:
            pytest.skip(f"needs the unprivileged user {RUN_AS!r} to run PostgreSQL as (created by sqlgate.embedded)")
    root = Path(tempfile.mkdtemp(prefix="sqlgate-tls-pg-"))
    password = secrets.token_urlsafe(16)
    cert_pem, key_pem = certificate("sqlgate-test-db")
    files = {"pw": password.encode(), "server.crt": cert_pem, "server.key": key_pem}
    for name, content in files.items():
        (root / name).write_bytes(content)
        (root / name).chmod(0o600)
    if run_as is not None:
        for path in (root, *root.iterdir()):
            os.chown(path, run_as.pw_uid, run_as.pw_gid)

    def run(*argv: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        user = {"user": run_as.pw_name} if run_as is not None else {}
        subprocess.run(argv, check=True, capture_output=True, env=env, cwd=root, **user)

    port = free_port()
    pgdata = root / "pgdata"
    run(
        str(bin_dir / "initdb"),
        "-D",
        str(pgdata),
        "-U",
        "postgres",
        f"--pwfile={root / 'pw'}",
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    )
    options = (
        f"-h 127.0.0.1 -p {port} -k {root} -c ssl=on -c ssl_cert_file={root / 'server.crt'} "
        f"-c ssl_key_file={root / 'server.key'} -c fsync=off"
    )
    try:
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "30",
            "-l",
            str(root / "log"),
            "-o",
            options,
            "start",
        )
        yield "127.0.0.1", port, password, cert_pem
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_login(server, login_for):
    """SSLRequest, TLS verified against the test certificate, then the handshake; returns (handshake, socket)."""
    host, port, _, cert_pem = server
    raw = socket.create_connection((host, port), timeout=30)
    raw.sendall(SSL_REQUEST)
    assert server_accepts_tls(raw.recv(1))
    context = ssl.create_default_context(cadata=cert_pem.decode())
    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        der = sock.getpeercert(binary_form=True)
        hs = UpstreamHandshake(login_for(der))
        sock.sendall(hs.start())
        while not hs.done:
            for action in hs.receive(sock.recv(65536)):
                sock.sendall(action.data)
    except BaseException:
        sock.close()
        raise
    return hs, sock


def test_channel_bound_scram_login(tls_server):
    """The server offers -PLUS over TLS; the binding to its certificate checks out and the session works."""
    password = tls_server[2]
    hs, sock = tls_login(
        tls_server, lambda der: UpstreamLogin("postgres", "postgres", password, server_certificate=der)
    )
    try:
        assert hs._scram is not None
        assert hs._scram.mechanism == "SCRAM-SHA-256-PLUS"
        sock.sendall(Query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").encode())
        framer, messages = Framer("backend"), []
        framer.feed(hs.framer.take_buffered())
        while not messages or not isinstance(messages[-1], ReadyForQuery):
            messages += [decode_backend(f.type, f.payload) for f in framer.split(sock.recv(65536))]
        assert messages[1].values == (b"t",)
        sock.sendall(Terminate().encode())
    finally:
        sock.close()


def test_binding_to_another_certificate_is_refused(tls_server):
    """A man in the middle presenting its own certificate cannot complete a channel-bound login."""
    password = tls_server[2]
    other = x509.load_pem_x509_certificate(certificate("mitm")[0]).public_bytes(serialization.Encoding.DER)
    with pytest.raises(UpstreamRefused) as caught:
        tls_login(tls_server, lambda _der: UpstreamLogin("postgres", "postgres", password, server_certificate=other))
    assert caught.value.server_sqlstate == "28000"
    assert "channel binding" in caught.value.error.message
