"""kill -9 of a real ``sqlgate serve`` under write load, default settings: no acknowledged INSERT goes unaudited."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import psycopg

from tests.replicas.cluster import Cluster

WRITERS = 4
LOAD_SECONDS = 4.0


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (the audit writer process among them)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _wait_gone(pids: list[int], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, "the orphaned audit writer process did not finish"
        time.sleep(0.05)


def _write(conninfo: dict, first: int, stop: threading.Event, acked: list[int]) -> None:
    """INSERT one order after another; an order counts as acknowledged once execute() returned."""
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            key = first
            while not stop.is_set():
                conn.execute(
                    f"INSERT INTO orders (id, customer_id, total, status, created_at) "
                    f"VALUES ({key}, 1, 1, 'crash', now())"
                )
                acked.append(key)
                key += 1
    except psycopg.Error:
        return  # the gateway was killed


def test_kill_9_under_write_load_keeps_every_acknowledged_statement(pg_server, tmp_path):
    """Four writers INSERT through the gateway; kill -9; after a restart each acknowledged INSERT has its record."""
    cluster = Cluster(pg_server, tmp_path, 1).start()
    try:
        replica = cluster.replicas[0]
        assert replica.process is not None
        token = cluster.token("wendy", ("writers",))
        stop, acked = threading.Event(), []
        threads = [
            threading.Thread(target=_write, args=(replica.conninfo("wendy", token), 10**7 * (n + 1), stop, acked))
            for n in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(LOAD_SECONDS)
        writer_processes = _children(replica.process.pid)
        replica.process.kill()
        replica.process.wait(10)
        stop.set()
        for thread in threads:
            thread.join(30)
        _wait_gone(writer_processes)
        replica.start()
        replica.wait_ready()
        bodies = [row[0] for row in cluster.state("SELECT body FROM audit_records WHERE type = 'statement'")]
        audited = {int(key) for body in bodies for key in re.findall(r"VALUES \((\d+), 1, 1, 'crash'", body)}
        missing = sorted(set(acked) - audited)
        verify = json.loads(cluster.audit_verify(replica).stdout)
        print(
            f"kill -9 under load: {len(acked)} INSERTs acknowledged, {len(audited)} audited, "
            f"{len(missing)} acknowledged without a record; verify {verify['status']}, "
            f"{len(verify['unended_sessions'])} session(s) never ended"
        )
        assert len(acked) > 100
        assert not missing, f"acknowledged INSERTs without a statement record: {missing[:20]}"
        assert verify["status"] == "intact"
        assert len(verify["unended_sessions"]) >= WRITERS  # the killed gateway could not end its sessions
    finally:
        cluster.stop()
