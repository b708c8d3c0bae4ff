"""A local stand-in for Cloud SQL: the Admin API routes the connector calls, and the server-side TLS proxy.

Like the connector's own tests: ``connectSettings`` returns 127.0.0.1 and a test
CA; ``generateEphemeralCert`` signs the client's public key with that CA and
puts the email of the IAM identity behind the presented access token in the
certificate's common name. The TLS endpoint on 127.0.0.1:3307 (the port the
connector always dials) requires such a certificate, checks that the login's
user is that identity's IAM database user (as Cloud SQL IAM authentication
does: the email on PostgreSQL, a service account's without
``.gserviceaccount.com``; the part before ``@`` on MySQL), and relays:

- a PostgreSQL instance (``database_version`` POSTGRES_*) to the embedded
  PostgreSQL over its Unix socket, where the server trusts local connections;
- a MySQL instance (MYSQL_*) to a MariaDB server (``mysql_address``, the
  machine's 127.0.0.1:3306), where the IAM user exists without a password: the
  stand-in passes the server's greeting on, reads the client's handshake
  response and checks its user, switches the client to
  ``mysql_clear_password`` (as Cloud SQL does for IAM users) and checks that the
  password is empty (the token is in the certificate: automatic IAM
  authentication, what the connector sends) or a token of the certificate's
  identity, then forwards the handshake response to MariaDB and relays.

The IAM Credentials API's ``generateAccessToken`` is served too (for
impersonated service accounts): a known caller gets the token of a service
account listed in ``service_accounts`` (service account email -> its token),
which ``identities`` then maps back to the service account's email.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from google.auth import credentials as google_credentials
from joserfc import jwt

from sqlgate.identity.devissuer import DEV_ALGORITHM, DevIssuer

T = TypeVar("T")
PROXY_PORT = 3307
LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
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


class LoopThread:
    """An event loop in a thread, for the stand-in (the gateway has its own)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cloudsql-standin", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class TokenEndpoint:
    """Google's OAuth2 token endpoint as a service account's ``token_uri``: always the same token."""

    def __init__(self, token: str, *, expires_in: int = 3600) -> None:
        self.token = token
        self.expires_in = expires_in
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/token"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        self.calls += 1
        return web.json_response({"access_token": self.token, "expires_in": self.expires_in, "token_type": "Bearer"})


def service_account_file(path: Path, token_uri: str) -> Path:
    """A service-account key file (a fresh RSA key) whose tokens come from ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    info = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "1",
        "private_key": pem.decode(),
        "client_email": "gateway@proj.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return path


def token_with_email(settings: Any, user: str, email: str, groups: tuple[str, ...] = ("analysts",)) -> str:
    """A dev-issuer token of the gateway with ``settings`` that also carries ``email`` (the IAM identity)."""
    dev = DevIssuer.from_settings(settings)
    now = int(time.time())
    claims = {
        "iss": dev.url,
        "sub": user,
        "aud": dev.audience,
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "name": user,
        "email": email,
        "groups": list(groups),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode({"alg": DEV_ALGORITHM, "kid": dev.kid}, claims, dev.key, algorithms=[DEV_ALGORITHM])


class CloudSqlStandIn:
    """The Admin API on a free port plus the TLS proxy on 127.0.0.1:3307, in front of a Unix socket."""

    def __init__(
        self,
        pg_socket: Path | None,
        *,
        project: str,
        region: str,
        instance: str,
        identities: dict[str, str],
        mysql_address: tuple[str, int] | None = None,
        service_accounts: dict[str, str] | None = None,
    ):
        self.pg_socket = pg_socket
        self.mysql_address = mysql_address
        self.project, self.region, self.instance = project, region, instance
        self.identities = identities  # access token -> IAM email
        self.service_accounts = dict(service_accounts or {})  # service account email -> the token it gets
        for email, token in self.service_accounts.items():
            self.identities[token] = email
        self.impersonations: list[tuple[str, str]] = []  # (caller's email, service account)
        self.mysql_passwords: list[str] = []  # "empty" (automatic IAM authentication) or "token" (manual)
        self.database_version = "MYSQL_8_0" if pg_socket is None else "POSTGRES_16"  # what connectSettings reports
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
        app.router.add_post("/v1/projects/-/serviceAccounts/{account}", self._generate_access_token)
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

    async def _generate_access_token(self, request: web.Request) -> web.Response:
        """``serviceAccounts/{sa}:generateAccessToken``: the caller must be known, the account listed."""
        account = request.match_info["account"]
        if not account.endswith(":generateAccessToken"):
            return web.json_response({"error": {"message": "not found"}}, status=404)
        account = account.removesuffix(":generateAccessToken")
        self.requests.append("generateAccessToken")
        caller = self._authorised(request)
        if caller is None:
            return web.json_response({"error": {"message": "bad token"}}, status=401)
        body = await request.json()
        token = self.service_accounts.get(account)
        if token is None or LOGIN_SCOPE not in (body.get("scope") or []):
            return web.json_response({"error": {"message": f"{caller} may not impersonate {account}"}}, status=403)
        self.impersonations.append((caller, account))
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"accessToken": token, "expireTime": expires})

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
        if self.database_version.startswith("MYSQL"):
            await self._relay_mysql(client_reader, client_writer)
            return
        assert self.pg_socket is not None
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
            if identity is None or user != postgres_iam_user(identity):
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

    async def _relay_mysql(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Greeting from MariaDB to the client; the client's handshake response checked, then both ways."""
        assert self.mysql_address is not None
        server_writer: asyncio.StreamWriter | None = None
        try:
            identity = _common_name(client_writer.get_extra_info("peercert"))
            server_reader, server_writer = await asyncio.open_connection(*self.mysql_address)
            client_writer.write(await _read_mysql_packet(server_reader))
            response = await _read_mysql_packet(client_reader)
            user = _handshake_user(response)
            if identity is None or user != mysql_iam_user(identity):
                self.sessions.append(f"refused {user}")
                client_writer.write(_mysql_error(2, 1045, "28000", f"IAM user {user} does not match the certificate"))
                await client_writer.drain()
                return
            if not await self._clear_password(client_reader, client_writer, identity, user):
                return
            self.sessions.append(user)
            server_writer.write(response)
            answer = await _read_mysql_packet(server_reader)  # MariaDB's OK (seq 2), now after our two packets
            client_writer.write(answer[:3] + bytes((4,)) + answer[4:])
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass
        finally:
            if server_writer is not None:
                server_writer.close()
            client_writer.close()

    async def _clear_password(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: str, user: str
    ) -> bool:
        """Switch the client to mysql_clear_password, as Cloud SQL's IAM users do; its password checked.

        Empty is automatic IAM authentication (the token is in the certificate, what the connector sends);
        otherwise it must be a token of the certificate's identity (manual IAM authentication).
        """
        writer.write(_mysql_packet(2, b"\xfemysql_clear_password\x00" + secrets.token_bytes(20) + b"\x00"))
        reply = (await _read_mysql_packet(reader))[4:]
        password = reply.removesuffix(b"\x00").decode()
        if password and self.identities.get(password) != identity:
            self.sessions.append(f"refused password {user}")
            writer.write(_mysql_error(4, 1045, "28000", f"the password of {user} is not a token of its identity"))
            await writer.drain()
            return False
        self.mysql_passwords.append("token" if password else "empty")
        return True


