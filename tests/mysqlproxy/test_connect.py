"""`sqlgate connect` starts the mysql CLI for a MySQL database, the token in its environment."""

from __future__ import annotations

from tests.mysqlproxy.conftest import sqlgate_connect_mysql


def test_sqlgate_connect_runs_mysql_through_the_listener(mysql_gateway):
    """`sqlgate connect shop -- -N -B -e ...` reads masked rows through the MySQL listener."""
    token = mysql_gateway.token("alice", ("analysts",))
    lines = sqlgate_connect_mysql(mysql_gateway, token, "shop")
    assert lines == ["a***@example.com", "b***@example.org"]
