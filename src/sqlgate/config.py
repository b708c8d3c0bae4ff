"""Settings: one YAML file plus environment overrides, as one typed model.

The file is named by ``-c/--config`` or ``SQLGATE_CONFIG``, else it is ``./sqlgate.yaml``,
else the ``.sqlgate/sqlgate.yaml`` that ``sqlgate up`` writes, searched upward. Any option can be
overridden from the environment as ``SQLGATE_<KEY>``, nested keys joined by a
double underscore (``SQLGATE_LISTEN__HTTP=0.0.0.0:8480``). Relative paths in the
file are resolved against the file's own directory. Secrets are never inline:
the database admin password comes from a file or an environment variable.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sqlgate.errors import ConfigError
from sqlgate.yamlfile import load_model

CONFIG_ENV = "SQLGATE_CONFIG"
DEFAULT_CONFIG_NAME = "sqlgate.yaml"

_KEY_FINGERPRINT = re.compile(r"^\s*(?:sha256:)?[0-9a-fA-F]{64}\s*$")
_KEY_ID = re.compile(r"^[0-9a-fA-F]{16}$")


def is_key_fingerprint(entry: str) -> bool:
    """True when an ``audit.trusted_keys`` entry is a SHA-256 fingerprint (64 hex digits, ``sha256:`` optional)."""
    return bool(_KEY_FINGERPRINT.match(entry))


_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(value: object) -> timedelta:
    """``90``, ``"30s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` -> timedelta (plain numbers are seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if value.strip() and match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ValueError(f"not a duration: {value!r} (write e.g. 30s, 15m, 1h30m or 2d)")


def format_duration(value: timedelta) -> str:
    """The shortest ``1h30m``-style spelling of a duration."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _duration_input(value: object) -> object:
    return parse_duration(value) if isinstance(value, str | int | float) else value


_DURATION_SCHEMA = Field(json_schema_extra={"type": "string", "examples": ["30s", "15m", "1h"]})

Duration = Annotated[
    timedelta,
    _DURATION_SCHEMA,
    BeforeValidator(_duration_input),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
]
"""A positive duration, written ``30s``, ``15m``, ``1h30m``, ``2d`` or as seconds."""

DurationOrZero = Annotated[
    timedelta,
    _DURATION_SCHEMA,
    BeforeValidator(_duration_input),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str),
]
"""A duration that may be zero."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 127.0.0.1:6543)")
    return value


HostPort = Annotated[str, AfterValidator(_host_port)]


def split_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:6543"`` -> ``("127.0.0.1", 6543)``; ``[::1]:6543`` is understood."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, ``localhost`` and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class Listen(_Section):
    """Where the gateway listens."""

    postgres: HostPort = Field("127.0.0.1:6543", description="PostgreSQL wire protocol listener, host:port.")
    http: HostPort = Field("127.0.0.1:8480", description="HTTP API, MCP and metrics listener, host:port.")
    mysql: HostPort | None = Field(
        None,
        description="MySQL/MariaDB wire protocol listener, host:port (e.g. 127.0.0.1:6033); off when unset.",
    )


_TOKEN_NAME = re.compile(r"[\x21-\x7e]{1,512}")


def _is_token_name(value: str) -> bool:
    """True for a value fit to be a token audience or a signed header: printable ASCII, no spaces."""
    return bool(_TOKEN_NAME.fullmatch(value))


