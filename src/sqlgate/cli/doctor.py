"""``sqlgate doctor``: what is wrong with this gateway's settings and surroundings, and how to fix it.

Every check only reads: the settings file, each database's admin login and what it may do
(CREATEROLE, ADMIN OPTION on the group roles), each issuer's discovery document and keys,
the TLS certificate and its expiry, the state database's migrations, and the audit keys and
hash chain. Nothing is created, migrated or repaired; each problem comes with the fix.
Exit code 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import httpx
import typer
from rich.markup import escape

from sqlgate.cli.common import ConfigOption, JsonOption, console, print_json
from sqlgate.config import DatabaseConfig, IssuerConfig, ProxyConfig, Settings, find_config, load_settings
from sqlgate.errors import ConfigError, SqlgateError
from sqlgate.proxy.budget import SERVER_LIMITS_SQL, ServerLimits, budget_problems, budget_summary

Status = Literal["ok", "warn", "fail"]
CERT_WARN_DAYS = 14
HTTP_TIMEOUT = 5.0
DB_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and what to do about it."""

    check: str
    status: Status
    message: str
    fix: str | None = None


def doctor(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check settings, databases, issuers, TLS, state migrations and the audit log; say what to fix."""
    checks = run_checks(config)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        _print(checks)
    raise typer.Exit(1 if failed else 0)


def _print(checks: list[Check]) -> None:
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for c in checks:
        colour = colours[c.status]
        console.print(f"[{colour}]{c.status:4}[/{colour}] {escape(c.check)}: {escape(c.message)}", highlight=False)
        if c.fix:
            console.print(f"     fix: {escape(c.fix)}", highlight=False, soft_wrap=True)
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    console.print(f"{failed} problem(s), {warned} warning(s)", highlight=False)


def run_checks(config: Path | None) -> list[Check]:
    """Every check, in order; a settings file that does not load stops the rest."""
    lookup = find_config(config)
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fix = "fix the lines named above (`sqlgate config validate` lists them)"
        if lookup.path is None:
            fix = "give -c FILE or set SQLGATE_CONFIG, or run `sqlgate up` in this folder"
        return [Check("settings", "fail", str(exc), fix)]
    checks = [Check("settings", "ok", f"{lookup.path} ({lookup.source}) is valid")]
    checks += asyncio.run(_database_checks(settings))
    checks += [check_issuer(issuer) for issuer in settings.identity.issuers]
    checks += [check_dev_issuer(settings)] if settings.identity.dev_issuer else []
    checks.append(check_tls(settings))
    state = check_state(settings)
    checks.append(state)
    checks += check_audit(settings, state_ready=state.status == "ok")
    checks += check_replicas(settings)
    return checks


def check_replicas(settings: Settings) -> list[Check]:
    """With PostgreSQL state (several replicas): a lease key they share, and one gateway id."""
    if settings.state == "sqlite" or settings.state.startswith("sqlite:"):
        return []
    checks = []
    try:
        key = settings.server.lease_key_value()
    except ConfigError as exc:
        checks.append(Check("replicas", "fail", str(exc), "give every replica the same readable lease key"))
    else:
        if key is None:
            checks.append(
                Check(
                    "replicas",
                    "warn",
                    "no server.lease_key_file: each replica mints its own logins (leases are not shared)",
                    "set server.lease_key_file (or lease_key_env) to one secret for every replica: "
                    "openssl rand -base64 48",
                )
            )
        else:
            checks.append(Check("replicas", "ok", f"a {len(key)}-byte lease key: replicas share leases"))
    if settings.public_url is None and settings.identity.deployment_id is None:
        checks.append(
            Check(
                "gateway id",
                "warn",
                "neither public_url nor identity.deployment_id is set: each replica makes its own id, so a token "
                "for one is refused by the others",
                "set public_url (the load balancer's URL) to one value for every replica",
            )
        )
    return checks


# -- databases ----------------------------------------------------------------------------------


async def _database_checks(settings: Settings) -> list[Check]:
    checks = []
    for alias, db in settings.databases.items():
        checks.append(await check_database(alias, db))
        if db.engine == "postgres" and checks[-1].status != "fail":
            checks.append(await check_connection_budget(alias, db, settings.proxy))
    return checks


async def check_connection_budget(alias: str, db: DatabaseConfig, proxy: ProxyConfig) -> Check:
    """The pool's idle cap, the logins' connection_limit and the server's max_connections, together."""
    from sqlgate.broker.backends.postgres import PostgresBackend  # noqa: PLC0415 - asyncpg only when needed

    name = f"connections {alias}"
    try:
        async with asyncio.timeout(DB_TIMEOUT):
            conn = await PostgresBackend(db)._connect(db.dbname)  # noqa: SLF001 - the broker's own TLS and login
            try:
                row = await conn.fetchrow(SERVER_LIMITS_SQL)
            finally:
                await conn.close()
    except (SqlgateError, OSError, TimeoutError, Exception) as exc:
        return Check(name, "warn", f"cannot read max_connections: {_first_line(exc)}", "check the admin login")
    server = ServerLimits(int(row[0]), int(row[1]))
    problems = budget_problems(alias, db, proxy, server)
    if problems:
        return Check(name, "warn", "; ".join(problems), "change the settings named above")
    return Check(name, "ok", budget_summary(alias, db, proxy, server))


async def check_database(alias: str, db: DatabaseConfig) -> Check:
    """The admin login works, has CREATEROLE, and holds ADMIN OPTION on every group role."""
    name = f"database {alias}"
    if db.engine != "postgres":
        return Check(name, "warn", f"engine {db.engine}: the admin login is not checked by doctor yet")
    from sqlgate.broker.backends.postgres import PostgresBackend  # noqa: PLC0415 - asyncpg only when needed

    try:
        async with asyncio.timeout(DB_TIMEOUT):
            conn = await PostgresBackend(db)._connect(db.dbname)  # noqa: SLF001 - the broker's own TLS and login
    except (SqlgateError, OSError, TimeoutError, Exception) as exc:
        return Check(
            name,
            "fail",
            f"cannot log in as {db.admin_user} at {db.host}:{db.port}/{db.dbname}: {_first_line(exc)}",
            "check host, port, dbname, admin_user and the admin password (admin_password_file or admin_password_env)",
        )
    try:
        return await _admin_rights(name, db, conn)
    finally:
        await conn.close()


async def _admin_rights(name: str, db: DatabaseConfig, conn: object) -> Check:
    fetchval = conn.fetchval  # type: ignore[attr-defined]
    problems: list[str] = []
    fixes: list[str] = []
    if not await fetchval("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user"):
        problems.append(f"{db.admin_user} lacks CREATEROLE")
        fixes.append(f'ALTER ROLE "{db.admin_user}" CREATEROLE;')
    for level, role in sorted(db.roles.items()):
        if await fetchval("SELECT to_regrole(quote_ident($1)) IS NULL", role):
            problems.append(f"group role {role} ({level}) does not exist")
            fixes.append(f'CREATE ROLE "{role}" NOLOGIN; GRANT "{role}" TO "{db.admin_user}" WITH ADMIN OPTION;')
        elif not await fetchval("SELECT pg_has_role(current_user, $1::name, 'USAGE WITH ADMIN OPTION')", role):
            problems.append(f"{db.admin_user} has no ADMIN OPTION on {role} ({level})")
            fixes.append(f'GRANT "{role}" TO "{db.admin_user}" WITH ADMIN OPTION;')
    if problems:
        return Check(name, "fail", "; ".join(problems), "as a superuser: " + " ".join(fixes))
    roles = ", ".join(sorted(db.roles.values())) or "no group roles"
    return Check(name, "ok", f"{db.admin_user} logs in, has CREATEROLE and ADMIN OPTION on {roles}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


# -- identity -----------------------------------------------------------------------------------


def check_issuer(issuer: IssuerConfig) -> Check:
    """The issuer's discovery document answers and its JWKS holds at least one key."""
    name = f"issuer {issuer.issuer}"
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as http:
            jwks_uri = issuer.jwks_uri or _discovered_jwks_uri(http, issuer.issuer)
            keys = http.get(jwks_uri).raise_for_status().json().get("keys")
    except (httpx.HTTPError, ValueError, AttributeError, KeyError) as exc:
        return Check(
            name,
            "fail",
            f"discovery or keys not reachable: {_first_line(exc)}",
            "check identity.issuers[].issuer (exactly the `iss` of its tokens), or set jwks_uri; "
            "the gateway must reach it over HTTPS",
        )
    if not isinstance(keys, list) or not keys:
        return Check(name, "fail", f"{jwks_uri} lists no keys", "check the issuer's signing keys (JWKS)")
    return Check(name, "ok", f"discovery answers; {len(keys)} key(s) at {jwks_uri}")


def _discovered_jwks_uri(http: httpx.Client, issuer: str) -> str:
    document = http.get(issuer.rstrip("/") + "/.well-known/openid-configuration").raise_for_status().json()
    return str(document["jwks_uri"])


def check_dev_issuer(settings: Settings) -> Check:
    """The dev issuer is for demos: say so, and whether its key exists yet."""
    key = settings.data_dir / "dev-issuer" / "signing-key.pem"
    where = f"key at {key}" if key.exists() else "its key is made at first start"
    return Check(
        "dev issuer",
        "warn",
        f"identity.dev_issuer is on ({where}): anyone who can run `sqlgate token` here can mint tokens",
        "fine for `sqlgate up` and tests; set identity.dev_issuer: false and configure identity.issuers in production",
    )


# -- TLS ----------------------------------------------------------------------------------------


def check_tls(settings: Settings) -> Check:
    """The listeners' certificate exists, loads, and is not expired or about to expire."""
    from cryptography import x509  # noqa: PLC0415

    configured = settings.proxy.tls_cert_file
    cert_path = configured or settings.data_dir / "tls" / "server.crt"
    if not cert_path.exists():
        if configured is None:
            return Check("tls", "ok", f"no certificate yet: a self-signed one is made at {cert_path} at first start")
        return Check("tls", "fail", f"proxy.tls_cert_file {cert_path} does not exist", "point it at the PEM file")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        return Check("tls", "fail", f"cannot read {cert_path}: {_first_line(exc)}", "give a PEM certificate")
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    expires = cert.not_valid_after_utc.isoformat()
    if left <= dt.timedelta(0):
        fix = "renew it" if configured else f"delete {cert_path} and its key: a new one is made at start"
        return Check("tls", "fail", f"{cert_path} expired on {expires}", fix)
    if left < dt.timedelta(days=CERT_WARN_DAYS):
        fix = "renew it" if configured else "the self-signed certificate is renewed at start within 7 days of expiry"
        return Check("tls", "warn", f"{cert_path} expires on {expires} ({left.days} day(s) left)", fix)
    return Check("tls", "ok", f"{cert_path} valid until {expires}")


# -- state database -----------------------------------------------------------------------------


def check_state(settings: Settings) -> Check:
    """The state database exists and every migration has been applied (nothing is applied here)."""
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    url = settings.state_url()
    if url.startswith("sqlite") and not Path(url.split(":///", 1)[-1]).exists():
        return Check("state", "warn", "the state database does not exist yet", "start the gateway once: it creates it")
    try:
        current, heads = asyncio.run(_migration_heads(url))
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return Check("state", "fail", f"cannot read the state database: {_first_line(exc)}", "check `state`")
    missing = heads - current
    if missing:
        return Check(
            "state",
            "fail",
            f"{len(missing)} migration branch(es) not at their newest revision",
            "start the gateway (`sqlgate serve`): it applies migrations at start",
        )
    return Check("state", "ok", f"migrations current ({len(heads)} branch(es))")


async def _migration_heads(url: str) -> tuple[set[str], set[str]]:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from alembic.script import ScriptDirectory  # noqa: PLC0415
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    from sqlgate.store.engine import alembic_config, async_url  # noqa: PLC0415

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))
    finally:
        await engine.dispose()
    return current, heads


