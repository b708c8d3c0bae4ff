"""Upstream connections: the pool owns what is handed back, and a login that does not finish leaves nothing open."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from sqlgate.config import DatabaseConfig
from sqlgate.pgwire.upstream_handshake import UpstreamLogin
from sqlgate.proxy.upstream import Upstream, UpstreamFull, UpstreamPool, connect_upstream


@pytest.fixture
def login_role(pg_server, pg_database):
    """A login role with a password on the test server; yields (config, login)."""
    role, password = f"t_pool_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    pg_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pg_server.psql(f'GRANT CONNECT ON DATABASE "{pg_database}" TO {role}')
    config = DatabaseConfig(
        host=pg_server.host,
        port=pg_server.port,
        dbname=pg_database,
        admin_user="postgres",
        admin_password_env="UNUSED_HERE",
        tls="disable",
    )
    yield config, UpstreamLogin(role, pg_database, password)
    pg_server.psql(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')
    pg_server.psql(f"DROP ROLE IF EXISTS {role}")


async def connect(login_role, lease_id: str = "lease-1") -> Upstream:
    config, login = login_role
    return await connect_upstream(config, login, lease_id, ())


async def closed(upstream: Upstream) -> bool:
    """True once the server connection is closed (its close has been processed by the loop)."""
    for _ in range(100):
        if upstream.protocol.closed:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_connection_handed_back_is_reset_and_taken_again(login_role):
    pool = UpstreamPool()
    upstream = await connect(login_role)
    await pool.give_back(upstream)
    assert len(pool) == 1
    assert pool.take("lease-1", ()) is upstream
    assert pool.take("lease-1", ()) is None
    await pool.aclose()


async def test_a_connection_being_reset_when_its_lease_closes_is_closed_not_kept(login_role):
    pool = UpstreamPool()
    upstream = await connect(login_role)
    resetting = asyncio.ensure_future(pool.give_back(upstream))
    await asyncio.sleep(0)  # DISCARD ALL is on its way; the reply is not read yet
    pool.close_lease("lease-1")
    await resetting
    assert len(pool) == 0
    assert pool.take("lease-1", ()) is None
    assert await closed(upstream), "a connection of an ended lease must not stay open"


async def test_closing_the_pool_ends_background_resets_and_refuses_later_ones(login_role):
    pool = UpstreamPool()
    first, second = await connect(login_role), await connect(login_role)
    pool.give_back_soon(first)
    await asyncio.sleep(0)
    await pool.aclose()  # the gateway stops while a session's connection is being reset
    assert not pool._tasks
    assert await closed(first)
    await pool.give_back(second)  # handed back after the pool closed
    assert len(pool) == 0
    assert await closed(second)


async def test_a_login_cancelled_halfway_closes_its_connection():
    """The client left (or the gateway stops) while the server had not answered the startup yet."""
    server_saw_eof = asyncio.Event()
    arrived = asyncio.Event()

    async def silent_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the startup message arrives; never answer it
        arrived.set()
        while await reader.read(65536):
            pass
        server_saw_eof.set()
        writer.close()

    server = await asyncio.start_server(silent_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = DatabaseConfig(
        host="127.0.0.1", port=port, dbname="demo", admin_user="postgres", admin_password_env="UNUSED", tls="disable"
    )
    login = asyncio.ensure_future(connect_upstream(config, UpstreamLogin("alice", "demo", "pw"), "lease-1", ()))
    await asyncio.wait_for(arrived.wait(), 5)
    login.cancel()
    with pytest.raises(asyncio.CancelledError):
        await login
    await asyncio.wait_for(server_saw_eof.wait(), 5)  # the gateway closed its side
    server.close()
    await server.wait_closed()


async def test_the_idle_cap_holds_when_many_sessions_end_at_once(login_role):
    """Resets run concurrently: the cap is checked again when each one finishes, not only before."""
    pool = UpstreamPool(max_idle=2)
    upstreams = [await connect(login_role) for _ in range(6)]
    await asyncio.gather(*(pool.give_back(upstream) for upstream in upstreams))
    assert len(pool) == 2
    assert sum([await closed(upstream) for upstream in upstreams]) == 4
    await pool.aclose()


async def test_idle_connections_are_closed_when_they_have_been_idle_too_long(login_role):
    """Nobody has to ask for a connection for an old idle one to be closed."""
    pool = UpstreamPool(idle_seconds=0.2)
    upstream = await connect(login_role)
    await pool.give_back(upstream)
    assert len(pool) == 1
    await asyncio.sleep(0.4)
    assert len(pool) == 0
    assert await closed(upstream)
    await pool.aclose()


async def test_a_connection_handed_back_takes_its_place_at_once(login_role):
    """The cap counts connections being reset: past it, a connection handed back is closed then, not after a reset."""
    pool = UpstreamPool(max_idle=2)
    upstreams = [await connect(login_role) for _ in range(5)]
    for upstream in upstreams:
        pool.give_back_soon(upstream)
    assert sum(upstream.protocol.transport.is_closing() for upstream in upstreams) == 3  # before any reset ran
    await asyncio.sleep(0.5)
    assert len(pool) == 2
    await pool.aclose()


async def test_a_leases_idle_connections_close_after_its_last_session_ends(login_role):
    """No session of the lease for idle_seconds after its last one ended: nothing of the lease stays open."""
    pool = UpstreamPool(idle_seconds=0.3)
    upstreams = [await connect(login_role) for _ in range(2)]
    pool.session_started("lease-1")
    pool.session_started("lease-1")
    for upstream in upstreams:
        await pool.give_back(upstream)
        pool.session_ended("lease-1")
    assert len(pool) == 2
    await asyncio.sleep(0.6)
    assert len(pool) == 0
    assert all([await closed(upstream) for upstream in upstreams])
    await pool.aclose()


async def test_too_many_connections_for_a_login_names_the_setting_to_raise(login_role, pg_server):
    """The login's CONNECTION LIMIT refuses a connection: 53300, and the hint names connection_limit."""
    config, login = login_role
    pg_server.psql(f"ALTER ROLE {login.user} CONNECTION LIMIT 1")
    first = await connect(login_role)
    with pytest.raises(UpstreamFull) as caught:
        await connect_upstream(config, login, "lease-1", (), alias="demo")
    assert caught.value.sqlstate == "53300"
    assert "databases.demo.connection_limit" in (caught.value.hint or "")
    first.protocol.close()