def normalize_public_url(value: str) -> str:
    """``value`` as a deployment name: scheme and host lower-cased, no trailing slash (ValueError when unfit)."""
    parts = urlsplit(value.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in {"https", "http"} or not host:
        raise ValueError("must be an https:// URL (http:// only on loopback)")
    if scheme == "http" and not is_loopback(host):
        raise ValueError("must be an https:// URL (http:// only on loopback)")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("must not hold a user, a password, a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    netloc = host if ":" not in host else f"[{host}]"
    netloc += f":{port}" if port is not None else ""
    normalized = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    if not _is_token_name(normalized):
        raise ValueError("must be at most 512 printable characters without spaces")
    return normalized


Algorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]
ALGORITHMS: tuple[Algorithm, ...] = ("RS256", "PS256", "ES256", "EdDSA")


class IssuerConfig(_Section):
    """One trusted OpenID Connect issuer (people or workloads)."""

    issuer: str = Field(
        description="The `iss` value tokens carry; discovery is read from its /.well-known/openid-configuration."
    )
    audience: str | list[str] | None = Field(
        None,
        description="Accepted `aud` value(s); default: this gateway's own id (`identity.deployment_id`), so a "
        "token minted for another gateway (staging, production) is refused here.",
    )
    groups_claim: str = Field(
        "groups", description="Dotted path of the groups claim, e.g. `groups`, `realm_access.roles`, `cognito:groups`."
    )
    name_claim: str = Field(
        "name", description="Claim used as the display name (falls back to `preferred_username`, then `sub`)."
    )
    email_claim: str = Field("email", description="Claim holding the e-mail address.")
    algorithms: list[Algorithm] = Field(
        default_factory=lambda: list(ALGORITHMS),
        description="Signature algorithms accepted from this issuer; `none` and HMAC are never accepted.",
        min_length=1,
    )
    jwks_uri: str | None = Field(None, description="Override the JWKS URL instead of using discovery.")
    leeway: DurationOrZero = Field(timedelta(seconds=30), description="Clock skew tolerated on exp, nbf and iat.")
    max_token_age: Duration | None = Field(None, description="Reject tokens whose `iat` is older than this.")
    required_claims: list[str] = Field(default_factory=list, description="Claims that must be present.")
    jwks_grace: Duration = Field(
        timedelta(hours=1),
        description="How long cached keys stay usable while the issuer is unreachable; then verification fails closed.",
    )
    client_id: str | None = Field(None, description="Public client id used by `sqlgate login` (device flow / PKCE).")
    login_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email", "offline_access"],
        description="Scopes `sqlgate login` asks for (offline_access brings a refresh token).",
        min_length=1,
    )

    @field_validator("audience")
    @classmethod
    def _audience_values(cls, value: str | list[str] | None) -> str | list[str] | None:
        values = [value] if isinstance(value, str) else value or []
        if isinstance(value, list) and not value:
            raise ValueError("must name at least one audience (or be left out: this gateway's id is used)")
        if any(not _is_token_name(v) for v in values):
            raise ValueError("each audience must be 1-512 printable characters without spaces")
        return value


class AwsIamConfig(_Section):
    """AWS IAM authentication with presigned sts:GetCallerIdentity requests."""

    enabled: bool = Field(default=False, description="Accept AWS IAM presigned requests as tokens.")
    sts_endpoint: str = Field(
        "https://sts.amazonaws.com", description="STS endpoint the presigned request is forwarded to."
    )
    server_id: str | None = Field(
        None,
        description="Value of the signed X-Sqlgate-Server-Id header a request must carry; "
        "default: this gateway's own id (`identity.deployment_id`).",
    )
    region: str = Field("us-east-1", description="Region for the STS signature.")
    allowed_accounts: list[str] = Field(default_factory=list, description="AWS account ids accepted (empty: any).")

    @field_validator("server_id")
    @classmethod
    def _server_id_value(cls, value: str | None) -> str | None:
        if value is not None and not _is_token_name(value):
            raise ValueError("must be 1-512 printable characters without spaces")
        return value


class IdentityConfig(_Section):
    """How callers prove who they are."""

    dev_issuer: bool = Field(default=False, description="Run the built-in dev issuer (demos and tests only).")
    dev_issuer_url: str | None = Field(
        None, description="Issuer URL of the built-in dev issuer (default: the HTTP listener's /dev-issuer)."
    )
    issuers: list[IssuerConfig] = Field(default_factory=list, description="Trusted OIDC issuers.")
    aws: AwsIamConfig = Field(default_factory=AwsIamConfig, description="AWS IAM authentication.")
    principal_cache_size: int = Field(10_000, ge=0, description="Verified tokens kept in memory until they expire.")
    deployment_id: str | None = Field(
        None,
        description="This gateway's name in tokens: the default `audience` of every issuer, the audience of "
        "dev-issuer tokens and the default AWS `server_id`. Default: `public_url` when set, else "
        "`urn:sqlgate:<random>` generated at first start into data_dir/deployment-id (replicas behind one "
        "load balancer set `public_url`, or this, to the same value). Public, not a secret.",
    )

    @field_validator("deployment_id")
    @classmethod
    def _deployment_id_value(cls, value: str | None) -> str | None:
        if value is not None and not _is_token_name(value):
            raise ValueError("must be 1-512 printable characters without spaces")
        return value


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]{0,62}", value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (letters, digits, _ and $)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


