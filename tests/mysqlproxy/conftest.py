"""A gateway with a MySQL listener in front of the machine's MariaDB (127.0.0.1:3306, root without password).

Skips, naming MariaDB, when no server answers there. Each test module gets its
own database, roles and admin account (named by a random tag) and a gateway
running on its own loop in a thread, so blocking clients (PyMySQL, the mysql CLI)
work against it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from sqlgate.audit.search import search
from sqlgate.config import load_settings
from sqlgate.server.run import start_gateway
from tests.gateway import RunningGateway, _close_loop

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

POLICY = """\
rules:
  - name: analysts-read
    who: {groups: [analysts]}
    databases: [shop]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: engineers-read
    who: {groups: [engineers]}
    databases: [shop]
    role: read
    max_ttl: 1h
  - name: writers
    who: {groups: [writers]}
    databases: [shop]
    role: write
    max_ttl: 1h
    guardrails: {deny: [ddl, dcl]}
"""
BIG_ROWS = 100_000


def root_sql(*statements: str, database: str | None = None, port: int = 3306) -> list[tuple[Any, ...]]:
    """Run statements as MariaDB's root (the machine's server, or another on ``port``); the last one's rows."""
    conn = pymysql.connect(**{**MARIADB, "port": port}, database=database, autocommit=True, connect_timeout=3)
    try:
        rows: list[tuple[Any, ...]] = []
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall() or [])
        return rows
    finally:
        conn.close()


def mariadb_or_skip() -> None:
    """Skip (naming MariaDB) when the machine's server does not answer."""
    try:
        root_sql("SELECT 1")
    except (pymysql.MySQLError, OSError) as exc:
        pytest.skip(f"needs MariaDB on 127.0.0.1:3306 (root, no password): {exc}")


