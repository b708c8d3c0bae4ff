"""Cloud SQL's way in, engine-neutral: Admin API calls, ephemeral certificates, their refresh, the TLS context.

``cloud-sql-python-connector`` opens connections only as driver objects (asyncpg,
pg8000, pymysql, ...); its public surface gives no byte stream a relay could own,
and the pieces that would (``ConnectionInfo``, ``CloudSQLClient``,
``LazyRefreshCache``) are internals. So this module does what the connector
does, in a few calls, for both listeners (:mod:`sqlgate.proxy.cloudsql` runs the
PostgreSQL login inside the TLS stream, :mod:`sqlgate.mysqlproxy.upstream` the
MySQL one):

- ``GET .../instances/{instance}/connectSettings``: the instance's IP addresses
  (PRIMARY preferred, then PRIVATE), its database version and server CA;
- ``POST .../instances/{instance}:generateEphemeralCert`` with an RSA-2048 public
  key made once per dialer and, for automatic IAM database authentication, the
  ``access_token`` (scope ``sqlservice.login``) of the identity that logs in:
  the client certificate;
- TLS 1.3 straight to the instance's server-side proxy on port 3307 (no
  SSLRequest, as the connector's ``direct_tls``), the client certificate
  presented, the server's checked against the instance's CA (not its host name,
  as the connector does);
- the certificate is good until it, or the access token in it, expires; it is
  fetched again 4 minutes before that (the connector's lazy refresh) and at once
  after a failed connection.

Which IAM identity logs in (``databases.<name>.service_accounts``)
-----------------------------------------------------------------
Cloud SQL admits an IAM database user only if its name is the identity of the
token inside the certificate. Without ``service_accounts`` the token is the
gateway's own (Application Default Credentials), so a real instance admits only
the gateway's own IAM database user; a lease naming the caller's IAM user is
refused by the instance. With ``service_accounts`` (privilege level -> service
account email, as Teleport does for Cloud SQL) the gateway impersonates the
service account of the granted privilege level: the IAM Credentials API's
``projects/-/serviceAccounts/{sa}:generateAccessToken`` (scope
``sqlservice.login``, the gateway's credentials need
``roles/iam.serviceAccountTokenCreator`` on it) gives the login token, the
ephemeral certificate is requested with it (one cached certificate per service
account), and the lease's login is the service account's IAM database user. The
caller's own identity stays in the lease, the session and every audit record.

IAM database user names (:func:`iam_database_user`): PostgreSQL takes the email,
a service account's without ``.gserviceaccount.com``; MySQL takes the part
before the ``@`` (``alice`` for alice@example.com, ``name`` for
name@proj.iam.gserviceaccount.com), as the connector's ``format_database_user``.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlgate.errors import UpstreamError

if TYPE_CHECKING:
    import aiohttp

    from sqlgate.config import DatabaseConfig

ADMIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.admin"
LOGIN_SCOPE = "https://www.googleapis.com/auth/sqlservice.login"
DEFAULT_ENDPOINT = "https://sqladmin.googleapis.com"
DEFAULT_IAM_ENDPOINT = "https://iamcredentials.googleapis.com"
API_VERSION = "v1beta4"
SERVER_PROXY_PORT = 3307
CONNECT_TIMEOUT = 10.0
REFRESH_BUFFER = timedelta(minutes=4)
IP_PREFERENCE = ("PRIMARY", "PRIVATE")
SERVICE_ACCOUNT_SUFFIX = ".gserviceaccount.com"


def iam_database_user(email: str, engine: str) -> str:
    """The IAM database user of ``email`` on a ``POSTGRES``/``MYSQL`` instance (the connector's naming)."""
    if engine.upper().startswith("MYSQL"):
        return email.split("@", 1)[0]
    return email.removesuffix(SERVICE_ACCOUNT_SUFFIX)


def mysql_user_of(login: str) -> str:
    """The MySQL IAM database user of a lease login kept in PostgreSQL form (``alice@example.com`` -> ``alice``)."""
    return login.split("@", 1)[0]


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
    """Ephemeral certificates for one Cloud SQL instance, one per logging-in identity, on one event loop.

    ``service_account`` None is the gateway's own identity; a service account's
    email is impersonated (see the module docstring).
    """

    def __init__(
        self,
        instance_connection_name: str,
        *,
        endpoint: str | None = None,
        credentials: Any = None,
        iam_endpoint: str | None = None,
        service_accounts: Iterable[str] = (),
    ) -> None:
        self.name = instance_connection_name
        self.service_accounts = frozenset(service_accounts)
        self.instance = InstanceName.parse(instance_connection_name)
        self.endpoint = endpoint or DEFAULT_ENDPOINT
        self.iam_endpoint = iam_endpoint or DEFAULT_IAM_ENDPOINT
        self._credentials = credentials
        self._impersonated: dict[str, Any] = {}
        self._key: tuple[bytes, str] | None = None
        self._info: dict[str | None, ConnectInfo] = {}
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    def service_account_for(self, login: str) -> str | None:
        """The configured service account whose lease login ``login`` is; None: the gateway's own identity.

        Leases keep the PostgreSQL form of the IAM user (unique per email); the MySQL form is not unique
        (``ci@a.iam.gserviceaccount.com`` and ``ci@b.iam...`` are both ``ci``), so it is never looked up.
        """
        for email in self.service_accounts:
            if login == iam_database_user(email, "POSTGRES"):
                return email
        return None

    async def connect_info(self, service_account: str | None = None) -> ConnectInfo:
        """The cached connection info of ``service_account``, fetched again when less than 4 minutes are left."""
        async with self._lock:
            info = self._info.get(service_account)
            if info is None or not info.fresh(datetime.now(UTC)):
                info = self._info[service_account] = await self._refresh(service_account)
            return info

    def invalidate(self, service_account: str | None = None) -> None:
        """Fetch a new certificate for ``service_account`` before its next connection (after one failed)."""
        self._info.pop(service_account, None)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _refresh(self, service_account: str | None) -> ConnectInfo:
        if self._key is None:
            self._key = await asyncio.to_thread(_new_key)
        private, public = self._key
        admin_token, login_token, token_expiry = await asyncio.to_thread(self._tokens, service_account)
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

    def _tokens(self, service_account: str | None) -> tuple[str, str, datetime | None]:
        """An Admin API token, and the login token (scope sqlservice.login) with its expiry; blocking."""
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
            if service_account is None:
                login = google_credentials.with_scopes_if_required(credentials, [LOGIN_SCOPE])  # type: ignore[no-untyped-call]
            else:
                login = self._impersonation(service_account)
            if login is not credentials or not login.valid:
                login.refresh(Request())
        except GoogleAuthError as exc:
            who = f" as {service_account}" if service_account else ""
            raise UpstreamError(f"no Google credentials for Cloud SQL instance {self.name}{who}: {exc}") from exc
        return str(credentials.token), str(login.token), login.expiry

    def _impersonation(self, service_account: str) -> Any:
        """Credentials of ``service_account`` (scope sqlservice.login) minted with the gateway's own."""
        from google.auth import impersonated_credentials  # noqa: PLC0415

        login = self._impersonated.get(service_account)
        if login is None:
            url = f"{self.iam_endpoint.rstrip('/')}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken"
            login = impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
                source_credentials=self._credentials,
                target_principal=service_account,
                target_scopes=[LOGIN_SCOPE],
                iam_endpoint_override=url,
            )
            self._impersonated[service_account] = login
        return login

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
            dialer = CloudSqlDialer(
                config.instance_connection_name,
                endpoint=config.sqladmin_api_endpoint,
                iam_endpoint=config.iam_credentials_endpoint,
                service_accounts=config.service_accounts.values(),
            )
            self._dialers[alias] = dialer
        return dialer

    async def aclose(self) -> None:
        """Close every dialer's HTTP client."""
        dialers, self._dialers = list(self._dialers.values()), {}
        for dialer in dialers:
            await dialer.aclose()