TlsMode = Literal["disable", "prefer", "require", "verify-full"]
DEFAULT_DATABASE_HOST = "127.0.0.1"


def default_tls_mode(host: str) -> TlsMode:
    """TLS to a database whose config names no mode: ``prefer`` on this machine, ``verify-full`` anywhere else."""
    return "prefer" if is_loopback(host) or host.startswith("/") else "verify-full"


class DatabaseConfig(_Section):
    """One target database, reached by its alias."""

    engine: Literal["postgres", "mysql", "cloudsql"] = Field("postgres", description="postgres | mysql | cloudsql.")
    host: str = Field(DEFAULT_DATABASE_HOST, description="Host name or address of the database server.")
    port: int = Field(5432, ge=1, le=65535, description="Port of the database server.")
    dbname: str = Field(description="Database name on the server.")
    admin_user: str = Field(description="Login used to mint and revoke short-lived logins.")
    admin_password_file: Path | None = Field(
        None, description="File holding the admin password (kept mode 0600; rewritten by `sqlgate rotate-admin`)."
    )
    admin_password_env: str | None = Field(None, description="Environment variable holding the admin password.")
    admin_password: SecretStr | None = Field(
        None,
        description="Never accepted: use admin_password_file or admin_password_env.",
        json_schema_extra={"deprecated": True},
        exclude=True,
    )
    roles: dict[str, Identifier] = Field(
        default_factory=dict, description="Privilege level (read, write, admin, custom) -> database group role."
    )
    owner_role: Identifier | None = Field(
        None, description="Role that inherits objects owned by a revoked login (default: admin_user)."
    )
    login_prefix: Identifier = Field("sg", description="Prefix of minted login names.")
    connection_limit: int = Field(10, ge=1, description="CONNECTION LIMIT of each minted login.")
    tls: TlsMode = Field(
        "verify-full",
        description="TLS to the database server: disable | prefer | require | verify-full. Default: "
        "`verify-full` (encrypted, certificate and host name checked) for every host but a loopback one "
        "(127.0.0.0/8, ::1, `localhost`) or a Unix socket path, where it is `prefer`. A value set here always wins.",
    )
    tls_ca_file: Path | None = Field(
        None, description="CA bundle that verifies the server's certificate in verify-full (default: the system's)."
    )
    instance_connection_name: str | None = Field(
        None, description="Cloud SQL instance, project:region:instance (engine cloudsql)."
    )
    sqladmin_api_endpoint: str | None = Field(
        None, description="Cloud SQL Admin API endpoint override (tests, private endpoints)."
    )
    service_accounts: dict[str, str] = Field(
        default_factory=dict,
        description="Engine cloudsql: privilege level (every key of roles) -> service account email. The gateway "
        "impersonates the service account of the granted level (IAM Credentials generateAccessToken, scope "
        "sqlservice.login; needs roles/iam.serviceAccountTokenCreator on it) and logs in as its IAM database "
        "user; the caller stays named in the lease, session and audit log. Unset: the ephemeral certificate "
        "carries the gateway's own identity, and a real instance then admits only the gateway's own IAM "
        "database user.",
    )
    iam_credentials_endpoint: str | None = Field(
        None, description="IAM Credentials API endpoint override for service_accounts (tests, private endpoints)."
    )
    admin_pool_size: int = Field(
        10, ge=1, le=100, description="Most admin connections the broker keeps open to this database."
    )
    rotate_admin_every: Duration | None = Field(
        None,
        description="Rotate the admin secret this often (needs admin_password_file; unset: on demand only).",
    )
    login_host: str = Field(
        "%", description="Host part of minted accounts (engine mysql), e.g. `%` or `10.0.0.%`.", max_length=255
    )

    @model_validator(mode="before")
    @classmethod
    def _default_tls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tls" not in data:
            return {**data, "tls": default_tls_mode(str(data.get("host") or DEFAULT_DATABASE_HOST))}
        return data

    @field_validator("admin_password")
    @classmethod
    def _refuse_inline_password(cls, value: SecretStr | None) -> None:
        if value is not None:
            raise ValueError(
                "inline passwords are refused: put the secret in a file and set "
                "admin_password_file, or export it and set admin_password_env to the variable's name"
            )

    @model_validator(mode="after")
    def _needs_secret_source(self) -> DatabaseConfig:
        if self.engine != "cloudsql" and not (self.admin_password_file or self.admin_password_env):
            raise ValueError("set admin_password_file or admin_password_env (inline passwords are refused)")
        if self.engine == "cloudsql" and not self.instance_connection_name:
            raise ValueError("engine cloudsql needs instance_connection_name (project:region:instance)")
        self._check_service_accounts()
        return self

    def _check_service_accounts(self) -> None:
        if not self.service_accounts:
            return
        if self.engine != "cloudsql":
            raise ValueError("service_accounts is for engine cloudsql only")
        unknown = sorted(set(self.service_accounts) - set(self.roles))
        if unknown:
            raise ValueError(f"service_accounts names privilege levels not in roles: {', '.join(unknown)}")
        missing = sorted(set(self.roles) - set(self.service_accounts))
        if missing:
            raise ValueError(
                f"service_accounts needs a service account for every level in roles (missing: {', '.join(missing)})"
            )
        by_mysql_user: dict[str, str] = {}
        for privilege, email in self.service_accounts.items():
            name = email.split("@", 1)[0]
            if by_mysql_user.setdefault(name, email) != email:
                raise ValueError(
                    f"service_accounts: {by_mysql_user[name]} and {email} share the IAM database user name "
                    f"{name!r} on Cloud SQL for MySQL; use service accounts with different names"
                )
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]*@[a-z0-9.-]+\.gserviceaccount\.com", email):
                raise ValueError(
                    f"service_accounts.{privilege}: {email!r} is not a service account email "
                    "(name@project.iam.gserviceaccount.com)"
                )

    def admin_password_value(self) -> str:
        """Read the admin secret now (files are re-read so rotation needs no restart)."""
        if self.admin_password_file is not None:
            try:
                return self.admin_password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read admin_password_file {self.admin_password_file}: {exc.strerror}"
                ) from exc
        if self.admin_password_env is not None:
            value = os.environ.get(self.admin_password_env)
            if value is None:
                raise ConfigError(f"environment variable {self.admin_password_env} (admin_password_env) is not set")
            return value
        return ""


