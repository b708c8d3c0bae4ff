"""Logging in through the MySQL listener: a token as the clear-text password, refusals with MySQL codes."""

from __future__ import annotations

import ssl

import pymysql
import pytest

from tests.mysqlproxy.conftest import MysqlGateway
from tests.tlskit import own_address


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


OWN_ADDRESS = own_address()


@pytest.mark.skipif(
    OWN_ADDRESS is None, reason="needs a non-loopback IPv4 address on this machine (hostname -I lists none)"
)
def test_tls_is_required_off_loopback(tmp_path):
    """On 0.0.0.0 a client without TLS is refused before it sends its token; with TLS it logs in."""
    gateway = MysqlGateway(tmp_path, listen="0.0.0.0")  # noqa: S104 - the test needs a non-loopback client
    try:
        token = gateway.token("alice", ("engineers",))
        for host in (OWN_ADDRESS, "127.0.0.1"):
            with pytest.raises(pymysql.err.OperationalError) as caught:
                pymysql.connect(
                    host=host, port=gateway.mysql_port, user="alice", password=token, database="shop", ssl_disabled=True
                )
            assert caught.value.args[0] == 1045
            assert "only over TLS" in caught.value.args[1]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = pymysql.connect(
            host=OWN_ADDRESS, port=gateway.mysql_port, user="alice", password=token, database="shop", ssl=context
        )
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()
    finally:
        gateway.stop()


def test_every_login_is_audited_even_with_the_same_token(mysql_gateway):
    """Two MySQL logins with one token are two auth.success records (as on pgwire), protocol mysql."""
    from tests.mysqlproxy.conftest import records  # noqa: PLC0415

    token = mysql_gateway.token("twice", ("engineers",))
    for _ in range(2):
        mysql_gateway.connect(token, user="twice").close()
    logins = [
        r
        for r in records(mysql_gateway, "auth.success")
        if r["principal"]["subject"] == "twice" and r["data"]["protocol"] == "mysql"
    ]
    assert len(logins) == 2
