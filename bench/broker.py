"""Broker latency: mint, lease reuse (the in-memory fast path) and revoke, against the embedded PostgreSQL.

Run: python bench/broker.py [MINTS]
State in SQLite; audit events are counted, not written (the audit log's own cost is measured by bench/audit).
Prints p50/p99 of mint and revoke and the mean and p99 of reuse, next to the targets
(mint p50 <= 10 ms, reuse <= 50 us).
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.audit.events import AuditEvent
from sqlgate.broker import Broker
from sqlgate.broker.scram import scram_sha256_verifier
from sqlgate.config import DatabaseConfig, Settings
from sqlgate.embedded import EmbeddedPostgres
from sqlgate.identity.principal import Principal
from sqlgate.store import StateStore

TTL = timedelta(minutes=15)
REUSE_CALLS = 100_000


class CountingAuditor:
    """Counts events and keeps none (the audit log's own cost is measured by bench/audit)."""

    def __init__(self) -> None:
        self.count = 0

    async def record(self, event: AuditEvent) -> None:
        """Count ``event``."""
        self.count += bool(event)

    def enqueue(self, event: AuditEvent) -> None:
        """Count ``event``."""
        self.count += bool(event)


def who(index: int) -> Principal:
    return Principal(subject=f"s{index}", issuer="https://idp.bench", name=f"user{index}", email=f"u{index}@bench.test")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(value: float, target: float) -> str:
    return f"met, {target / value:.1f}x under" if value <= target else f"missed by {value / target:.2f}x"


def prepare(server: EmbeddedPostgres, tmp: Path) -> DatabaseConfig:
    password = secrets.token_urlsafe(18)
    server.psql(
        f"CREATE ROLE bench_admin LOGIN CREATEROLE PASSWORD '{password}'; CREATE ROLE bench_read NOLOGIN;"
        "GRANT bench_read TO bench_admin WITH ADMIN OPTION; CREATE DATABASE bench;"
    )
    secret = tmp / "admin.secret"
    secret.write_text(password)
    return DatabaseConfig(
        host=server.host,
        port=server.port,
        dbname="bench",
        admin_user="bench_admin",
        admin_password_file=secret,
        roles={"read": "bench_read"},
        login_prefix="bench",
        tls="disable",
    )


async def measure(config: DatabaseConfig, tmp: Path, mints: int) -> None:
    store = await StateStore.open(f"sqlite:///{tmp / 'state.db'}")
    broker = Broker(Settings(databases={"bench": config}), store, CountingAuditor())
    await broker.revoke(await broker.lease(who(-1), "bench", "read", TTL), "warm-up")

    mint_times, leases = [], []
    for index in range(mints):
        start = time.perf_counter()
        leases.append(await broker.lease(who(index), "bench", "read", TTL))
        mint_times.append(time.perf_counter() - start)

    reuse_times = []
    principal = who(0)
    for _ in range(REUSE_CALLS):
        start = time.perf_counter()
        await broker.lease(principal, "bench", "read", TTL)
        reuse_times.append(time.perf_counter() - start)

    revoke_times = []
    for lease in leases:
        start = time.perf_counter()
        await broker.revoke(lease, "bench")
        revoke_times.append(time.perf_counter() - start)
    await broker.close()
    await store.close()

    ms, us = 1e3, 1e6
    print(
        f"mint    n={mints:<6} p50 {pct(mint_times, 0.5) * ms:7.2f} ms   p99 {pct(mint_times, 0.99) * ms:7.2f} ms"
        f"   (target p50 <= 10 ms: {verdict(pct(mint_times, 0.5) * ms, 10)})"
    )
    print(
        f"reuse   n={REUSE_CALLS:<6} mean {statistics.fmean(reuse_times) * us:6.2f} us   p50 {pct(reuse_times, 0.5) * us:6.2f} us"
        f"   p99 {pct(reuse_times, 0.99) * us:6.2f} us   (target <= 50 us: {verdict(statistics.fmean(reuse_times) * us, 50)})"
    )
    print(
        f"revoke  n={mints:<6} p50 {pct(revoke_times, 0.5) * ms:7.2f} ms   p99 {pct(revoke_times, 0.99) * ms:7.2f} ms"
    )
    print(f"mint/reuse ratio: {pct(mint_times, 0.5) / pct(reuse_times, 0.5):,.0f}x")


async def server_floor(server: EmbeddedPostgres, rounds: int = 50) -> None:
    """What CREATE ROLE costs the server alone, with and without a SCRAM verifier (no broker involved)."""
    conn = await asyncpg.connect(server.dsn())
    verifier = scram_sha256_verifier(secrets.token_urlsafe(24))
    floors = {}
    for label, clause in (("no password", ""), ("SCRAM verifier", f" PASSWORD '{verifier}'")):
        times = []
        for index in range(rounds):
            start = time.perf_counter()
            await conn.execute(f"CREATE ROLE floor_{label[:2]}_{index} LOGIN{clause}")
            times.append(time.perf_counter() - start)
        floors[label] = pct(times, 0.5) * 1e3
    library = await conn.fetchval("SHOW ssl_library") or "none (built-in SHA-256)"
    await conn.close()
    print(
        f"server  CREATE ROLE p50: {floors['no password']:.2f} ms without a password, "
        f"{floors['SCRAM verifier']:.2f} ms with a SCRAM verifier (ssl_library: {library})"
    )


def main(mints: int = 300) -> None:
    with tempfile.TemporaryDirectory(prefix="sqlgate-bench-") as tmp, EmbeddedPostgres() as server:
        config = prepare(server, Path(tmp))
        asyncio.run(measure(config, Path(tmp), mints))
        asyncio.run(server_floor(server))


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:2]))