class ProxyConfig(_Section):
    """The PostgreSQL wire protocol listener, and the certificate both listeners serve."""

    require_tls: bool | None = Field(
        None, description="Refuse clients without TLS; default: required unless listening on loopback."
    )
    tls_cert_file: Path | None = Field(
        None,
        description="Server certificate (PEM, chain included) of both listeners, PostgreSQL and HTTP; "
        "a self-signed one for localhost is generated into data_dir/tls when unset.",
    )
    tls_key_file: Path | None = Field(None, description="Private key of tls_cert_file (PEM).")
    login_timeout: Duration = Field(
        timedelta(seconds=60), description="A client that has not finished logging in after this long is dropped."
    )
    max_message_bytes: int = Field(
        64 << 20,
        ge=1 << 16,
        description="Largest message a logged-in client may send (refused with 54000 before it is buffered); "
        "COPY data streams and is not bound by it.",
    )
    upstream_max_idle: int = Field(
        8, ge=0, description="Most idle server connections kept per lease (per login and startup parameters)."
    )
    upstream_idle_timeout: Duration = Field(
        timedelta(seconds=60),
        description="An idle server connection is closed after this long; a lease's idle connections all close "
        "this long after its last session ended.",
    )
    orphan_statement_timeout: Duration = Field(
        timedelta(minutes=5),
        description="How long a statement's answer is still read after its client left (to record how it "
        "ended); then it is cancelled and its connection closed.",
    )


class FailuresConfig(_Section):
    """Throttling of failed logins, per source address and per claimed subject."""

    threshold: int = Field(5, ge=1, description="Failures allowed before back-off starts.")
    base_delay: Duration = Field(timedelta(seconds=1), description="Back-off after the first failure over threshold.")
    max_delay: Duration = Field(timedelta(minutes=5), description="Longest back-off (it doubles per failure).")
    forget_after: Duration = Field(
        timedelta(minutes=15), description="A source or subject without failures for this long starts afresh."
    )
    summary_window: Duration = Field(
        timedelta(minutes=1),
        description="Failures over threshold from one source are audited as one `auth.failure` record per "
        "window with their count, instead of one record each.",
    )
    max_tracked: int = Field(100_000, ge=100, description="Most sources and subjects remembered at once.")


