"""The connection budget: the idle cap, connection_limit and max_connections checked together."""

from __future__ import annotations

from sqlgate.config import DatabaseConfig, ProxyConfig
from sqlgate.proxy.budget import ServerLimits, budget_problems, budget_summary


def _db(**fields) -> DatabaseConfig:
    return DatabaseConfig(host="db", dbname="app", admin_user="admin", admin_password_env="UNUSED", **fields)


def test_the_defaults_are_consistent_with_a_default_server():
    """connection_limit 10, idle cap 8, admin pool 10 against max_connections 100 (3 reserved)."""
    assert budget_problems("demo", _db(), ProxyConfig(), ServerLimits(100, 3)) == []
    assert "about 9 login(s)" in budget_summary("demo", _db(), ProxyConfig(), ServerLimits(100, 3))


def test_an_idle_cap_at_the_login_limit_is_named_with_both_settings():
    """Idle pooled connections could use up the login's limit: both settings are named."""
    (problem,) = budget_problems("demo", _db(connection_limit=4), ProxyConfig(upstream_max_idle=4), None)
    assert "proxy.upstream_max_idle (4)" in problem
    assert "databases.demo.connection_limit (4)" in problem


def test_a_login_limit_above_the_servers_connections_is_named():
    """connection_limit 50 on a server with 20 slots (3 reserved): raise max_connections or lower the limit."""
    (problem,) = budget_problems("demo", _db(connection_limit=50), ProxyConfig(), ServerLimits(20, 3))
    assert "connection_limit (50)" in problem
    assert "17 of max_connections 20" in problem


def test_the_admin_pool_is_counted_too():
    """A login at its limit and the broker's admin pool together above the server's slots."""
    problems = budget_problems("demo", _db(connection_limit=15, admin_pool_size=10), ProxyConfig(), ServerLimits(23, 3))
    assert len(problems) == 1
    assert "admin pool (10)" in problems[0]
