"""Real clients through the MySQL listener: mysql CLI, PyMySQL, asyncmy, SQLAlchemy (mysql+asyncmy), Connector/Python.

Each logs in with a token as its clear-text password and reads masked data; the
big table's 100,000 rows come through in the text protocol (PyMySQL, asyncmy) and
the binary protocol (Connector/Python's prepared statements).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import asyncmy
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from tests.mysqlproxy.conftest import BIG_ROWS

MASKED = [("Alice", "a***@example.com", "****"), ("Bob", "b***@example.org", "****")]
MYSQL = shutil.which("mysql")


def mysql_cli(gateway, token: str, sql: str, *extra: str) -> str:
    """Run the mysql CLI through the listener (the token in MYSQL_PWD, never on the command line)."""
    if MYSQL is None:
        pytest.skip("needs the mysql CLI (Debian's mariadb-client)")
    command = [MYSQL, "-h127.0.0.1", f"-P{gateway.mysql_port}", "-ualice", "--enable-cleartext-plugin", "-N", "-B"]
    result = subprocess.run(
        [*command, *extra, "-e", sql, "shop"],
        env={**os.environ, "MYSQL_PWD": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # MariaDB's client always allows clear text and says --enable-cleartext-plugin is obsolete; MySQL's needs it.
    return "".join(line for line in result.stdout.splitlines(keepends=True) if not line.startswith("WARNING:"))


def test_the_mysql_cli_reads_masked_rows(mysql_gateway):
    """The mysql CLI with --enable-cleartext-plugin, plain on loopback: rows with email and ssn masked."""
    token = mysql_gateway.token("alice", ("analysts",))
    out = mysql_cli(mysql_gateway, token, "SELECT name, email, ssn FROM customers ORDER BY id")
    assert [tuple(line.split("\t")) for line in out.splitlines()] == MASKED


def test_the_mysql_cli_over_tls(mysql_gateway):
    """The mysql CLI with --ssl: the client's own status says a cipher is in use."""
    token = mysql_gateway.token("alice", ("analysts",))
    out = mysql_cli(mysql_gateway, token, "status", "--ssl")
    assert "Cipher in use" in out


def test_the_mysql_cli_refusal_names_the_rule(mysql_gateway):
    """A refused statement prints MySQL's ERROR 1142 (42000) line with the rule."""
    if MYSQL is None:
        pytest.skip("needs the mysql CLI (Debian's mariadb-client)")
    result = subprocess.run(
        [MYSQL, "-h127.0.0.1", f"-P{mysql_gateway.mysql_port}", "-ualice", "--enable-cleartext-plugin", "shop"],
        input="DELETE FROM orders;\n",
        env={**os.environ, "MYSQL_PWD": mysql_gateway.token("alice", ("analysts",))},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "ERROR 1142 (42000)" in result.stderr
    assert "rule analysts-read" in result.stderr


def test_pymysql_reads_masked_rows_and_100k_rows_in_text(mysql_gateway):
    """PyMySQL (text protocol): masked columns, a computed column over email masked whole, 100,000 rows."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("analysts",)))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, email, ssn FROM customers ORDER BY id")
            assert cur.fetchall() == tuple(MASKED)
            cur.execute("SELECT UPPER(email), LENGTH(name) FROM customers ORDER BY id")
            assert cur.fetchall() == (("****", 5), ("****", 3))
            cur.execute("SELECT id, label, amount FROM big ORDER BY id")
            rows = cur.fetchall()
        assert len(rows) == BIG_ROWS
        assert rows[-1] == (BIG_ROWS, f"row-{BIG_ROWS}", BIG_ROWS / 4)
    finally:
        conn.close()


def test_pymysql_over_tls(mysql_gateway):
    """PyMySQL with an SSL context (the gateway's self-signed certificate, not verified here)."""
    import ssl  # noqa: PLC0415

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("engineers",)), ssl=context)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT email FROM customers ORDER BY id")
            assert cur.fetchall() == (("alice@example.com",), ("bob@example.org",))
    finally:
        conn.close()