class MysqlGateway(RunningGateway):
    """A gateway whose one database, ``shop``, is a MariaDB database with customers, orders and a big table."""

    def __init__(
        self, workdir: Path, policy: str = POLICY, *, port: int = 3306, tls: str = "disable", listen: str = "127.0.0.1"
    ) -> None:
        self.workdir = workdir
        self.listen = listen
        self.server_port = port
        self.tls = tls
        self.tag = secrets.token_hex(3)
        self.database = f"t_{self.tag}"
        self.admin = f"adm_{self.tag}"
        self.roles = {"read": f"grp_read_{self.tag}", "write": f"grp_write_{self.tag}"}
        self.login_prefix = f"m{self.tag}"
        self._prepare(policy)
        self.settings = load_settings(workdir / "sqlgate.yaml")
        self._start(start_gateway(self.settings))
        assert self.gateway.mysql is not None
        self.mysql_port = self.gateway.mysql.port

    def _prepare(self, policy: str) -> None:
        db, admin, read, write = self.database, self.admin, self.roles["read"], self.roles["write"]
        password = secrets.token_urlsafe(18)
        root_sql(
            f"CREATE DATABASE {db}",
            f"CREATE TABLE {db}.customers (id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), ssn VARCHAR(20))",
            f"INSERT INTO {db}.customers VALUES (1, 'Alice', 'alice@example.com', '123-45-6789'),"
            " (2, 'Bob', 'bob@example.org', '987-65-4321')",
            f"CREATE TABLE {db}.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT, note VARCHAR(100))",
            f"INSERT INTO {db}.orders (customer_id, note) VALUES (1, 'first'), (2, 'second')",
            f"CREATE TABLE {db}.big (id INT PRIMARY KEY, label VARCHAR(20), amount DOUBLE)",
            f"INSERT INTO {db}.big SELECT seq, CONCAT('row-', seq), seq / 4 FROM {db}.seq_1_to_{BIG_ROWS}",
            f"CREATE VIEW {db}.customer_view AS SELECT id, email FROM {db}.customers",
            f"CREATE ROLE {read}",
            f"GRANT SELECT ON {db}.* TO {read}",
            f"CREATE ROLE {write}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON {db}.* TO {write}",
            f"CREATE USER '{admin}'@'%' IDENTIFIED BY '{password}'",
            f"GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION",
            f"GRANT {read} TO '{admin}'@'%' WITH ADMIN OPTION",
            f"GRANT {write} TO '{admin}'@'%' WITH ADMIN OPTION",
            port=self.server_port,
        )
        secret = self.workdir / "admin.secret"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        (self.workdir / "policy.yaml").write_text(policy)
        (self.workdir / "sqlgate.yaml").write_text(
            f"data_dir: {self.workdir / 'data'}\n"
            f"listen: {{postgres: '127.0.0.1:0', http: '127.0.0.1:0', mysql: '{self.listen}:0'}}\n"
            "identity: {dev_issuer: true}\n"
            "api: {admin_groups: [sqlgate-admins], auditor_groups: [auditors]}\n"
            "databases:\n  shop:\n"
            f"    engine: mysql\n    host: 127.0.0.1\n    port: {self.server_port}\n    dbname: {db}\n"
            f"    admin_user: {admin}\n    admin_password_file: {secret}\n"
            f"    login_prefix: {self.login_prefix}\n    tls: {self.tls}\n"
            f"    roles: {{read: {read}, write: {write}}}\n"
            f"policy_file: {self.workdir / 'policy.yaml'}\n"
        )

    def connect(self, token: str, *, user: str = "alice", **extra: Any) -> pymysql.connections.Connection:
        """A PyMySQL connection through the listener, the token as the clear-text password."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.mysql_port,
            user=user,
            password=token,
            database="shop",
            connect_timeout=10,
            **extra,
        )

    def stop(self) -> None:
        """Stop the gateway and drop what the test made on MariaDB."""
        try:
            self.call(self.gateway.stop())
            self.call(asyncio.sleep(0.2))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            _close_loop(self.loop)
            logging.getLogger("sqlgate").removeHandler(self._logged)
        port = self.server_port
        users = root_sql(f"SELECT User FROM mysql.user WHERE User LIKE '{self.login_prefix}\\_%'", port=port)
        for (user,) in users:
            root_sql(f"DROP USER IF EXISTS '{user}'@'%'", port=port)
        root_sql(
            f"DROP USER IF EXISTS '{self.admin}'@'%'",
            f"DROP ROLE IF EXISTS {self.roles['read']}",
            f"DROP ROLE IF EXISTS {self.roles['write']}",
            f"DROP DATABASE IF EXISTS {self.database}",
            port=port,
        )
        self.assert_no_loop_errors()


@pytest.fixture(scope="module")
def mysql_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MysqlGateway]:
    """A gateway with a MySQL listener over a fresh MariaDB database."""
    mariadb_or_skip()
    gateway = MysqlGateway(tmp_path_factory.mktemp("mysqlgw"))
    yield gateway
    gateway.stop()


def records(gateway: RunningGateway, kind: str, *, grep: str | None = None) -> list[dict[str, Any]]:
    """Audit records of type ``kind`` (oldest first), once the log has written what it was given."""
    services = gateway.gateway.services
    gateway.call(services.audit.flush())
    page = gateway.call(search(services.store, type=kind, grep=grep, limit=1000))
    return list(reversed(page.records))


def sqlgate_connect_mysql(gateway: MysqlGateway, token: str, database: str, *args: str) -> list[str]:
    """What mysql prints for `SELECT email FROM customers ORDER BY id` run by `sqlgate connect DATABASE ARGS`."""
    if shutil.which("mysql") is None and shutil.which("mariadb") is None:
        pytest.skip("needs the mysql CLI (Debian's mariadb-client)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlgate",
            "connect",
            database,
            *args,
            "-c",
            str(gateway.workdir / "sqlgate.yaml"),
            "--port",
            str(gateway.mysql_port),
            "--",
            "-N",
            "-B",
            "-e",
            "SELECT email FROM customers ORDER BY id",
        ],
        env={**os.environ, "SQLGATE_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert token not in result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if not line.startswith("WARNING:")]