class AuthConfig(_Section):
    """Login handling common to every front end."""

    failures: FailuresConfig = Field(default_factory=FailuresConfig, description="Failed-login throttling.")


class AuditConfig(_Section):
    """The audit log."""

    checkpoint_every: int = Field(1000, ge=1, description="Sign a checkpoint after this many records.")
    checkpoint_interval: Duration = Field(
        timedelta(seconds=60), description="...or after this long, whichever comes first."
    )
    signing_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM); generated into data_dir when unset."
    )
    jsonl_file: Path | None = Field(None, description="Also write records to this rotating JSONL file.")
    stdout: bool = Field(default=False, description="Also write records to stdout as JSON lines, for log shippers.")
    queue_size: int = Field(10_000, ge=1, description="Statement records waiting for a batch write.")
    on_full: Literal["block", "drop"] = Field(
        "block", description="When the queue is full: block (backpressure) or drop (counted and logged)."
    )
    batch_size: int = Field(1000, ge=1, description="Most records written in one transaction (group commit).")
    writer: Literal["inline", "process"] = Field(
        "process",
        description="Where `sqlgate serve` redacts, chains and stores records: `process`, a writer process of "
        "its own, which every statement record reaches before the client sees the statement's answer (a killed "
        "gateway loses none), or `inline`, in the gateway's process (the last ~50 ms of records can be lost if "
        "it is killed).",
    )
    commit_delay_ms: int = Field(
        20,
        ge=0,
        le=1000,
        description="How long statement records may wait for more to share their transaction; "
        "security records never wait (0: write whatever is queued at once).",
    )
    chain_id: str | None = Field(
        None,
        description="This replica's chain id (letters, digits, `-`, `_`); default: a random id kept in data_dir/audit.",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    )
    jsonl_max_bytes: int = Field(
        100 * 1024 * 1024, ge=4096, description="Rotate jsonl_file when it would grow past this many bytes."
    )
    jsonl_backups: int = Field(5, ge=0, description="Rotated JSONL files kept (file.1 is the newest).")
    otlp_endpoint: str | None = Field(
        None,
        description="Also export records as OpenTelemetry logs to this OTLP/HTTP endpoint "
        "(needs `pip install opentelemetry-sdk opentelemetry-exporter-otlp`).",
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Public keys `sqlgate audit verify` accepts signatures from: PEM files (relative to this file) "
        "or SHA-256 fingerprints (`sqlgate audit pubkey --fingerprint`). Empty: the key found on this host is "
        "trusted, and verify says so. The gateway refuses to start with a signing key not listed here.",
    )

    @field_validator("trusted_keys")
    @classmethod
    def _trusted_keys(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry.strip():
                raise ValueError("an entry is empty (give a PEM file or a SHA-256 fingerprint)")
            if _KEY_ID.match(entry.strip()):
                raise ValueError(
                    f"{entry!r} is a 16-digit key id, too short to pin a key by; "
                    "give the 64-digit fingerprint (`sqlgate audit pubkey --fingerprint`) or the public key file"
                )
        return value


class ApiConfig(_Section):
    """The HTTP API and MCP server."""

    require_tls: bool = Field(
        default=False,
        description="Refuse plain-HTTP requests from loopback clients too (HTTPS only). Requests from other "
        "clients need HTTPS anyway unless allow_plaintext is set. The listener serves HTTPS and plain HTTP "
        "on one port, with proxy.tls_cert_file or the self-signed certificate in data_dir/tls.",
    )
    allow_plaintext: bool = Field(
        default=False,
        description="Accept plain-HTTP requests from non-loopback clients. Only behind a load balancer or "
        "proxy that terminates TLS on a trusted network: tokens cross the network in these requests.",
    )

    admin_groups: list[str] = Field(
        default_factory=lambda: ["sqlgate-admins"],
        description="Groups whose members may list and end sessions (`/v1/sessions`).",
    )
    auditor_groups: list[str] = Field(
        default_factory=lambda: ["auditors"], description="Groups whose members may read the audit log (`/v1/audit`)."
    )
    max_rows: int = Field(
        10_000, ge=1, description="Most rows `/v1/query` returns as JSON (NDJSON streams any number)."
    )
    default_timeout: Duration = Field(timedelta(seconds=30), description="Statement timeout when a request names none.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body accepted.")
    pool_size: int = Field(
        10, ge=1, le=1000, description="Most connections in each API pool (one pool per database login in use)."
    )

    @model_validator(mode="after")
    def _one_plaintext_rule(self) -> ApiConfig:
        if self.require_tls and self.allow_plaintext:
            raise ValueError("require_tls and allow_plaintext contradict each other: set at most one")
        return self


class RequestsConfig(_Section):
    """Access requests (just-in-time approvals)."""

    pending_ttl: Duration = Field(
        timedelta(hours=24),
        description="A request nobody approves or denies within this long expires; its requester is told "
        "(audit `request.expire`, webhook event `expired`, state `expired` in their list).",
    )


WebhookEvent = Literal["filed", "approved", "denied", "expired"]


def _all_webhook_events() -> list[WebhookEvent]:
    return ["filed", "approved", "denied", "expired"]


class WebhookConfig(_Section):
    """One webhook that receives access-request events as JSON (with a Slack-compatible `text` field)."""

    url: str = Field(
        description="Where events are POSTed: https:// (http:// only on loopback). Treated as a secret: "
        "logs and `sqlgate config show` give its scheme and host only."
    )
    events: list[WebhookEvent] = Field(
        default_factory=_all_webhook_events,
        min_length=1,
        description="Which access-request events are sent: filed, approved, denied, expired (default: all).",
    )
    secret_env: str | None = Field(
        None,
        description="Environment variable holding the HMAC-SHA256 key; each POST then carries "
        "`X-Sqlgate-Signature: sha256=<hex of HMAC(key, body)>`.",
    )
    secret_file: Path | None = Field(None, description="File holding the HMAC-SHA256 key (instead of secret_env).")
    secret: SecretStr | None = Field(
        None,
        description="Never accepted: use secret_env or secret_file.",
        json_schema_extra={"deprecated": True},
        exclude=True,
    )
    timeout: Duration = Field(timedelta(seconds=5), description="How long one delivery attempt may take.")
    retries: int = Field(
        5, ge=0, le=20, description="Attempts after the first when delivery fails (5xx, 429, network)."
    )
    backoff: Duration = Field(
        timedelta(seconds=1),
        description="Wait before the first retry; doubled after each failed attempt (at most 5 minutes).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ValueError("must be an https:// URL (http:// only on loopback)")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("must be an https:// URL (http:// only on loopback)")
        return value.strip()

    @field_serializer("url")
    def _url_shown(self, value: str) -> str:
        """Dumped (``sqlgate config show``) as scheme and host only: a Slack webhook's path is its secret."""
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/..." if parts.path.strip("/") else value

    @field_validator("secret")
    @classmethod
    def _refuse_inline_secret(cls, value: SecretStr | None) -> None:
        if value is not None:
            raise ValueError(
                "inline secrets are refused: put the key in a file and set secret_file, "
                "or export it and set secret_env to the variable's name"
            )

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookConfig:
        if self.secret_env and self.secret_file:
            raise ValueError("set secret_env or secret_file, not both")
        return self

    def secret_value(self) -> bytes | None:
        """The HMAC key (read now), or None when the webhook is unsigned; ConfigError when it cannot be read."""
        if self.secret_file is not None:
            try:
                text = self.secret_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read webhook secret_file {self.secret_file}: {exc.strerror}") from exc
        elif self.secret_env is not None:
            env = os.environ.get(self.secret_env)
            if env is None:
                raise ConfigError(f"environment variable {self.secret_env} (webhook secret_env) is not set")
            text = env
        else:
            return None
        if not text:
            raise ConfigError("the webhook secret is empty")
        return text.encode()


class NotifyConfig(_Section):
    """Notifications sent when access requests change."""

    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="Webhooks that receive access-request events (Slack incoming webhooks work)."
    )


class ServerConfig(_Section):
    """How this replica runs among others: its name, its drain on SIGTERM, the key every replica shares."""

    replica_name: str | None = Field(
        None,
        max_length=128,
        description="This replica's name in `/v1/sessions`, metrics and logs; default: the host name "
        "(on Kubernetes, the pod's name).",
    )
    drain_timeout: DurationOrZero = Field(
        timedelta(seconds=30),
        description="On SIGTERM the replica stops accepting, `/readyz` answers 503, and sessions may finish "
        "for this long; the rest are then ended with 57P01 and the process exits 0.",
    )
    lease_key_file: Path | None = Field(
        None,
        description="A secret shared by every replica (32 bytes or more, e.g. `openssl rand -base64 48`): "
        "lease passwords are kept in the state database encrypted with it, so a replica reuses a lease "
        "another minted. Without it (or lease_key_env) each replica mints its own logins.",
    )
    lease_key_env: str | None = Field(None, description="Environment variable holding the lease key instead.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Gateway processes `sqlgate serve` runs on the same ports (SO_REUSEPORT: the kernel spreads "
        "new connections over them), sharing the state database; each has its own audit chain. Use up to one "
        "per CPU.",
    )
    heartbeat_timeout: Duration = Field(
        timedelta(seconds=10),
        description="A replica whose heartbeat in the state database is older than this is gone: its "
        "sessions are marked gone (PostgreSQL state only).",
    )

    @model_validator(mode="after")
    def _one_lease_key(self) -> ServerConfig:
        if self.lease_key_file is not None and self.lease_key_env is not None:
            raise ValueError("set lease_key_file or lease_key_env, not both")
        return self

    def lease_key_value(self) -> bytes | None:
        """The shared lease key (None when not configured); too short a key is refused."""
        if self.lease_key_file is not None:
            try:
                raw = self.lease_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read server.lease_key_file {self.lease_key_file}: {exc.strerror}") from exc
        elif self.lease_key_env is not None:
            value = os.environ.get(self.lease_key_env)
            if value is None:
                raise ConfigError(f"environment variable {self.lease_key_env} (server.lease_key_env) is not set")
            raw = value.strip().encode()
        else:
            return None
        if len(raw) < 32:
            raise ConfigError("the lease key must be at least 32 bytes (e.g. `openssl rand -base64 48`)")
        return raw


class TracingConfig(_Section):
    """OpenTelemetry traces (needs the extra: `pip install 'sqlgate[otel]'`)."""

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint (e.g. `http://otel-collector:4318/v1/traces`); spans for login, "
        "decide, mint and each statement with principal, database, lease and session ids. Unset: no tracing.",
    )
    service_name: str = Field("sqlgate", description="`service.name` of the spans.")


