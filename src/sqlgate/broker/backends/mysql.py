"""MariaDB and MySQL: one account per lease, granted the mapped role as its default role.

``CREATE USER`` (on MariaDB with a ``mysql_native_password`` hash computed here,
so no plaintext reaches the server), ``GRANT <role> TO`` it and ``SET DEFAULT
ROLE``. MariaDB has no comments on accounts and no ``VALID UNTIL``: a login is
recognised by its name (``<prefix>_<name>_<12 hex>``) and the lease table, and
expiry is enforced by the reaper (and by the gateway ending sessions). Revoke
locks the account, kills its connections until none is left, and drops it.

The admin needs CREATE USER, ADMIN OPTION on each mapped role, and PROCESS and
CONNECTION ADMIN (or SUPER) to see and kill other accounts' connections.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncmy
from asyncmy.errors import Error as MysqlError

from sqlgate.broker.backends.base import FoundLogin, MintSpec
from sqlgate.broker.names import login_name, login_pattern, mysql_ident, mysql_string
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from sqlgate.identity.principal import Principal

MAX_LOGIN = 32  # MySQL 5.7+/8 user names; MariaDB allows 80
_KILL_ROUNDS = 100
_UNKNOWN_THREAD = 1094


def native_password_hash(password: str) -> str:
    """The ``mysql_native_password`` hash: ``*`` + upper hex of SHA1(SHA1(password))."""
    digest = hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest()  # noqa: S324 - the server's format
    return "*" + digest.upper()


class MysqlBackend:
    """Mints and revokes accounts on one MariaDB/MySQL server."""

    engine = "mysql"
    mints_logins = True

    def __init__(self, config: DatabaseConfig) -> None:
        self._config = config
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(config.admin_pool_size)
        self._pattern = login_pattern(config.login_prefix)
        self._mariadb: bool | None = None

    def login_for(self, principal: Principal, privilege: str) -> str:
        """``<prefix>_<name>_<random>``, at most 32 characters."""
        del privilege
        return login_name(self._config.login_prefix, principal, max_length=MAX_LOGIN)

    async def prepare(self, spec: MintSpec) -> MintSpec:
        """Nothing to prepare ahead of the server."""
        return spec

    async def mint(self, spec: MintSpec) -> None:
        """CREATE USER, GRANT the role, SET DEFAULT ROLE."""
        if spec.password is None or spec.group_role is None:
            raise BrokerError("a MySQL login needs a password and a role")
        account = self._account(spec.login)
        role = mysql_ident(spec.group_role)
        async with self._connection() as conn:
            secret = await self._identified_by(conn, spec.password)
            await _run(
                conn,
                f"CREATE USER {account} IDENTIFIED BY {secret} WITH MAX_USER_CONNECTIONS {int(spec.connection_limit)}",
                f"GRANT {role} TO {account}",
                f"SET DEFAULT ROLE {role} FOR {account}",
            )

    async def renew(self, login: str, expires_at: datetime) -> None:
        """Nothing on the server: MariaDB has no VALID UNTIL; the stored expiry moves and the reaper enforces it."""
        del login, expires_at

    async def revoke(self, login: str) -> None:
        """ACCOUNT LOCK, KILL every connection until none is left, DROP USER."""
        account = self._account(login)
        async with self._connection() as conn:
            await _run(conn, f"ALTER USER IF EXISTS {account} ACCOUNT LOCK")
            await _kill_all(conn, login)
            await _run(conn, f"DROP USER IF EXISTS {account}")
            await _kill_all(conn, login)

    async def logins(self) -> list[FoundLogin]:
        """Accounts named like ours (MariaDB keeps no comment, so the lease is found by login name)."""
        async with self._connection() as conn, conn.cursor() as cur:
            await cur.execute("SELECT DISTINCT User FROM mysql.user WHERE User LIKE %s", (self._like_prefix(),))
            rows = await cur.fetchall()
        names = [row[0].decode() if isinstance(row[0], bytes) else str(row[0]) for row in rows]
        return [FoundLogin(name, None) for name in names if self._pattern.match(name)]

    async def rotate_admin(self, new_password: str) -> None:
        """Set the admin's password and prove it with a new connection; put the old one back if that fails."""
        old_password = self._config.admin_password_value()
        async with self._connection() as conn:
            await self._set_admin_password(conn, new_password)
            try:
                proof = await self._connect(new_password)
                proof.close()
            except Exception as exc:
                await self._set_admin_password(conn, old_password)
                raise BrokerError(f"the new admin password did not work, the old one was kept: {exc}") from exc

    async def restore_admin(self, old_password: str) -> None:
        """Put the previous admin password back."""
        async with self._connection() as conn:
            await self._set_admin_password(conn, old_password)

    async def connect(self, login: str, password: str | None, dbname: str | None = None) -> Any:
        """An asyncmy connection as ``login``."""
        try:
            return await asyncmy.connect(
                host=self._config.host,
                port=self._config.port,
                user=login,
                password=password or "",
                database=dbname or self._config.dbname,
                connect_timeout=10,
            )
        except (MysqlError, OSError) as exc:
            raise UpstreamError(f"cannot log in to MySQL at {self._config.host} as {login}: {exc}") from exc

    async def close(self) -> None:
        """Close idle admin connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- internals -----------------------------------------------------------

    def _account(self, login: str) -> str:
        return f"{mysql_string(login)}@{mysql_string(self._config.login_host)}"

    def _like_prefix(self) -> str:
        return self._config.login_prefix.replace("_", "\\_") + "\\_%"

    async def _identified_by(self, conn: Any, password: str) -> str:
        if self._mariadb is None:
            async with conn.cursor() as cur:
                await cur.execute("SELECT VERSION()")
                self._mariadb = "mariadb" in str((await cur.fetchone())[0]).lower()
        if self._mariadb:
            return f"PASSWORD {mysql_string(native_password_hash(password))}"
        return mysql_string(password)

    async def _set_admin_password(self, conn: Any, password: str) -> None:
        # The account is named: MariaDB 10.11 stores ``CURRENT_USER() IDENTIFIED BY PASSWORD '<hash>'`` wrongly.
        async with conn.cursor() as cur:
            await cur.execute("SELECT CURRENT_USER()")
            user, _, host = str((await cur.fetchone())[0]).rpartition("@")
        secret = await self._identified_by(conn, password)
        await _run(conn, f"ALTER USER {mysql_string(user)}@{mysql_string(host)} IDENTIFIED BY {secret}")

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException:
                conn.close()
                raise
            self._idle.append(conn)

    async def _connect(self, password: str | None = None) -> Any:
        try:
            return await asyncmy.connect(
                host=self._config.host,
                port=self._config.port,
                user=self._config.admin_user,
                password=self._config.admin_password_value() if password is None else password,
                database=self._config.dbname,
                autocommit=True,
                connect_timeout=10,
            )
        except (MysqlError, OSError) as exc:
            where = f"{self._config.host}:{self._config.port}"
            raise BrokerError(f"cannot reach MySQL at {where} as {self._config.admin_user}: {exc}") from exc


async def _run(conn: Any, *statements: str) -> None:
    async with conn.cursor() as cur:
        for statement in statements:
            await cur.execute(statement)


async def _kill_all(conn: Any, login: str) -> None:
    """KILL every connection of ``login`` until the process list shows none."""
    for _ in range(_KILL_ROUNDS):
        async with conn.cursor() as cur:
            await cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (login,))
            ids = [int(row[0]) for row in await cur.fetchall()]
            if not ids:
                return
            for thread_id in ids:
                try:
                    await cur.execute(f"KILL CONNECTION {thread_id}")
                except MysqlError as exc:
                    if exc.args and exc.args[0] != _UNKNOWN_THREAD:
                        raise
        await asyncio.sleep(0.01)
    raise BrokerError(f"connections of {login} did not end after {_KILL_ROUNDS} attempts")
