"""Relayed connections to Cloud SQL for PostgreSQL: the connector's way in, as a raw TLS byte stream.

``cloud-sql-python-connector`` opens connections only as driver objects (asyncpg,
pg8000, ...); its public surface (``Connector``, ``IPTypes``, ``RefreshStrategy``,
the resolvers) gives no byte stream a relay could own, and the pieces that would
(``ConnectionInfo``, ``CloudSQLClient``, ``LazyRefreshCache``) are internals. So
this module does what the connector does, in a few calls, for the PostgreSQL
listener:

- ``GET .../instances/{instance}/connectSettings``: the instance's IP addresses
  (PRIMARY preferred, then PRIVATE), its database version and server CA;
- ``POST .../instances/{instance}:generateEphemeralCert`` with an RSA-2048 public
  key made once per dialer and, for automatic IAM database authentication, the
  ``access_token`` (down-scoped to ``sqlservice.login``): the client certificate;
- TLS 1.3 straight to the instance's server-side proxy on port 3307 (no
  SSLRequest, as the connector's ``direct_tls``), the client certificate
  presented, the server's checked against the instance's CA (not its host name,
  as the connector does); then the ordinary PostgreSQL login as the IAM
  database user, with no password;
- the certificate is good until it, or the access token in it, expires; it is
  fetched again 4 minutes before that (the connector's lazy refresh) and at once
  after a failed connection.

The gateway's Google credentials come from Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server, ...), as for the broker's
connector. A cancel request for a relayed session goes to the instance the same
way: a new TLS connection with the certificate the session's connection used.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlgate.errors import UpstreamError
from sqlgate.pgwire import UpstreamHandshake, UpstreamLogin
from sqlgate.pgwire.startup import CancelRequest
from sqlgate.proxy.upstream import CONNECT_TIMEOUT, Upstream, UpstreamProtocol

if TYPE_CHECKING:
    import aiohttp

    from sqlgate.config import DatabaseConfig

log = logging.getLogger(__name__)

ADMIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.admin"
LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
DEFAULT_ENDPOINT = "https://sqladmin.googleapis.com"
API_VERSION = "v1beta4"
SERVER_PROXY_PORT = 3307
REFRESH_BUFFER = timedelta(minutes=4)
IP_PREFERENCE = ("PRIMARY", "PRIVATE")


@dataclass(frozen=True)
class InstanceName:
    """``project:region:instance``, split."""

    project: str
    region: str
    instance: str

    @classmethod
    def parse(cls, value: str) -> InstanceName:
        """Split a connection name (a domain-scoped project, ``example.com:proj``, keeps its colon)."""
        parts = value.rsplit(":", 2)
        if len(parts) != 3 or not all(parts):
            raise UpstreamError(f"instance_connection_name {value!r} is not project:region:instance")
        return cls(*parts)

    def url(self, endpoint: str, action: str) -> str:
        """The Admin API URL of ``action`` (``/connectSettings`` or ``:generateEphemeralCert``)."""
        return f"{endpoint.rstrip('/')}/sql/{API_VERSION}/projects/{self.project}/instances/{self.instance}{action}"


@dataclass(frozen=True)
class InstanceSettings:
    """What ``connectSettings`` says about the instance."""

    ip: str
    database_version: str
    server_ca_pem: str


def parse_connect_settings(name: str, body: dict[str, Any]) -> InstanceSettings:
    """The preferred IP, the database version and the server CA from a ``connectSettings`` answer."""
    addresses = {a.get("type"): a.get("ipAddress") for a in body.get("ipAddresses") or [] if isinstance(a, dict)}
    ip = next((addresses[kind] for kind in IP_PREFERENCE if addresses.get(kind)), None)
    ca = (body.get("serverCaCert") or {}).get("cert")
    version = body.get("databaseVersion")
    if not ip:
        raise UpstreamError(f"Cloud SQL instance {name} has no public or private IP address")
    if not isinstance(ca, str) or not isinstance(version, str):
        raise UpstreamError(f"the Cloud SQL Admin API sent no server CA or database version for {name}")
    return InstanceSettings(ip, version, ca)


def certificate_expiry(cert_pem: str, token_expiry: datetime | None) -> datetime:
    """When an ephemeral certificate stops working: its own end, or the IAM token's in it if sooner."""
    from cryptography import x509  # noqa: PLC0415 - only the Cloud SQL path needs it

    expires = x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc
    if token_expiry is not None:
        expires = min(expires, token_expiry if token_expiry.tzinfo else token_expiry.replace(tzinfo=UTC))
    return expires


