"""The broker against a real PostgreSQL: mint, log in, reuse, single-flight, renew, revoke."""

from __future__ import annotations

import asyncio
import types
from datetime import timedelta

import asyncpg
import pytest

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker
from sqlgate.broker import broker as broker_module
from sqlgate.broker.names import lease_id_of
from sqlgate.errors import AuditError, BrokerError, ConfigError, LeaseEnded
from tests.broker.conftest import ALIAS, TTL, principal, roles_with_prefix, settings_for


async def connect(credential):
    return await asyncpg.connect(credential.dsn)


async def test_mint_gives_a_working_marked_login(broker, pg_server, pg_target, auditor):
    """A minted login works, is in the group role, expires, and carries the lease marker."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    conn = await connect(broker.credentials(lease))
    try:
        assert await conn.fetchval("SELECT current_user") == lease.db_login
        assert await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", pg_target.roles["read"])
    finally:
        await conn.close()
    row = pg_server.psql(
        f"SELECT rolvaliduntil IS NOT NULL, rolconnlimit, shobj_description(oid, 'pg_authid') "
        f"FROM pg_roles WHERE rolname = '{lease.db_login}'"
    ).strip()
    valid_until_set, limit, comment = row.split("|")
    assert valid_until_set == "t"
    assert limit == "5"
    assert lease_id_of(comment) == lease.id
    assert "https://idp.test#sub-alice" in comment
    assert lease.db_login.startswith(f"{pg_target.login_prefix}_alice_")
    assert auditor.types() == ["lease.mint"]
    stored = await broker.leases.get(lease.id)
    assert stored is not None
    assert stored.state == "active"


async def test_credentials_dict_and_no_secret_in_store_or_audit(broker, store, auditor):
    """credentials() gives every field; the password is nowhere in the store or the audit events."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    data = broker.credentials(lease).as_dict()
    assert set(data) == {"host", "port", "dbname", "user", "password", "expires_at", "dsn"}
    assert data["user"] == lease.db_login
    conn = await asyncpg.connect(data["dsn"])
    await conn.close()
    async with store.begin() as db:
        dump = str((await db.exec_driver_sql("SELECT * FROM broker_leases")).all())
    assert data["password"] not in dump
    assert all(data["password"] not in event.model_dump_json() for event in auditor.events)
    assert data["password"] not in repr(broker.credentials(lease))


async def test_reuse_within_three_quarters_then_new_mint(broker, monkeypatch, auditor):
    """The same lease comes back while a quarter of its life remains; after that a new one is minted."""
    first = await broker.lease(principal(), ALIAS, "read", TTL)
    assert await broker.lease(principal(), ALIAS, "read", TTL) is first
    later = first.issued_at.timestamp() + TTL.total_seconds() * 0.74
    monkeypatch.setattr(broker_module, "time", types.SimpleNamespace(time=lambda: later))
    assert (await broker.lease(principal(), ALIAS, "read", TTL)).id == first.id
    too_late = first.issued_at.timestamp() + TTL.total_seconds() * 0.76
    monkeypatch.setattr(broker_module, "time", types.SimpleNamespace(time=lambda: too_late))
    second = await broker.lease(principal(), ALIAS, "read", TTL)
    assert second.id != first.id
    assert auditor.types() == ["lease.mint", "lease.reuse", "lease.reuse", "lease.mint"]


async def test_different_keys_get_different_leases(broker):
    """Another principal or another privilege never shares a lease."""
    alice_read = await broker.lease(principal("alice"), ALIAS, "read", TTL)
    alice_write = await broker.lease(principal("alice"), ALIAS, "write", TTL)
    bob_read = await broker.lease(principal("bob"), ALIAS, "read", TTL)
    assert len({alice_read.db_login, alice_write.db_login, bob_read.db_login}) == 3


async def test_concurrent_callers_share_one_mint(broker, pg_server, pg_target, auditor):
    """Twenty callers at once for the same key get one lease and one role."""
    leases = await asyncio.gather(*(broker.lease(principal(), ALIAS, "read", TTL) for _ in range(20)))
    assert len({lease.id for lease in leases}) == 1
    assert auditor.types().count("lease.mint") == 1
    assert len(roles_with_prefix(pg_server, pg_target.login_prefix)) == 1


async def test_renew_moves_valid_until(broker, pg_server, auditor):
    """renew() sets a later VALID UNTIL on the server and in the store."""
    lease = await broker.lease(principal(), ALIAS, "read", timedelta(minutes=1))
    renewed = await broker.renew(lease, timedelta(hours=2))
    assert renewed.expires_at > lease.expires_at
    server_epoch = pg_server.psql(
        f"SELECT extract(epoch FROM rolvaliduntil) FROM pg_roles WHERE rolname = '{lease.db_login}'"
    )
    assert abs(float(server_epoch) - renewed.expires_at.timestamp()) < 1
    stored = await broker.leases.get(lease.id)
    assert stored is not None
    assert stored.expires_at == renewed.expires_at
    assert auditor.types()[-1] == "lease.renew"


async def test_revoke_ends_open_session_and_hands_objects_to_owner(broker, pg_server, pg_target, pg_database, auditor):
    """Revoking terminates the open session, drops the role, and the table it made now belongs to the owner."""
    lease = await broker.lease(principal(), ALIAS, "write", TTL)
    ended = broker.ended(lease.id)
    conn = await connect(broker.credentials(lease))
    await conn.execute("CREATE TABLE made_by_lease (x int)")
    await broker.revoke(lease, "test")
    assert ended.is_set()
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await conn.fetchval("SELECT 1")
    await conn.close(timeout=1)
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
    owner = pg_server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_lease'", pg_database)
    assert owner.strip() == pg_target.admin_user
    stored = await broker.leases.get(lease.id)
    assert stored is not None
    assert (stored.state, stored.revoke_reason) == ("revoked", "test")
    assert auditor.types()[-1] == "lease.revoke"
    with pytest.raises(LeaseEnded):
        broker.credentials(lease)
    assert (await broker.lease(principal(), ALIAS, "write", TTL)).id != lease.id