def require_engine(dialer: CloudSqlDialer, info: ConnectInfo, prefix: str, listener: str) -> None:
    """Refuse an instance whose engine this listener does not speak, naming the one that does."""
    version = info.settings.database_version
    if not version.startswith(prefix):
        other = "MySQL" if listener == "PostgreSQL" else "PostgreSQL"
        raise UpstreamError(
            f"Cloud SQL instance {dialer.name} runs {version}; the {listener} listener relays only "
            f"{listener} instances (connect to the {other} listener"
            + (": sqlgate connect DB --client mysql)" if other == "MySQL" else ")")
        )


def connect_failure(dialer: CloudSqlDialer, ip: str, exc: BaseException) -> UpstreamError | None:
    """The error to raise for a failed connection to the instance (None: re-raise ``exc`` as it is)."""
    where = f"Cloud SQL instance {dialer.name} ({ip}:{SERVER_PROXY_PORT})"
    if isinstance(exc, TimeoutError):
        return UpstreamError(f"timed out connecting to {where}")
    if isinstance(exc, ssl.SSLError):
        return UpstreamError(f"TLS to {where} failed: {exc.reason or exc}")
    if isinstance(exc, OSError):
        return UpstreamError(f"cannot reach {where}: {exc.strerror or exc}")
    return None