def client_context(server_ca_pem: str, cert_pem: str, key_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 with the ephemeral client certificate; the server verified against the instance's CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the instance's certificate names project:instance, not its IP
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=server_ca_pem)
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads only files
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_text(cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True)
class ConnectInfo:
    """Where and how to open TLS to the instance, until ``expires_at``."""

    settings: InstanceSettings
    context: ssl.SSLContext
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        """True while more than the refresh buffer is left."""
        return now < self.expires_at - REFRESH_BUFFER


def _new_key() -> tuple[bytes, str]:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


class CloudSqlDialer:
    """Ephemeral certificates and TLS connections for one Cloud SQL instance, on one event loop."""

    def __init__(self, instance_connection_name: str, *, endpoint: str | None = None, credentials: Any = None) -> None:
        self.name = instance_connection_name
        self.instance = InstanceName.parse(instance_connection_name)
        self.endpoint = endpoint or DEFAULT_ENDPOINT
        self._credentials = credentials
        self._key: tuple[bytes, str] | None = None
        self._info: ConnectInfo | None = None
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    async def connect_info(self) -> ConnectInfo:
        """The cached connection info, fetched again when less than 4 minutes of it are left."""
        async with self._lock:
            if self._info is None or not self._info.fresh(datetime.now(UTC)):
                self._info = await self._refresh()
            return self._info

    def invalidate(self) -> None:
        """Fetch a new certificate before the next connection (after one failed)."""
        self._info = None

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _refresh(self) -> ConnectInfo:
        if self._key is None:
            self._key = await asyncio.to_thread(_new_key)
        private, public = self._key
        admin_token, login_token, token_expiry = await asyncio.to_thread(self._tokens)
        headers = {"Authorization": f"Bearer {admin_token}"}
        body = await self._call("GET", "/connectSettings", headers, None)
        settings = parse_connect_settings(self.name, body)
        answer = await self._call(
            "POST", ":generateEphemeralCert", headers, {"public_key": public, "access_token": login_token}
        )
        cert = (answer.get("ephemeralCert") or {}).get("cert")
        if not isinstance(cert, str):
            raise UpstreamError(f"the Cloud SQL Admin API sent no ephemeral certificate for {self.name}")
        context = await asyncio.to_thread(client_context, settings.server_ca_pem, cert, private)
        return ConnectInfo(settings, context, certificate_expiry(cert, token_expiry))

    def _tokens(self) -> tuple[str, str, datetime | None]:
        """An Admin API token, and the IAM login token (scope sqlservice.login) with its expiry; blocking."""
        import google.auth  # noqa: PLC0415 - only the Cloud SQL path needs google-auth
        from google.auth import credentials as google_credentials  # noqa: PLC0415
        from google.auth.exceptions import GoogleAuthError  # noqa: PLC0415
        from google.auth.transport.requests import Request  # noqa: PLC0415

        try:
            if self._credentials is None:
                self._credentials, _project = google.auth.default(scopes=[ADMIN_SCOPE])
            credentials = self._credentials
            if not credentials.valid:
                credentials.refresh(Request())
            login = google_credentials.with_scopes_if_required(credentials, [LOGIN_SCOPE])  # type: ignore[no-untyped-call]
            if login is not credentials or not login.valid:
                login.refresh(Request())
        except GoogleAuthError as exc:
            raise UpstreamError(f"no Google credentials for Cloud SQL instance {self.name}: {exc}") from exc
        return str(credentials.token), str(login.token), login.expiry

    async def _call(
        self, method: str, action: str, headers: dict[str, str], payload: dict[str, str] | None
    ) -> dict[str, Any]:
        import aiohttp  # noqa: PLC0415

        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT))
        url = self.instance.url(self.endpoint, action)
        try:
            async with self._http.request(method, url, headers=headers, json=payload) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamError(f"the Cloud SQL Admin API failed for {self.name} ({action}): {exc}") from exc
        if status >= 400 or not isinstance(body, dict):
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
            raise UpstreamError(f"the Cloud SQL Admin API refused {action} for {self.name}: {status} {message or ''}")
        return body


