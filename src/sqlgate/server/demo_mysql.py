"""The MySQL half of ``sqlgate up --mysql``: a demo database on a MariaDB found on 127.0.0.1:3306.

Nothing is embedded: the demo uses the machine's MariaDB (or MySQL) as ``root``
without a password, the way a developer's local server is usually set up. It
creates (idempotently) the ``sqlgate_demo`` database with the same customers
and orders as the PostgreSQL demo, two group roles (read, write) and an admin
account the broker mints logins with; its password lives in
``secrets/demo-mysql-admin`` (mode 0600) and is set again on each start.

The admin gets only what the MySQL broker needs: CREATE USER, PROCESS and
CONNECTION ADMIN (to see and end its logins' connections), UPDATE on ``mysql.*``
(``SET DEFAULT ROLE ... FOR``), SELECT on the demo database (its connections
open there) and ADMIN OPTION on the two roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncmy
from asyncmy.errors import Error as MysqlError

from sqlgate.server.demo import _admin_password

MYSQL_ALIAS = "demo_mysql"
MYSQL_DB = "sqlgate_demo"
MYSQL_ADMIN = "sqlgate_demo_admin"
MYSQL_ROLES = {"read": "sqlgate_demo_read", "write": "sqlgate_demo_write"}
MYSQL_LOGIN_PREFIX = "sgdemo"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3306

SCHEMA = (
    f"CREATE DATABASE IF NOT EXISTS {MYSQL_DB}",
    (
        f"CREATE TABLE IF NOT EXISTS {MYSQL_DB}.customers ("
        " id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100) NOT NULL,"
        " ssn VARCHAR(9), region VARCHAR(8) NOT NULL)"
    ),
    (
        f"CREATE TABLE IF NOT EXISTS {MYSQL_DB}.orders ("
        " id INT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10, 2) NOT NULL,"
        " status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL,"
        f" FOREIGN KEY (customer_id) REFERENCES {MYSQL_DB}.customers (id))"
    ),
    # the same rows as the PostgreSQL demo (ELT picks the i-th of its arguments)
    (
        f"INSERT IGNORE INTO {MYSQL_DB}.customers (id, name, email, ssn, region)"
        " SELECT i, CONCAT(ELT(1 + i % 8, 'Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'), ' ', i),"
        " CONCAT('customer', i, '@example.com'), LPAD(i * 7919 % 1000000000, 9, '0'),"
        " ELT(1 + i % 3, 'eu', 'us', 'apac')"
        f" FROM (SELECT seq AS i FROM {MYSQL_DB}.seq_1_to_200) AS s"
    ),
    (
        f"INSERT IGNORE INTO {MYSQL_DB}.orders (id, customer_id, total, status, created_at)"
        " SELECT i, 1 + i % 200, ROUND((i * 37 % 50000) / 100.0, 2), ELT(1 + i % 3, 'paid', 'shipped', 'refunded'),"
        " TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (i * 3) HOUR"
        f" FROM (SELECT seq AS i FROM {MYSQL_DB}.seq_1_to_1000) AS s"
    ),
)


@dataclass(frozen=True)
class MysqlDemo:
    """Where the demo's MariaDB is, and the admin secret's file."""

    host: str
    port: int
    admin_secret: Path


def setup_sql(admin_password: str) -> list[str]:
    """Every statement that makes the demo database, roles and admin (each safe to run again)."""
    read, write = MYSQL_ROLES["read"], MYSQL_ROLES["write"]
    admin = f"'{MYSQL_ADMIN}'@'%'"
    return [
        *SCHEMA,
        f"CREATE ROLE IF NOT EXISTS {read}",
        f"CREATE ROLE IF NOT EXISTS {write}",
        f"GRANT SELECT ON {MYSQL_DB}.* TO {read}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES ON {MYSQL_DB}.* TO {write}",
        f"CREATE USER IF NOT EXISTS {admin} IDENTIFIED BY '{admin_password}'",
        f"ALTER USER {admin} IDENTIFIED BY '{admin_password}'",
        f"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO {admin}",
        f"GRANT UPDATE ON mysql.* TO {admin}",
        f"GRANT SELECT ON {MYSQL_DB}.* TO {admin}",
        f"GRANT {read} TO {admin} WITH ADMIN OPTION",
        f"GRANT {write} TO {admin} WITH ADMIN OPTION",
    ]


async def mariadb_answers(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str | None:
    """None when a MariaDB/MySQL server lets root in without a password at host:port, else why not."""
    try:
        conn = await asyncmy.connect(host=host, port=port, user="root", password="", connect_timeout=3)
    except (MysqlError, OSError) as exc:
        return str(exc) or type(exc).__name__
    conn.close()
    return None


async def prepare_mysql_demo(data_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> MysqlDemo:
    """Create (or refresh) the demo database, roles and admin on the server at host:port as root."""
    secret = data_dir / "secrets" / "demo-mysql-admin"
    password = _admin_password(secret)
    conn = await asyncmy.connect(host=host, port=port, user="root", password="", connect_timeout=5, autocommit=True)
    try:
        async with conn.cursor() as cur:
            for statement in setup_sql(password):
                await cur.execute(statement)
    finally:
        conn.close()
    return MysqlDemo(host=host, port=port, admin_secret=secret)


def mysql_database_yaml(demo: MysqlDemo) -> str:
    """The ``databases`` entry (indented under ``databases:``) of the demo's MySQL database."""
    return (
        f"  {MYSQL_ALIAS}:\n"
        "    engine: mysql\n"
        f"    host: {demo.host}\n"
        f"    port: {demo.port}\n"
        f"    dbname: {MYSQL_DB}\n"
        f"    admin_user: {MYSQL_ADMIN}\n"
        f"    admin_password_file: {demo.admin_secret}\n"
        f"    login_prefix: {MYSQL_LOGIN_PREFIX}\n"
        f"    roles: {{read: {MYSQL_ROLES['read']}, write: {MYSQL_ROLES['write']}}}\n"
    )
