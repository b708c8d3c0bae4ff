"""Logging in through the MySQL listener: a token as the clear-text password, refusals with MySQL codes."""

from __future__ import annotations

import pymysql
import pytest


def test_a_token_logs_in_and_the_server_sees_the_minted_login(mysql_gateway):
    """PyMySQL with the token as password reads as the login the broker minted for alice."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("engineers",)))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE()")
            user, database = cur.fetchone()
            assert user.startswith(f"{mysql_gateway.login_prefix}_alice")
            assert database == mysql_gateway.database
            cur.execute("SELECT name FROM customers ORDER BY id")
            assert [r[0] for r in cur.fetchall()] == ["Alice", "Bob"]
    finally:
        conn.close()


def test_a_wrong_token_is_refused_with_1045(mysql_gateway):
    """A token that does not verify: ERR 1045 / 28000, and nothing reaches the server."""
    with pytest.raises(pymysql.err.OperationalError) as caught:
        mysql_gateway.connect("not-a-token")
    assert caught.value.args[0] == 1045


def test_no_rule_for_the_caller_is_refused_with_1044(mysql_gateway):
    """A caller no rule grants: ERR 1044 naming the database."""
    with pytest.raises(pymysql.err.OperationalError) as caught:
        mysql_gateway.connect(mysql_gateway.token("mallory", ("nobody",)), user="mallory")
    assert caught.value.args[0] == 1044
    assert "shop" in caught.value.args[1]


def test_an_unknown_database_is_refused_with_1049(mysql_gateway):
    """A database alias the gateway does not serve: ERR 1049 listing the MySQL databases."""
    with pytest.raises(pymysql.err.OperationalError) as caught:
        pymysql.connect(
            host="127.0.0.1",
            port=mysql_gateway.mysql_port,
            user="alice",
            password=mysql_gateway.token("alice", ("engineers",)),
            database="nope",
        )
    assert caught.value.args[0] == 1049
    assert "shop" in caught.value.args[1]
