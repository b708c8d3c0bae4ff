"""The reaper: expired leases, interrupted mints (kill -9), orphaned logins, one reaper per state database."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker, Reaper
from sqlgate.store import StateStore
from tests.broker.conftest import ALIAS, TTL, principal, roles_with_prefix, settings_for

ROOT = Path(__file__).resolve().parents[2]


async def test_expired_lease_is_reaped(broker, pg_server, pg_target, auditor):
    """A lease past its expiry is revoked by the next pass, audited as lease.reap, and its end is signalled."""
    lease = await broker.lease(principal(), ALIAS, "read", timedelta(seconds=1))
    ended = broker.ended(lease.id)
    keep = await broker.lease(principal("bob"), ALIAS, "read", TTL)
    await asyncio.sleep(1.2)
    report = await Reaper(broker).run_once()
    assert report.leases == [lease.id]
    assert ended.is_set()
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == [keep.db_login]
    assert auditor.types()[-1] == "lease.reap"
    assert (await broker.leases.get(lease.id)).state == "revoked"


async def test_kill_9_between_create_role_and_active_leaves_no_orphan(pg_server, pg_target, store, tmp_path):
    """A gateway killed after CREATE ROLE but before recording the lease active: the next start-up reaps the role."""
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.broker.hang_after_create",
        state_url,
        pg_target.model_dump_json(),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), 60)).decode()
        assert line.startswith("created ")
        login = line.split()[1]
        assert roles_with_prefix(pg_server, pg_target.login_prefix) == [login]
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    restarted = await StateStore.open(state_url)
    auditor = MemoryAuditor()
    broker = Broker(settings_for(pg_target, tmp_path), restarted, auditor)
    try:
        now = datetime.now(UTC)
        stored = await broker.leases.reapable(now, now)
        assert [lease.state for lease in stored] == ["minting"]
        report = await Reaper(broker, mint_grace=timedelta(0)).run_once()
        assert report.errors == []
        assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
        assert "lease.reap" in auditor.types()
    finally:
        await broker.close()
        await restarted.close()


async def test_orphan_login_without_lease_is_dropped(broker, pg_server, pg_target, auditor):
    """A marked role whose lease row is gone is dropped; live ones and unmarked ones (even named like ours) stay."""
    live = await broker.lease(principal("alice"), ALIAS, "read", TTL)
    orphan = await broker.lease(principal("bob"), ALIAS, "read", TTL)
    async with broker.store.begin() as db:
        await db.exec_driver_sql(f"DELETE FROM broker_leases WHERE id = '{orphan.id}'")
    stranger = f"{pg_target.login_prefix}_not_ours"
    lookalike = f"{pg_target.login_prefix}_made_by_hand_0123456789ab"
    pg_server.psql(f'CREATE ROLE "{stranger}"; CREATE ROLE "{lookalike}"')
    report = await Reaper(broker).run_once()
    assert report.orphans == [orphan.db_login]
    kept = [live.db_login, stranger, lookalike]
    assert sorted(roles_with_prefix(pg_server, pg_target.login_prefix)) == sorted(kept)
    reap = [event for event in auditor.events if event.type == "lease.reap"]
    assert reap[0].db_login == orphan.db_login


async def test_fresh_mint_in_grace_is_left_alone(broker, pg_server, pg_target):
    """A lease still minting within mint_grace (maybe another replica) is not touched."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    await broker.leases.set_state(lease.id, "minting")
    report = await Reaper(broker, mint_grace=timedelta(minutes=1)).run_once()
    assert report.leases == report.orphans == []
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == [lease.db_login]


async def test_only_one_replica_reaps_with_a_postgresql_state_store(pg_server, pg_target, tmp_path):
    """While one reaper holds the advisory lock, another replica's pass is skipped."""
    state_db = f"state_{os.getpid()}_{id(tmp_path) % 10_000}"
    pg_server.psql(f'CREATE DATABASE "{state_db}"')
    stores = [await StateStore.open(pg_server.dsn(state_db)) for _ in range(2)]
    brokers = [Broker(settings_for(pg_target, tmp_path), s, MemoryAuditor()) for s in stores]
    try:
        first, second = Reaper(brokers[0]), Reaper(brokers[1])
        async with first._lock() as held:
            assert held
            assert (await second.run_once()).skipped
        assert not (await second.run_once()).skipped
    finally:
        for broker, store in zip(brokers, stores, strict=True):
            await broker.close()
            await store.close()
        pg_server.psql(f'DROP DATABASE "{state_db}" WITH (FORCE)')


async def test_background_reaper_runs_and_stops(broker, pg_server, pg_target):
    """start() reaps on its period; stop() ends the task."""
    await broker.lease(principal(), ALIAS, "read", timedelta(seconds=1))
    reaper = Reaper(broker, period=timedelta(seconds=0.2))
    reaper.start()
    try:
        for _ in range(100):
            if not roles_with_prefix(pg_server, pg_target.login_prefix):
                break
            await asyncio.sleep(0.1)
    finally:
        await reaper.stop()
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == []


@pytest.mark.parametrize("count", [1000])
async def test_many_leases_minted_and_revoked_concurrently(broker, pg_server, pg_target, auditor, count):
    """1,000 leases minted and revoked at once (bounded by the admin pool): zero errors, zero orphans."""
    gate = asyncio.Semaphore(50)

    async def one(index: int) -> None:
        async with gate:
            lease = await broker.lease(principal(f"user{index}"), ALIAS, "read", TTL)
            await broker.revoke(lease, "load test")

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert roles_with_prefix(pg_server, pg_target.login_prefix) == []
    assert auditor.types().count("lease.mint") == count
    assert auditor.types().count("lease.revoke") == count
    assert await broker.leases.active() == []


async def test_revocation_by_another_replica_reaches_this_one(broker, pg_target, store, tmp_path):
    """When replica B revokes a lease replica A minted, A's sync() ends it there and A mints anew."""
    lease = await broker.lease(principal(), ALIAS, "read", TTL)
    ended = broker.ended(lease.id)
    other = Broker(settings_for(pg_target, tmp_path), store, MemoryAuditor())
    try:
        assert await other.revoke_for(principal=principal(), reason="offboarded") == 1
    finally:
        await other.close()
    assert not ended.is_set()
    assert await broker.sync() == [lease.id]
    assert ended.is_set()
    assert (await broker.lease(principal(), ALIAS, "read", TTL)).id != lease.id
    assert await broker.sync() == []


async def test_only_one_process_reaps_with_a_sqlite_state_store(pg_target, tmp_path):
    """Worker processes share a SQLite state (server.workers): a file lock in data_dir lets one reap at a time."""
    settings = settings_for(pg_target, tmp_path)
    stores = [await StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") for _ in range(2)]
    brokers = [Broker(settings, s, MemoryAuditor()) for s in stores]
    try:
        first, second = Reaper(brokers[0]), Reaper(brokers[1])
        async with first._lock() as held:
            assert held
            assert (await second.run_once()).skipped
        assert not (await second.run_once()).skipped
    finally:
        for broker, store in zip(brokers, stores, strict=True):
            await broker.close()
            await store.close()
