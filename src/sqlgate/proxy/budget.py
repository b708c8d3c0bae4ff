"""Connection budget: the pool's idle cap, each login's CONNECTION LIMIT and the server's max_connections together.

Pure: the caller reads the server's limits (``sqlgate doctor``, and the listener at
start, which logs what this finds as warnings). Each sentence names the setting to
change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlgate.config import DatabaseConfig, ProxyConfig


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What the server allows: ``max_connections`` less the slots reserved for superusers (and replication)."""

    max_connections: int
    reserved: int = 0

    @property
    def available(self) -> int:
        """Connections ordinary logins can open."""
        return max(0, self.max_connections - self.reserved)


def budget_problems(alias: str, db: DatabaseConfig, proxy: ProxyConfig, server: ServerLimits | None) -> list[str]:
    """What in the three limits works against the others, each with the setting to change (empty: consistent)."""
    problems = []
    limit = db.connection_limit
    if proxy.upstream_max_idle >= limit:
        problems.append(
            f"proxy.upstream_max_idle ({proxy.upstream_max_idle}) is not below databases.{alias}.connection_limit "
            f"({limit}): a login's idle pooled connections can use up its limit and refuse its next session "
            f"(53300); lower proxy.upstream_max_idle or raise connection_limit"
        )
    if server is None:
        return problems
    available = server.available
    if limit > available:
        problems.append(
            f"databases.{alias}.connection_limit ({limit}) is above what the server allows ordinary logins "
            f"({available} of max_connections {server.max_connections}); raise max_connections on the server "
            "or lower connection_limit"
        )
    elif db.admin_pool_size + limit > available:
        problems.append(
            f"one login at its connection_limit ({limit}) and the gateway's admin pool ({db.admin_pool_size}) "
            f"need more than the server's {available} connection(s) for ordinary logins; raise max_connections"
        )
    return problems


def budget_summary(alias: str, db: DatabaseConfig, proxy: ProxyConfig, server: ServerLimits) -> str:
    """One line for a consistent budget: how many logins at their limit the server can hold."""
    logins = server.available // max(1, db.connection_limit)
    return (
        f"{alias}: connection_limit {db.connection_limit}, idle cap {proxy.upstream_max_idle}, "
        f"max_connections {server.max_connections} (about {logins} login(s) at their limit at once)"
    )


SERVER_LIMITS_SQL = (
    "SELECT current_setting('max_connections')::int, "
    "current_setting('superuser_reserved_connections')::int "
    "+ coalesce(current_setting('reserved_connections', true)::int, 0)"
)
"""Reads :class:`ServerLimits` (``reserved_connections`` exists from PostgreSQL 16)."""