# -- audit --------------------------------------------------------------------------------------


def check_audit(settings: Settings, *, state_ready: bool) -> list[Check]:
    """The signing key exists, trusted keys are pinned, and the stored hash chain verifies."""
    from sqlgate.audit.keys import signing_key_path  # noqa: PLC0415
    from sqlgate.cli.audit import _run, _trust, _verify_store  # noqa: PLC0415 - the same verification as `audit verify`

    key = signing_key_path(settings.data_dir, settings.audit.signing_key_file)
    checks: list[Check] = []
    if not key.exists():
        checks.append(Check("audit key", "warn", f"no signing key at {key} yet", "start the gateway once: it makes it"))
    elif not settings.audit.trusted_keys:
        checks.append(
            Check(
                "audit key",
                "warn",
                f"signing key at {key}, but no trusted key is pinned: whoever can replace it can re-sign the log",
                "add its fingerprint (`sqlgate audit pubkey --fingerprint`) to audit.trusted_keys",
            )
        )
    else:
        checks.append(Check("audit key", "ok", f"signing key at {key}; {len(settings.audit.trusted_keys)} pinned"))
    if not state_ready or not (key.exists() or settings.audit.trusted_keys):
        return checks
    try:
        trust = _trust(settings, None)
        report = _run(settings, lambda store: _verify_store(store, trust.ring, [], strict=False))
    except SqlgateError as exc:
        return [*checks, Check("audit chain", "fail", str(exc), "see `sqlgate audit verify`")]
    records = sum(c.records for c in report.chains.values())
    if not report.ok:
        first = report.findings[0]
        return [*checks, Check("audit chain", "fail", f"{report.status}: {first}", "run `sqlgate audit verify`")]
    return [*checks, Check("audit chain", "ok", f"intact: {records} record(s) in {len(report.chains)} chain(s)")]


def register(app: typer.Typer) -> None:
    """Add `doctor` to the command line."""
    app.command("doctor")(doctor)
