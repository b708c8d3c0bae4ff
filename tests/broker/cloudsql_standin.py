"""A local stand-in for Cloud SQL: the Admin API routes the connector calls, and the server-side TLS proxy.

Like the connector's own tests: ``connectSettings`` returns 127.0.0.1 and a test
CA; ``generateEphemeralCert`` signs the client's public key with that CA and
puts the email of the IAM identity behind the presented access token in the
certificate's common name. The TLS endpoint on 127.0.0.1:3307 (the port the
connector always dials) requires such a certificate, checks that the startup
message's user is that identity (as Cloud SQL IAM authentication does), and
relays to the embedded PostgreSQL over its Unix socket, where the server
trusts local connections, so no password is involved anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.auth import credentials as google_credentials

PROXY_PORT = 3307
CANCEL_REQUEST = struct.pack("!I", 80877102)


class StaticToken(google_credentials.Credentials):
    """A google-auth credential that always holds the same (fake) OAuth2 access token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.refresh(None)

    def refresh(self, request) -> None:
        del request
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)


class TestCA:
    """A throwaway certificate authority."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sqlgate test Cloud SQL CA")])
        self.cert = (
            self._builder(name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, public_key) -> x509.Certificate:
        """A leaf certificate for ``public_key`` signed by this CA."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._builder(subject, public_key).sign(self.key, hashes.SHA256())

    def _builder(self, subject: x509.Name, public_key) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        issuer = self.cert.subject if hasattr(self, "cert") else subject
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
        )


class CloudSqlStandIn:
    """The Admin API on a free port plus the TLS proxy on 127.0.0.1:3307, in front of a Unix socket."""

    def __init__(self, pg_socket: Path, *, project: str, region: str, instance: str, identities: dict[str, str]):
        self.pg_socket = pg_socket
        self.project, self.region, self.instance = project, region, instance
        self.identities = identities  # access token -> IAM email
        self.database_version = "POSTGRES_16"  # what connectSettings reports
        self.ca = TestCA()
        self.requests: list[str] = []
        self.sessions: list[str] = []
        self._runner: web.AppRunner | None = None
        self._proxy: asyncio.Server | None = None
        self._tmp = tempfile.TemporaryDirectory()
        self.endpoint = ""

    @property
    def connection_name(self) -> str:
        return f"{self.project}:{self.region}:{self.instance}"

    async def start(self) -> None:
        self._proxy = await asyncio.start_server(self._relay, "127.0.0.1", PROXY_PORT, ssl=self._server_tls())
        app = web.Application()
        base = "/sql/v1beta4/projects/{project}/instances/{instance:[^/:]+}"
        app.router.add_get(base + "/connectSettings", self._connect_settings)
        app.router.add_post(base + ":generateEphemeralCert", self._ephemeral_cert)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            await self._proxy.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()
        self._tmp.cleanup()

    # -- Admin API -------------------------------------------------------------

    def _authorised(self, request: web.Request) -> str | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return self.identities.get(token)

    async def _connect_settings(self, request: web.Request) -> web.Response:
        self.requests.append("connectSettings")
        if self._authorised(request) is None:
            return web.json_response({"error": {"message": "bad token"}}, status=401)
        return web.json_response(
            {
                "kind": "sql#connectSettings",
                "region": self.region,
                "databaseVersion": self.database_version,
                "backendType": "SECOND_GEN",
                "ipAddresses": [{"type": "PRIMARY", "ipAddress": "127.0.0.1"}],
                "serverCaCert": {"cert": self.ca.pem},
            }
        )

    async def _ephemeral_cert(self, request: web.Request) -> web.Response:
        self.requests.append("generateEphemeralCert")
        body = await request.json()
        email = self.identities.get(body.get("access_token", ""))
        if self._authorised(request) is None or email is None:
            return web.json_response({"error": {"message": "bad token"}}, status=401)
        public_key = serialization.load_pem_public_key(body["public_key"].encode())
        cert = self.ca.issue(email, public_key)
        return web.json_response({"ephemeralCert": {"cert": cert.public_bytes(serialization.Encoding.PEM).decode()}})

    # -- server-side proxy -----------------------------------------------------

    def _server_tls(self) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.ca.issue(self.connection_name, key.public_key())
        tmp = Path(self._tmp.name)
        (tmp / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (tmp / "ca.pem").write_text(self.ca.pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
        context.load_verify_locations(tmp / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            identity = _common_name(client_writer.get_extra_info("peercert"))
            startup = await _read_startup(client_reader)
            if startup[4:8] == CANCEL_REQUEST and identity is not None:  # from a client with a certificate
                self.sessions.append("cancel")
                _server_reader, server_writer = await asyncio.open_unix_connection(str(self.pg_socket))
                server_writer.write(startup)
                await server_writer.drain()
                server_writer.close()
                return
            user = _startup_user(startup)
            if user != identity:
                self.sessions.append(f"refused {user}")
                return
            self.sessions.append(user)
            server_reader, server_writer = await asyncio.open_unix_connection(str(self.pg_socket))
            server_writer.write(startup)
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            client_writer.close()


def _common_name(peercert: dict | None) -> str | None:
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


async def _read_startup(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    (length,) = struct.unpack("!I", header)
    return header + await reader.readexactly(length - 4)


def _startup_user(startup: bytes) -> str | None:
    fields = startup[8:].split(b"\x00")
    pairs = dict(zip(fields[0::2], fields[1::2], strict=False))
    user = pairs.get(b"user")
    return None if user is None else user.decode()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # as asyncio.start_server binds: connections of an earlier stand-in left in TIME_WAIT do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def running_standin(
    pg_server: Any, *, token: str, iam_user: str, instance: str
) -> AsyncIterator[CloudSqlStandIn]:
    """A stand-in in front of the embedded server for one IAM identity, whose database role exists meanwhile.

    Skips (with the reason) when the test server is not the embedded one or port 3307 is taken.
    """
    if not hasattr(pg_server, "root"):
        pytest.skip("the Cloud SQL stand-in relays to the embedded PostgreSQL's Unix socket")
    if not _port_free(PROXY_PORT):
        pytest.skip(f"the Cloud SQL connector always dials port {PROXY_PORT}, which is in use here")
    pg_server.psql(f'CREATE ROLE "{iam_user}" LOGIN')
    server = CloudSqlStandIn(
        Path(pg_server.root) / f".s.PGSQL.{pg_server.port}",
        project="proj",
        region="europe-west1",
        instance=instance,
        identities={token: iam_user},
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        pg_server.psql(f'DROP ROLE IF EXISTS "{iam_user}"')