class LogConfig(_Section):
    """Log output."""

    format: Literal["text", "json"] = Field(
        "text",
        description="`json`: one JSON object a line with replica, session, principal, database and lease ids "
        "where a record has them (for log shippers).",
    )


class Settings(BaseSettings):
    """Everything sqlgate reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="SQLGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(Path(".sqlgate"), description="State database, keys and certificates.")
    public_url: str | None = Field(
        None,
        description="The URL clients reach this gateway at (e.g. `https://sqlgate.example.com`, the load "
        "balancer's); when set it is this gateway's `identity.deployment_id`, the audience its tokens must carry.",
    )
    state: str = Field(
        "sqlite", description="`sqlite` (a file in data_dir) or a postgresql:// URL shared by several replicas."
    )
    listen: Listen = Field(default_factory=Listen, description="Listening addresses.")
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description="Identity sources.")
    databases: dict[Identifier, DatabaseConfig] = Field(default_factory=dict, description="Target databases by alias.")
    policy_file: Path | None = Field(None, description="The policy file (rules, guardrails, masking).")
    proxy: ProxyConfig = Field(default_factory=ProxyConfig, description="PostgreSQL wire listener options.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Login handling (failed-login throttling).")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Audit log options.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="HTTP API options.")
    requests: RequestsConfig = Field(default_factory=RequestsConfig, description="Access request options.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="Notifications (webhooks).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log verbosity.")
    log: LogConfig = Field(default_factory=LogConfig, description="Log output format.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="OpenTelemetry traces.")
    server: ServerConfig = Field(
        default_factory=ServerConfig, description="Replica name, drain on SIGTERM, the lease key shared by replicas."
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else normalize_public_url(value)

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if value == "sqlite" or value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            return value
        raise ValueError("must be `sqlite`, a sqlite:///path URL or a postgresql:// URL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file."""
        del settings_cls, dotenv_settings, file_secret_settings
        return env_settings, init_settings

    def state_url(self) -> str:
        """SQLAlchemy URL of the state database."""
        if self.state == "sqlite":
            return f"sqlite:///{self.data_dir / 'state.db'}"
        if self.state.startswith("postgres://"):
            return "postgresql://" + self.state.removeprefix("postgres://")
        return self.state

    def database(self, alias: str) -> DatabaseConfig:
        """The database named ``alias``, or a ConfigError listing the known ones."""
        try:
            return self.databases[alias]
        except KeyError:
            known = ", ".join(sorted(self.databases)) or "none configured"
            raise ConfigError(f"unknown database {alias!r} (known: {known})") from None