def postgres_iam_user(email: str) -> str:
    """Cloud SQL for PostgreSQL's IAM database user: the email, a service account's without its suffix."""
    return email.removesuffix(".gserviceaccount.com")


def _mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


def mysql_iam_user(email: str) -> str:
    """Cloud SQL for MySQL's IAM database user: the email's part before ``@``."""
    return email.split("@", 1)[0]


async def _read_mysql_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return header + await reader.readexactly(int.from_bytes(header[:3], "little"))


def _handshake_user(packet: bytes) -> str:
    """The user of a HandshakeResponse41 (an SSLRequest, 32 bytes, has none: the stream is TLS already)."""
    payload = packet[4:]
    if len(payload) <= 32:
        raise ValueError("an SSLRequest inside the TLS stream")
    end = payload.index(b"\x00", 32)
    return payload[32:end].decode()


def _mysql_error(seq: int, code: int, sqlstate: str, message: str) -> bytes:
    payload = b"\xff" + code.to_bytes(2, "little") + b"#" + sqlstate.encode() + message.encode()
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


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
    pg_server: Any, *, token: str, iam_user: str, instance: str, service_accounts: dict[str, str] | None = None
) -> AsyncIterator[CloudSqlStandIn]:
    """A stand-in in front of the embedded server for one IAM identity, whose database role exists meanwhile.

    ``service_accounts`` (email -> token) may be impersonated; their IAM users' roles exist meanwhile too.
    Skips (with the reason) when the test server is not the embedded one or port 3307 is taken.
    """
    if not hasattr(pg_server, "root"):
        pytest.skip("the Cloud SQL stand-in relays to the embedded PostgreSQL's Unix socket")
    if not _port_free(PROXY_PORT):
        pytest.skip(f"the Cloud SQL connector always dials port {PROXY_PORT}, which is in use here")
    roles = [iam_user, *(postgres_iam_user(email) for email in service_accounts or {})]
    for role in roles:
        pg_server.psql(f'CREATE ROLE "{role}" LOGIN')
    server = CloudSqlStandIn(
        Path(pg_server.root) / f".s.PGSQL.{pg_server.port}",
        project="proj",
        region="europe-west1",
        instance=instance,
        identities={token: iam_user},
        service_accounts=service_accounts,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        for role in roles:
            pg_server.psql(f'DROP ROLE IF EXISTS "{role}"')


@contextlib.asynccontextmanager
async def running_mysql_standin(
    *,
    identities: dict[str, str],
    instance: str,
    mysql_address: tuple[str, int] = ("127.0.0.1", 3306),
    service_accounts: dict[str, str] | None = None,
) -> AsyncIterator[CloudSqlStandIn]:
    """A stand-in for a Cloud SQL for MySQL instance, in front of the MariaDB at ``mysql_address``.

    The IAM users (``mysql_iam_user`` of the identities' emails) are the caller's to create on MariaDB.
    Skips (with the reason) when port 3307 is taken.
    """
    if not _port_free(PROXY_PORT):
        pytest.skip(f"the Cloud SQL connector always dials port {PROXY_PORT}, which is in use here")
    server = CloudSqlStandIn(
        None,
        project="proj",
        region="europe-west1",
        instance=instance,
        identities=dict(identities),
        mysql_address=mysql_address,
        service_accounts=service_accounts,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
