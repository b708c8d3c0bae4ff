"""Three replicas behind HAProxy: policy reloads reach all, kill -9 under load, SIGTERM drains (slow)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.gateway import DEMO_POLICY
from tests.pgserver import PgServer
from tests.replicas.cluster import Cluster, require_haproxy
from tests.replicas.load import LoadClient, error_kinds, run_clients, stop_clients

pytestmark = pytest.mark.slow

TESTERS_RULE = """\
  - name: testers-read
    who: {groups: [testers]}
    databases: [demo]
    role: read
    max_ttl: 1h
"""


@pytest.fixture
def three(pg_server: PgServer, tmp_path: Path) -> Iterator[Cluster]:
    """Three replicas behind HAProxy."""
    require_haproxy()
    cluster = Cluster(pg_server, tmp_path, 3, haproxy=True)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def _can_connect(conninfo: dict[str, object]) -> bool:
    try:
        with psycopg.connect(**conninfo, sslmode="disable", connect_timeout=5) as conn:  # type: ignore[arg-type]
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def test_a_policy_reload_is_seen_by_every_replica(three: Cluster) -> None:
    """A rule added to the shared policy file lets tina in through each of the three replicas."""
    token = three.token("tina", ("testers",))
    assert not any(_can_connect(r.conninfo("tina", token)) for r in three.replicas)
    changed = time.monotonic()
    three.policy_file.write_text(DEMO_POLICY + TESTERS_RULE)
    seen_after: dict[str, float] = {}
    deadline = changed + 20
    while len(seen_after) < len(three.replicas) and time.monotonic() < deadline:
        for replica in three.replicas:
            if replica.name not in seen_after and _can_connect(replica.conninfo("tina", token)):
                seen_after[replica.name] = time.monotonic() - changed
        time.sleep(0.05)
    print(f"policy reload seen after (s): {json.dumps({k: round(v, 2) for k, v in seen_after.items()})}")
    assert sorted(seen_after) == ["r1", "r2", "r3"]


def test_kill_9_of_one_replica_under_load(three: Cluster) -> None:
    """Clients through HAProxy reconnect to the others; the dead replica's sessions go; no orphan; audit verifies."""
    stop = threading.Event()
    tokens = {user: three.token(user) for user in ("ann", "ben", "cat")}
    clients = [LoadClient(three.lb_conninfo(user, token), stop) for user, token in tokens.items() for _ in range(3)]
    run_clients(clients)
    try:
        _wait(lambda: all(c.seen.successes for c in clients), "every client ran a query")
        time.sleep(2)  # under load for a while
        _wait(lambda: len(_sessions(three)) == len(clients), "every session is listed")
        victim = three.replicas[1]
        victim_sessions = [s for s in _sessions(three) if s["replica"] == victim.name]
        assert victim.process is not None
        victim.process.kill()
        victim.process.wait(10)
        killed = time.monotonic()
        time.sleep(8)
    finally:
        stop_clients(clients, stop)
    hit = [c for c in clients if any(t >= killed - 0.5 for t, _k, _s in c.seen.errors)]
    reconnects = [max(c.seen.outages) for c in hit if c.seen.outages]
    print(
        f"kill -9: {len(victim_sessions)} session(s) were on {victim.name}; {len(hit)} of {len(clients)} clients "
        f"saw errors {dict(error_kinds(clients))}; reconnect seconds: max "
        f"{max(reconnects, default=0):.2f}, each {[round(r, 2) for r in sorted(reconnects)]}"
    )
    assert victim_sessions, "HAProxy sent no client to the replica that was killed"
    assert all(c.seen.pending_outage is None for c in clients), "a client never got a query through again"
    assert all(c.seen.successes[-1] > killed for c in clients)

    _wait(lambda: not any(s["replica"] == victim.name for s in _sessions(three)), "the dead replica's sessions go")
    assert three.state(f"SELECT state FROM replicas WHERE name = '{victim.name}'") == [("gone",)]

    def orphans() -> set[str]:
        active = {row[0] for row in three.state("SELECT db_login FROM broker_leases WHERE state = 'active'")}
        return three.logins() - active

    found_at_first = orphans()
    _wait(lambda: not orphans(), "no login without a live lease (after the reaper)", seconds=30)
    print(f"orphan logins: {len(found_at_first)} right after the load, {len(orphans())} after the reaper")

    for replica in (three.replicas[0], three.replicas[2]):
        verified = three.audit_verify(replica)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        records = [chain["records"] for chain in report["chains"]]
        keys = report["trust"]["keys"]
        print(
            f"audit verify from {replica.name}: exit 0, {len(records)} chains of {records} records, "
            f"{len(keys)} keys trusted ({sorted(k['source'] for k in keys)})"
        )
        assert len(records) == 3  # every replica's chain, the dead one's too
        assert len(keys) == 3  # this replica's key and the two the others registered


def test_sigterm_during_load_drains_then_57p01_and_exit_0(pg_server: PgServer, tmp_path: Path) -> None:
    """Sessions on the draining replica go on until drain_timeout, then end with 57P01 only; exit code 0."""
    require_haproxy()
    cluster = Cluster(pg_server, tmp_path, 2, haproxy=True, drain_timeout="3s").start()
    stop = threading.Event()
    clients = [LoadClient(cluster.lb_conninfo("dora", cluster.token("dora")), stop) for _ in range(6)]
    try:
        run_clients(clients)
        _wait(lambda: all(c.seen.successes for c in clients), "every client ran a query")
        _wait(lambda: len(_sessions(cluster)) == len(clients), "every session is listed")
        victim = cluster.replicas[0]
        on_victim = [s for s in _sessions(cluster) if s["replica"] == victim.name]
        victim.signal(signal.SIGTERM)
        termed = time.monotonic()
        ready = httpx.get(f"{victim.http_url}/readyz", timeout=5)
        assert victim.process is not None
        exit_code = victim.process.wait(30)
        exited = time.monotonic()
        time.sleep(2)
    finally:
        stop_clients(clients, stop)
        cluster.stop()
    kinds = error_kinds(clients)
    ended = [c for c in clients if c.seen.errors]
    print(
        f"SIGTERM: {len(on_victim)} session(s) on {victim.name}; drained for {exited - termed:.2f} s; exit "
        f"{exit_code}; errors seen {dict(kinds)}; readyz during drain {ready.status_code}"
    )
    assert exit_code == 0
    assert ready.status_code == 503
    assert on_victim, "HAProxy sent no client to the replica that was stopped"
    assert set(kinds) <= {"AdminShutdown(57P01)"}, kinds
    assert len(ended) == len(on_victim)
    # Sessions on the draining replica kept working after SIGTERM: they were not cut at once.
    assert all(any(termed < t < c.seen.errors[0][0] for t in c.seen.successes) for c in ended)
    assert all(c.seen.pending_outage is None for c in clients)


def _sessions(cluster: Cluster) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{cluster.lb_http_port}" if cluster.lb_http_port else cluster.replicas[0].http_url
    listed = httpx.get(f"{url}/v1/sessions", headers=cluster.admin_headers(), timeout=10)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["sessions"])


def _wait(condition: object, what: str, seconds: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")