DEMO_CONFIG = Path(".sqlgate") / DEFAULT_CONFIG_NAME
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfigLookup:
    """Where the settings file was looked for, and which one was found (``path``) and how (``source``)."""

    path: Path | None
    source: str
    looked_at: tuple[Path, ...]


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> ConfigLookup:
    """Find the settings file: ``-c``, else $SQLGATE_CONFIG, else ./sqlgate.yaml, else .sqlgate/sqlgate.yaml upward.

    The last step walks from the working directory up to the root, as git finds ``.git``,
    so commands typed in (or below) the folder where ``sqlgate up`` ran find its settings.
    """
    if explicit is not None:
        return ConfigLookup(explicit, "-c/--config", (explicit,))
    if env := os.environ.get(CONFIG_ENV):
        return ConfigLookup(Path(env), f"${CONFIG_ENV}", (Path(env),))
    here = (cwd or Path.cwd()).absolute()
    looked_at = [here / DEFAULT_CONFIG_NAME]
    if looked_at[0].is_file():
        return ConfigLookup(looked_at[0], f"./{DEFAULT_CONFIG_NAME}", tuple(looked_at))
    for folder in (here, *here.parents):
        candidate = folder / DEMO_CONFIG
        looked_at.append(candidate)
        if candidate.is_file():
            return ConfigLookup(candidate, f"{DEMO_CONFIG} (searched upward)", tuple(looked_at))
    return ConfigLookup(None, "none", tuple(looked_at))


