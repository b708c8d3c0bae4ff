"""PostgreSQL: one role per lease, created with a SCRAM verifier and dropped without leftovers.

Mint is one round trip: ``CREATE ROLE ... LOGIN PASSWORD '<verifier>' VALID UNTIL
... CONNECTION LIMIT n IN ROLE <group>`` and ``COMMENT ON ROLE`` in one implicit
transaction, so a role never exists without the marker that lets the reaper
find it. Revoke locks the role (NOLOGIN), terminates its backends until none is
left, reassigns and drops what it owns in every database where it owns or holds
anything (found in ``pg_shdepend``, the catalogue DROP ROLE itself checks), and
drops it; a last check terminates any session that slipped through.

The admin needs CREATEROLE and ADMIN OPTION on each group role; the revoking
admin grants itself each login it drops (it holds ADMIN OPTION on roles it
created), which is what REASSIGN OWNED and pg_terminate_backend need on
PostgreSQL 16+, and must have the privileges of ``owner_role`` when that is
another role.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.broker.backends.base import FoundLogin, MintSpec
from sqlgate.broker.names import lease_id_of, login_name, login_pattern, quote_ident, quote_literal
from sqlgate.broker.scram import scram_sha256_verifier
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from sqlgate.identity.principal import Principal

_TERMINATE_ROUNDS = 100
_CONNECT_TIMEOUT = 10


class PostgresBackend:
    """Mints and revokes roles on one PostgreSQL server through a small admin pool."""

    engine = "postgres"
    mints_logins = True

    def __init__(self, config: DatabaseConfig) -> None:
        self._config = config
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._pattern = login_pattern(config.login_prefix)

    # -- Backend -------------------------------------------------------------

    def login_for(self, principal: Principal, privilege: str) -> str:
        """``<prefix>_<name>_<random>``, at most 63 characters."""
        del privilege
        return login_name(self._config.login_prefix, principal)

    async def prepare(self, spec: MintSpec) -> MintSpec:
        """Compute the SCRAM verifier (PBKDF2, in a thread)."""
        if spec.password is None:
            raise BrokerError("a PostgreSQL login needs a password")
        return replace(spec, server_secret=await asyncio.to_thread(scram_sha256_verifier, spec.password))

    async def mint(self, spec: MintSpec) -> None:
        """CREATE ROLE and COMMENT ON ROLE in one transaction."""
        if spec.group_role is None:
            raise BrokerError("a PostgreSQL login needs a group role")
        verifier = spec.server_secret or (await self.prepare(spec)).server_secret
        if not verifier:
            raise BrokerError("a PostgreSQL login needs a password")
        login = quote_ident(spec.login)
        sql = (
            f"CREATE ROLE {login} LOGIN PASSWORD {quote_literal(verifier)}"
            f" VALID UNTIL {quote_literal(spec.expires_at.isoformat())}"
            f" CONNECTION LIMIT {int(spec.connection_limit)} IN ROLE {quote_ident(spec.group_role)};"
            f" COMMENT ON ROLE {login} IS {quote_literal(spec.comment)}"
        )
        await self._execute(sql)

    async def renew(self, login: str, expires_at: datetime) -> None:
        """ALTER ROLE ... VALID UNTIL."""
        await self._execute(f"ALTER ROLE {quote_ident(login)} VALID UNTIL {quote_literal(expires_at.isoformat())}")

    async def revoke(self, login: str) -> None:
        """NOLOGIN, terminate sessions, REASSIGN/DROP OWNED wherever it owns anything, DROP ROLE."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            oid = await conn.fetchval("SELECT oid FROM pg_roles WHERE rolname = $1", login)
            if oid is None:
                return
            role = quote_ident(login)
            await conn.execute(f"ALTER ROLE {role} NOLOGIN; GRANT {role} TO {quote_ident(self._config.admin_user)}")
            await _terminate(conn, oid)
            for dbname in await _databases_with_dependencies(conn, oid):
                if dbname != self._config.dbname:
                    await self._disown_in(dbname, role)
            await conn.execute(f"REASSIGN OWNED BY {role} TO {self._owner()}; DROP OWNED BY {role}; DROP ROLE {role}")
            await _terminate(conn, oid)

    async def logins(self) -> list[FoundLogin]:
        """Roles named like ours that carry our marker comment, with the lease id it names."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles "
                "WHERE starts_with(rolname, $1)",
                self._config.login_prefix + "_",
            )
        found = [FoundLogin(row["rolname"], lease_id_of(row["comment"])) for row in rows]
        return [login for login in found if login.lease_id and self._pattern.match(login.login)]

    async def rotate_admin(self, new_password: str) -> None:
        """ALTER ROLE admin PASSWORD '<verifier>', then log in with it; on failure put the old verifier back."""
        old_password = self._config.admin_password_value()
        pool = await self.pool()
        async with pool.acquire() as conn:
            await self._set_admin_password(conn, new_password)
            try:
                proof = await self._connect(self._config.dbname, new_password)
                await proof.close()
            except Exception as exc:
                await self._set_admin_password(conn, old_password)
                raise BrokerError(f"the new admin password did not work, the old one was kept: {exc}") from exc

    async def restore_admin(self, old_password: str) -> None:
        """Put ``old_password`` back (used when the new secret could not be saved)."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            await self._set_admin_password(conn, old_password)

    async def connect(self, login: str, password: str | None, dbname: str | None = None) -> Any:
        """An asyncpg connection as ``login`` (with this database's TLS settings)."""
        args = self._connect_args(dbname or self._config.dbname, password)
        args["user"] = login
        try:
            return await asyncpg.connect(**args)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise UpstreamError(f"cannot log in to {self._where()} as {login}: {exc}") from exc

    async def close(self) -> None:
        """Close the admin pool."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- admin connections ---------------------------------------------------

    async def pool(self) -> asyncpg.Pool:
        """The admin pool (created on first use; each new connection re-reads the admin secret)."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> asyncpg.Pool:
        try:
            return await asyncpg.create_pool(
                **self._connect_args(self._config.dbname, self._config.admin_password_value),
                min_size=0,
                max_size=self._config.admin_pool_size,
                max_inactive_connection_lifetime=60,
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise BrokerError(f"cannot reach {self._where()} as {self._config.admin_user}: {exc}") from exc

    async def _connect(self, dbname: str, password: str | None = None) -> asyncpg.Connection:
        secret: Any = password if password is not None else self._config.admin_password_value
        return await asyncpg.connect(**self._connect_args(dbname, secret))

    def _connect_args(self, dbname: str, password: Any) -> dict[str, Any]:
        return {
            "host": self._config.host,
            "port": self._config.port,
            "user": self._config.admin_user,
            "password": password,
            "database": dbname,
            "ssl": _ssl(self._config),
            "timeout": _CONNECT_TIMEOUT,
            "server_settings": {"application_name": "sqlgate-broker"},
        }

    async def _execute(self, sql: str) -> None:
        pool = await self.pool()
        async with pool.acquire() as conn:
            await conn.execute(sql)

    async def _disown_in(self, dbname: str, role: str) -> None:
        try:
            conn = await self._connect(dbname)
        except asyncpg.InvalidCatalogNameError:
            return  # dropped meanwhile: nothing left there to own
        try:
            await conn.execute(f"REASSIGN OWNED BY {role} TO {self._owner()}; DROP OWNED BY {role}")
        finally:
            await conn.close()

    async def _set_admin_password(self, conn: asyncpg.Connection, password: str) -> None:
        verifier = await asyncio.to_thread(scram_sha256_verifier, password)
        await conn.execute(f"ALTER ROLE {quote_ident(self._config.admin_user)} PASSWORD {quote_literal(verifier)}")

    def _owner(self) -> str:
        return quote_ident(self._config.owner_role or self._config.admin_user)

    def _where(self) -> str:
        return f"{self._config.host}:{self._config.port}/{self._config.dbname}"


async def _terminate(conn: asyncpg.Connection, oid: int) -> None:
    """Terminate every backend of role ``oid`` and wait until none is left."""
    for _ in range(_TERMINATE_ROUNDS):
        alive = await conn.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity "
            "WHERE usesysid = $1 AND pid <> pg_backend_pid()) AS t",
            oid,
        )
        if not alive:
            return
        await asyncio.sleep(0.01)
    raise BrokerError(f"sessions of role oid {oid} did not end after {_TERMINATE_ROUNDS} attempts")


async def _databases_with_dependencies(conn: asyncpg.Connection, oid: int) -> list[str]:
    """Databases where the role owns objects or holds privileges (and that accept connections)."""
    rows = await conn.fetch(
        "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid "
        "WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 AND d.datallowconn",
        oid,
    )
    return [row["datname"] for row in rows]


def _ssl(config: DatabaseConfig) -> Any:
    if config.tls == "verify-full":
        return ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    return config.tls