async def test_revoke_cleans_objects_in_other_databases(broker, pg_server, pg_target, pg_database):
    """A table the login made in another database of the server does not block DROP ROLE."""
    other = f"{pg_database}_other"
    pg_server.psql(f'CREATE DATABASE "{other}"')
    try:
        pg_server.psql(f'GRANT CREATE ON SCHEMA public TO "{pg_target.roles["write"]}"', other)
        lease = await broker.lease(principal(), ALIAS, "write", TTL)
        credential = broker.credentials(lease)
        conn = await asyncpg.connect(
            host=credential.host,
            port=credential.port,
            user=credential.user,
            password=credential.password,
            database=other,
        )
        await conn.execute("CREATE TABLE elsewhere (x int)")
        await conn.close()
        await broker.revoke(lease, "test")
        assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
        owner = pg_server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'elsewhere'", other)
        assert owner.strip() == pg_target.admin_user
    finally:
        pg_server.psql(f'DROP DATABASE "{other}" WITH (FORCE)')


async def test_revoke_for_principal(broker, pg_server, pg_target):
    """revoke_for(principal=...) ends all of that principal's leases and no one else's."""
    await broker.lease(principal("alice"), ALIAS, "read", TTL)
    await broker.lease(principal("alice"), ALIAS, "write", TTL)
    bob = await broker.lease(principal("bob"), ALIAS, "read", TTL)
    assert await broker.revoke_for(principal=principal("alice"), reason="offboarded") == 2
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == [bob.db_login]
    with pytest.raises(ValueError, match="needs a principal"):
        await broker.revoke_for()


async def test_on_end_callback(broker):
    """on_end() calls back with the lease id when the lease is revoked."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    seen: list[str] = []
    task = broker.on_end(lease.id, seen.append)
    await broker.revoke(lease, "test")
    await asyncio.wait_for(task, 5)
    assert seen == [lease.id]
    assert broker.ended("not-a-lease").is_set()


async def test_new_broker_does_not_reuse_a_lease_without_its_secret(broker, pg_target, store, tmp_path):
    """After a restart the stored lease has no secret here, so a new one is minted."""
    first = await broker.lease(principal(), ALIAS, "read", TTL)
    restarted = Broker(settings_for(pg_target, tmp_path), store, MemoryAuditor())
    try:
        second = await restarted.lease(principal(), ALIAS, "read", TTL)
        assert second.id != first.id
        with pytest.raises(LeaseEnded):
            restarted.credentials(first)
    finally:
        await restarted.close()


async def test_expired_credential_cannot_log_in(broker):
    """PostgreSQL refuses the login after VALID UNTIL."""
    lease = await broker.lease(principal(), ALIAS, "read", timedelta(seconds=1))
    credential = broker.credentials(lease)
    await asyncio.sleep(1.5)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(credential)


async def test_unknown_privilege_is_refused_and_changes_nothing(broker, pg_server, pg_target):
    """A privilege with no mapped group role is a clear error; no lease, no role."""
    with pytest.raises(ConfigError, match="maps no group role to privilege 'admin'"):
        await broker.lease(principal(), ALIAS, "admin", TTL)
    with pytest.raises(ConfigError, match="unknown database"):
        await broker.lease(principal(), "nope", "read", TTL)
    with pytest.raises(BrokerError, match="positive ttl"):
        await broker.lease(principal(), ALIAS, "read", timedelta(0))
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
    assert await broker.leases.active() == []


async def test_missing_group_role_fails_and_leaves_nothing(pg_target, store, tmp_path, pg_server):
    """When CREATE ROLE fails (group role missing) the lease is recorded failed and no role remains."""
    config = pg_target.model_copy(update={"roles": {"read": "no_such_group"}})
    broker = Broker(settings_for(config, tmp_path), store, MemoryAuditor())
    try:
        with pytest.raises(BrokerError, match="could not mint"):
            await broker.lease(principal(), ALIAS, "read", TTL)
        async with store.begin() as db:
            states = (await db.exec_driver_sql("SELECT state FROM broker_leases")).scalars().all()
        assert states == ["failed"]
        assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
    finally:
        await broker.close()


class FailingAuditor(MemoryAuditor):
    async def record(self, event):
        raise OSError(f"disk full, {event.type} lost")


async def test_unrecorded_mint_is_withdrawn(pg_target, store, tmp_path, pg_server):
    """If the lease.mint record cannot be written the login is dropped and the caller gets an error."""
    broker = Broker(settings_for(pg_target, tmp_path), store, FailingAuditor())
    try:
        with pytest.raises(AuditError):
            await broker.lease(principal(), ALIAS, "read", TTL)
        assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
    finally:
        await broker.close()


async def test_connect_logs_in_with_the_lease(broker):
    """Broker.connect() gives a connection as the lease's login; after revoke it refuses."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    conn = await broker.connect(lease)
    try:
        assert await conn.fetchval("SELECT current_user") == lease.db_login
    finally:
        await conn.close()
    await broker.revoke(lease, "test")
    with pytest.raises(LeaseEnded):
        await broker.connect(lease)