def config_path(explicit: Path | None = None) -> Path | None:
    """The settings file in use (see :func:`find_config`), or None when there is none."""
    return find_config(explicit).path


def no_config_error(lookup: ConfigLookup) -> ConfigError:
    """The error for a command that found no settings file: every path it looked at, and what to do."""
    return ConfigError(
        f"no settings file found: give -c FILE or set {CONFIG_ENV}, or run `sqlgate up` here; looked at:",
        problems=[str(path) for path in lookup.looked_at],
    )


def load_settings(path: Path | None = None) -> Settings:
    """Find (see :func:`find_config`), load and validate settings; raises ConfigError listing every mistake."""
    lookup = find_config(path)
    if lookup.path is None:
        raise no_config_error(lookup)
    _log.info("settings: %s (from %s)", lookup.path, lookup.source)
    settings = load_model(lookup.path, Settings)
    return _resolve_paths(settings, lookup.path.resolve().parent)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def fix(value: Path | None) -> Path | None:
        return None if value is None or value.is_absolute() else base / value

    databases = {
        alias: db.model_copy(
            update={
                "admin_password_file": fix(db.admin_password_file) or db.admin_password_file,
                "tls_ca_file": fix(db.tls_ca_file) or db.tls_ca_file,
            }
        )
        for alias, db in settings.databases.items()
    }
    proxy = settings.proxy.model_copy(
        update={
            "tls_cert_file": fix(settings.proxy.tls_cert_file) or settings.proxy.tls_cert_file,
            "tls_key_file": fix(settings.proxy.tls_key_file) or settings.proxy.tls_key_file,
        }
    )
    trusted_keys = [
        entry if is_key_fingerprint(entry) else str(fix(Path(entry)) or entry) for entry in settings.audit.trusted_keys
    ]
    updates: dict[str, Any] = {
        "data_dir": fix(settings.data_dir) or settings.data_dir,
        "policy_file": fix(settings.policy_file) or settings.policy_file,
        "databases": databases,
        "proxy": proxy,
        "audit": settings.audit.model_copy(update={"trusted_keys": trusted_keys}),
        "server": settings.server.model_copy(
            update={"lease_key_file": fix(settings.server.lease_key_file) or settings.server.lease_key_file}
        ),
        "notify": settings.notify.model_copy(
            update={
                "webhooks": [
                    hook.model_copy(update={"secret_file": fix(hook.secret_file) or hook.secret_file})
                    for hook in settings.notify.webhooks
                ]
            }
        ),
    }
    return settings.model_copy(update=updates)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the settings file, for editors and CI."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sqlgate settings"
    return schema
