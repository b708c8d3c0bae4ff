"""Guardrails through the MySQL listener: a corpus refused with ERR 1142 / 42000 naming the rule, a corpus that runs.

The grant is ``analysts-read`` (read only: write, ddl, dcl and admin denied; email and
ssn masked). Refusals come from the gateway, never the server: the message names the
rule, and the audit log records each one as denied.
"""

from __future__ import annotations

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests.mysqlproxy.conftest import records
from tests.mysqlproxy.corpus import HARMLESS, REFUSED


@pytest.fixture(scope="module")
def analyst(mysql_gateway):
    """One analyst connection that may send several statements in one COM_QUERY."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("analysts",)), client_flag=CLIENT.MULTI_STATEMENTS)
    yield conn
    conn.close()


def test_the_corpora_are_big_enough():
    """At least 40 refused statements and 20 harmless ones."""
    assert len(REFUSED) >= 40
    assert len(HARMLESS) >= 20


@pytest.mark.parametrize("sql", REFUSED)
def test_refused(analyst, sql):
    """Each statement is refused by the gateway with 1142 / 42000 and the rule's name."""
    with analyst.cursor() as cur, pytest.raises(pymysql.err.MySQLError) as caught:
        cur.execute(sql)
    code, message = caught.value.args[0], caught.value.args[1]
    assert code == 1142, message
    assert "rule analysts-read" in message


@pytest.mark.parametrize("sql", HARMLESS)
def test_harmless(analyst, mysql_gateway, sql):
    """Each statement runs (USE of the granted database included)."""
    with analyst.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
        cur.execute(f"USE {mysql_gateway.database}")


def test_refusals_and_runs_are_audited_once_each(mysql_gateway):
    """A refused statement is recorded as denied with its reason; a run one as success with its rows."""
    conn = mysql_gateway.connect(mysql_gateway.token("rita", ("analysts",)), user="rita")
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM orders WHERE id <= 2 /* audited-run */")
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("DELETE FROM orders WHERE id = 1 /* audited-refusal */")
    conn.close()
    (run,) = records(mysql_gateway, "statement", grep="audited-run")
    assert run["outcome"] == "success"
    assert run["data"]["protocol"] == "mysql"
    assert run["data"]["rows"] == 2
    (refused,) = records(mysql_gateway, "statement", grep="audited-refusal")
    assert refused["outcome"] == "denied"
    assert refused["data"]["sqlstate"] == "42000"
    assert "write statements are not allowed" in refused["reason"]


def test_init_db_only_to_the_granted_database(mysql_gateway):
    """COM_INIT_DB to the session's database works; to another one it is refused."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("analysts",)))
    try:
        conn.select_db(mysql_gateway.database)
        with pytest.raises(pymysql.err.MySQLError) as caught:
            conn.select_db("mysql")
        assert caught.value.args[0] == 1142
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone()[0] == mysql_gateway.database
    finally:
        conn.close()


def test_a_writer_writes_and_still_cannot_change_identity(mysql_gateway):
    """The writers' grant inserts; SET ROLE is refused whatever the grant."""
    conn = mysql_gateway.connect(mysql_gateway.token("wendy", ("writers",)), user="wendy", autocommit=True)
    try:
        with conn.cursor() as cur:
            assert cur.execute("INSERT INTO orders (customer_id, note) VALUES (1, 'by wendy')") == 1
            with pytest.raises(pymysql.err.MySQLError) as caught:
                cur.execute("SET ROLE NONE")
            assert "identity" in caught.value.args[1]
            with pytest.raises(pymysql.err.MySQLError) as denied:
                cur.execute("DROP TABLE orders")
            assert "rule writers" in denied.value.args[1]
    finally:
        conn.close()
