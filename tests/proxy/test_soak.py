"""Soak: sessions of several users in waves for minutes, with a database restart in the middle.

Afterwards: no server connection left idle past ``proxy.upstream_idle_timeout``, no
login without a live lease once the reaper ran, the gateway's memory back near its
start, and the audit log intact with one statement record per statement sent.
``SQLGATE_SOAK_SECONDS`` shortens or lengthens the run (default 180).
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select

from sqlgate.audit.tables import audit_records
from sqlgate.broker.tables import leases
from sqlgate.embedded import EmbeddedPostgres
from tests.gateway import DEMO_POLICY
from tests.proxy.tuned import TunedGateway
from tests.replicas.cluster import free_port

SECONDS = float(os.environ.get("SQLGATE_SOAK_SECONDS", "180"))
IDLE_TIMEOUT = 5.0
SESSIONS_PER_WAVE = 200
WORKERS = 20
USERS = [("erin", ("engineers",)), ("wendy", ("writers",)), ("eve", ("engineers",)), ("walt", ("writers",))]
STATEMENTS = ("SELECT 1", "SELECT count(*) FROM customers", "SELECT id, name FROM customers WHERE id = 7")

pytestmark = pytest.mark.slow


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Clients:
    """Sessions in waves; counts what was sent and what failed."""

    def __init__(self, gateway: TunedGateway) -> None:
        self.gateway = gateway
        self.tokens = {user: gateway.token(user, groups, ttl="60m") for user, groups in USERS}
        self.sent = 0
        self.failed_sessions = 0
        self._lock = threading.Lock()

    def session(self, n: int) -> None:
        user = USERS[n % len(USERS)][0]
        sent = 0
        try:
            with psycopg.connect(**self.gateway.conninfo(user, self.tokens[user]), autocommit=True) as conn:
                for sql in STATEMENTS[: 1 + n % len(STATEMENTS)]:
                    sent += 1  # sent: the statement reaches the gateway whatever it answers
                    conn.execute(sql).fetchall()
        except psycopg.Error:
            with self._lock:
                self.failed_sessions += 1
        with self._lock:
            self.sent += sent

    def wave(self, pool: ThreadPoolExecutor) -> None:
        list(pool.map(self.session, range(SESSIONS_PER_WAVE)))


def test_soak_waves_with_a_database_restart(tmp_path):
    """The figures are printed; the bounds are asserted."""
    # Outside pytest's base directory: another pytest run on the machine resets its permissions (0700), which
    # would lock the server's own user out of its data directory in the middle of the run.
    root = Path(tempfile.mkdtemp(prefix="sqlgate-soak-"))
    server = EmbeddedPostgres(root / "pg", port=free_port(), max_connections=300).start()
    try:
        database = f"soak_{secrets.token_hex(3)}"
        server.create_database(database)
        (tmp_path / "gw").mkdir()
        gateway = TunedGateway(
            server,
            tmp_path / "gw",
            DEMO_POLICY,
            database,
            secrets.token_hex(3),
            extra=f"proxy: {{upstream_idle_timeout: {IDLE_TIMEOUT:.0f}s}}\n",
        )
        try:
            _soak(server, gateway, database)
        finally:
            gateway.stop()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _soak(server: EmbeddedPostgres, gateway: TunedGateway, database: str) -> None:
    clients = Clients(gateway)
    waves = 0
    with ThreadPoolExecutor(WORKERS) as pool:
        clients.wave(pool)  # warm-up: imports, caches, pools
        gc.collect()
        rss_start = _rss_kib()
        started = time.monotonic()
        restarted = False
        while time.monotonic() - started < SECONDS:
            clients.wave(pool)
            waves += 1
            if not restarted and time.monotonic() - started >= SECONDS / 2:
                _restart(server)
                restarted = True
    time.sleep(IDLE_TIMEOUT + 2)
    services = gateway.gateway.services
    gateway.call(services.reaper.run_once())
    prefix = f"g{gateway.tag}_"
    lingering = server.psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, '{prefix}') "
        f"AND state = 'idle' AND now() - state_change > interval '{IDLE_TIMEOUT} seconds'"
    ).strip()
    logins = set(server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{prefix}')").split())
    live = gateway.call(_live_logins(services.store))
    gc.collect()
    rss_end = _rss_kib()
    gateway.call(services.audit.flush())
    statements = gateway.call(_count_statements(services.store))
    verify = subprocess.run(
        [sys.executable, "-m", "sqlgate", "audit", "verify", "--json", "-c", str(gateway.workdir / "sqlgate.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")},
    )
    report = json.loads(verify.stdout)
    print(
        f"soak: {waves} waves of {SESSIONS_PER_WAVE} sessions in {SECONDS:.0f} s by {len(USERS)} users, "
        f"{clients.failed_sessions} session(s) failed (database restart), {clients.sent} statements sent, "
        f"{statements} statement records; idle server connections older than {IDLE_TIMEOUT:.0f} s: {lingering}; "
        f"logins {len(logins)}, of them without a live lease: {len(logins - live)}; "
        f"RSS {rss_start} KiB -> {rss_end} KiB ({(rss_end - rss_start) * 100 / rss_start:+.1f}%); "
        f"audit verify: {report['status']}, {report['records']} records"
    )
    assert waves >= 2
    assert lingering == "0"
    assert not logins - live
    assert rss_end <= rss_start * 1.2
    assert report["status"] == "intact"
    assert statements == clients.sent


def _restart(server: EmbeddedPostgres) -> None:
    """Stop the server (fast: sessions are cut) and start it again on the same port and data."""
    try:
        server._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")  # the embedded server's own pg_ctl call
    except subprocess.CalledProcessError as exc:
        raise AssertionError((server.root / "last-command.log").read_text()) from exc
    server._running = False
    server.start()


async def _live_logins(store) -> set[str]:
    async with store.begin() as conn:
        rows = (await conn.execute(select(leases.c.db_login).where(leases.c.state == "active"))).all()
    return {row[0] for row in rows}


async def _count_statements(store) -> int:
    async with store.begin() as conn:
        query = select(func.count()).select_from(audit_records).where(audit_records.c.type == "statement")
        return int((await conn.execute(query)).scalar_one())