def test_asyncmy_reads_masked_rows_and_100k_rows(mysql_gateway):
    """The asyncmy driver (the broker's own driver) through the listener."""

    async def run() -> tuple[list, int]:
        conn = await asyncmy.connect(
            host="127.0.0.1",
            port=mysql_gateway.mysql_port,
            user="alice",
            password=mysql_gateway.token("alice", ("analysts",)),
            database="shop",
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT name, email, ssn FROM customers ORDER BY id")
                masked = list(await cur.fetchall())
                await cur.execute("SELECT id FROM big")
                count = len(await cur.fetchall())
        finally:
            conn.close()
        return masked, count

    masked, count = asyncio.run(run())
    assert [tuple(r) for r in masked] == MASKED
    assert count == BIG_ROWS


def test_sqlalchemy_with_asyncmy(mysql_gateway):
    """SQLAlchemy's mysql+asyncmy dialect initialises through the listener and runs a bound query."""
    url = URL.create(
        "mysql+asyncmy",
        username="alice",
        password=mysql_gateway.token("alice", ("analysts",)),
        host="127.0.0.1",
        port=mysql_gateway.mysql_port,
        database="shop",
    )

    async def run() -> list:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text("SELECT name, email FROM customers WHERE id = :id"), {"id": 2})
                return list(result)
        finally:
            await engine.dispose()

    assert [tuple(r) for r in asyncio.run(run())] == [("Bob", "b***@example.org")]


def connector(gateway, token: str):
    """A mysql-connector-python connection (pure Python) over TLS: it sends clear-text passwords only over TLS."""
    mysql_connector = pytest.importorskip("mysql.connector")
    return mysql_connector.connect(
        host="127.0.0.1",
        port=gateway.mysql_port,
        user="alice",
        password=token,
        database="shop",
        auth_plugin="mysql_clear_password",
        ssl_verify_cert=False,
        use_pure=True,
    )


def test_prepared_statements_in_the_binary_protocol_are_masked(mysql_gateway):
    """COM_STMT_PREPARE / EXECUTE (binary rows): parameters bound, email and ssn masked, 100,000 rows."""
    conn = connector(mysql_gateway, mysql_gateway.token("alice", ("analysts",)))
    try:
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT name, email, ssn, id FROM customers WHERE id >= ? ORDER BY id", (1,))
        assert [tuple(r) for r in cur.fetchall()] == [(*m, i) for m, i in zip(MASKED, (1, 2), strict=True)]
        cur.execute("SELECT id, label, amount FROM big WHERE id > ?", (0,))
        rows = cur.fetchall()
        assert len(rows) == BIG_ROWS
        assert tuple(rows[-1]) == (BIG_ROWS, f"row-{BIG_ROWS}", BIG_ROWS / 4)
        with pytest.raises(Exception, match="1142"):
            cur.execute("DELETE FROM orders WHERE id = ?", (1,))
        cur.close()
    finally:
        conn.close()


def test_prepared_statement_executions_are_audited_with_parameters(mysql_gateway):
    """Each COM_STMT_EXECUTE is one statement record with the prepared text and the bound values."""
    from tests.mysqlproxy.conftest import records  # noqa: PLC0415

    conn = connector(mysql_gateway, mysql_gateway.token("alice", ("engineers",)))
    try:
        cur = conn.cursor(prepared=True)
        for value in (1, 2):
            cur.execute("SELECT name FROM customers WHERE id = ? /* executed-twice */", (value,))
            cur.fetchall()
        cur.close()
    finally:
        conn.close()
    found = records(mysql_gateway, "statement", grep="executed-twice")
    assert [r["data"]["params"] for r in found] == [["1"], ["2"]]
    assert all(r["data"]["rows"] == 1 for r in found)


def test_mysqlclient_is_not_covered_here():
    """The mysqlclient driver (MySQLdb) needs the C client headers to build."""
    pytest.importorskip("MySQLdb", reason="mysqlclient does not build on this machine (no libmysqlclient headers)")