class CloudSqlDialers:
    """One dialer per Cloud SQL database alias, for one listener (so one event loop)."""

    def __init__(self) -> None:
        self._dialers: dict[str, CloudSqlDialer] = {}

    def get(self, alias: str, config: DatabaseConfig) -> CloudSqlDialer:
        """The dialer of ``alias`` (made on first use)."""
        dialer = self._dialers.get(alias)
        if dialer is None:
            assert config.instance_connection_name is not None  # the settings model requires it for cloudsql
            dialer = CloudSqlDialer(config.instance_connection_name, endpoint=config.sqladmin_api_endpoint)
            self._dialers[alias] = dialer
        return dialer

    async def aclose(self) -> None:
        """Close every dialer's HTTP client."""
        dialers, self._dialers = list(self._dialers.values()), {}
        for dialer in dialers:
            await dialer.aclose()


async def connect_cloudsql(
    dialer: CloudSqlDialer,
    login: UpstreamLogin,
    lease_id: str,
    params_key: tuple[tuple[str, str], ...],
) -> Upstream:
    """A logged-in connection to the instance's PostgreSQL as ``login.user`` (its IAM database user)."""
    info = await dialer.connect_info()
    version, ip = info.settings.database_version, info.settings.ip
    if not version.startswith("POSTGRES"):
        raise UpstreamError(
            f"Cloud SQL instance {dialer.name} runs {version}; the PostgreSQL listener relays only PostgreSQL"
        )
    loop = asyncio.get_running_loop()
    protocol: UpstreamProtocol | None = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _transport, protocol = await loop.create_connection(
                UpstreamProtocol, ip, SERVER_PROXY_PORT, ssl=info.context, server_hostname=ip
            )
            handshake = UpstreamHandshake(login)
            protocol.write(handshake.start())
            while not handshake.done:
                for reply in handshake.receive(await protocol.read()):
                    protocol.write(reply.data)
    except BaseException as exc:
        if protocol is not None:
            protocol.close()
        dialer.invalidate()  # as the connector: any failure fetches a new certificate next time
        where = f"Cloud SQL instance {dialer.name} ({ip}:{SERVER_PROXY_PORT})"
        if isinstance(exc, TimeoutError):
            raise UpstreamError(f"timed out connecting to {where}") from exc
        if isinstance(exc, ssl.SSLError):
            raise UpstreamError(f"TLS to {where} failed: {exc.reason or exc}") from exc
        if isinstance(exc, OSError):
            raise UpstreamError(f"cannot reach {where}: {exc.strerror or exc}") from exc
        raise
    if handshake.backend_key is None:
        protocol.close()
        raise UpstreamError("the Cloud SQL server sent no BackendKeyData")
    parameters = dict(handshake.parameters)
    status = handshake.transaction_status or "I"
    upstream = Upstream(
        protocol, parameters, handshake.backend_key, lease_id, params_key, ip, SERVER_PROXY_PORT, status
    )
    _cancel_contexts[upstream] = info.context
    return upstream


_cancel_contexts: weakref.WeakKeyDictionary[Upstream, ssl.SSLContext] = weakref.WeakKeyDictionary()
"""The TLS context each Cloud SQL connection was opened with, for its cancel requests (gone with it)."""


async def send_cloudsql_cancel(upstream: Upstream) -> bool:
    """Cancel what ``upstream`` runs if it is a Cloud SQL connection (TLS, its certificate); False if it is not."""
    context = _cancel_contexts.get(upstream)
    if context is None:
        return False
    key = upstream.backend_key
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_connection(
                upstream.host, upstream.port, ssl=context, server_hostname=upstream.host
            )
            writer.write(CancelRequest(key.process_id, key.secret_key).encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        log.warning("could not forward a cancel request to Cloud SQL at %s: %s", upstream.host, exc)
    return True
