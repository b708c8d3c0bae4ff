"""``server.workers: 2``: two gateway processes answer on one port, both audit, SIGTERM stops both with exit 0."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from sqlgate.config import load_settings
from sqlgate.errors import ConfigError
from sqlgate.identity.devissuer import mint_dev_token
from sqlgate.server.workers import check_workers, worker_settings
from tests.gateway import DEMO_POLICY, RunningGateway
from tests.pgserver import PgServer

SEARCH = ("--type", "statement", "--grep", "FROM orders", "--limit", "1000")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def config(pg_server: PgServer, pg_database: str, tmp_path: Path) -> Iterator[Path]:
    """Settings for the demo database with two workers on fixed ports (the demo roles made as the harness does)."""
    prepared = RunningGateway.__new__(RunningGateway)  # only its database preparation, no gateway in this process
    prepared.pg_server, prepared.workdir, prepared.database = pg_server, tmp_path, pg_database
    prepared.tag = secrets.token_hex(3)
    prepared.roles = {k: f"{k}_{prepared.tag}" for k in ("read", "write", "owner")}
    prepared.admin = f"admin_{prepared.tag}"
    prepared._prepare_database(DEMO_POLICY)
    path = tmp_path / "sqlgate.yaml"
    text = path.read_text().replace(
        "listen: {postgres: '127.0.0.1:0', http: '127.0.0.1:0'}\n",
        f"listen: {{postgres: '127.0.0.1:{free_port()}', http: '127.0.0.1:{free_port()}'}}\n"
        "server: {workers: 2, drain_timeout: 5s}\n",
    )
    path.write_text(text)
    return path


def start(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")}
    with (config.parent / "serve.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sqlgate", "serve", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env
        )


def wait_serving(process: subprocess.Popen[bytes], config: Path, workers: int) -> None:
    deadline = time.monotonic() + 90
    log = config.parent / "serve.log"
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        if f"{workers} workers" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"not serving in 90 s:\n{log.read_text(errors='replace')}")


def test_two_workers_answer_on_one_port_both_audit_and_sigterm_stops_both(config: Path) -> None:
    """Connections spread over both workers; each writes its own valid chain; SIGTERM ends both, exit 0."""
    process = start(config)
    try:
        wait_serving(process, config, 2)
        workers = children(process.pid)
        assert len(workers) == 2
        settings = load_settings(config)
        token = mint_dev_token(settings, "alice", ["analysts"], timedelta(minutes=5))
        host, port = settings.listen.postgres.rsplit(":", 1)
        for _ in range(24):  # SO_REUSEPORT hashes each connection's address: 24 on one worker is 2^-23
            with psycopg.connect(host=host, port=int(port), dbname="demo", user="alice", password=token) as conn:
                assert conn.execute("SELECT count(*) FROM orders").fetchone() is not None
        assert httpx.get(f"http://{settings.listen.http}/readyz", timeout=10).status_code == 200
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(60) == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    verify = subprocess.run(
        [sys.executable, "-m", "sqlgate", "audit", "verify", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    chains = {chain["chain"] for chain in json.loads(verify.stdout)["chains"]}
    assert len(chains) == 2
    searched = subprocess.run(
        [sys.executable, "-m", "sqlgate", "audit", "search", "--json", "-c", str(config), *SEARCH],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")},
    )
    records = [json.loads(line) for line in searched.stdout.splitlines() if line.strip()]
    assert len(records) == 24  # one record per statement, each on the chain of the worker that ran it
    assert {record["chain"] for record in records} == chains


def test_worker_settings_give_each_worker_its_own_name_and_chain(config: Path) -> None:
    """Worker 0 runs as configured; worker 1 has a replica name and audit chain of its own."""
    settings = load_settings(config)
    first, second = worker_settings(settings, 0), worker_settings(settings, 1)
    assert first is settings
    assert second.server.replica_name is not None
    assert second.server.replica_name.endswith("-w1")
    assert second.audit.chain_id is not None
    assert second.audit.chain_id.endswith("-w1")
    assert second.audit.chain_id != first.audit.chain_id


def test_workers_need_fixed_ports(config: Path) -> None:
    """Port 0 would give each worker its own port: refused with a clear error."""
    settings = load_settings(config)
    zero = settings.model_copy(update={"listen": settings.listen.model_copy(update={"postgres": "127.0.0.1:0"})})
    with pytest.raises(ConfigError, match="fixed ports"):
        check_workers(zero)


def test_a_cancel_request_reaches_the_worker_that_runs_the_statement(config: Path) -> None:
    """Each cancel lands on a worker the kernel picks; a worker that does not know the key relays it to the other."""
    process = start(config)
    try:
        wait_serving(process, config, 2)
        settings = load_settings(config)
        token = mint_dev_token(settings, "alice", ["analysts"], timedelta(minutes=5))
        host, port = settings.listen.postgres.rsplit(":", 1)
        for _ in range(8):  # without the relay, all 8 on the right worker is 2^-8
            with psycopg.connect(host=host, port=int(port), dbname="demo", user="alice", password=token) as conn:
                timer = threading.Timer(0.3, conn.cancel)
                timer.start()
                with pytest.raises(psycopg.errors.QueryCanceled):
                    conn.execute("SELECT pg_sleep(20)")
                timer.join()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0


def test_a_worker_that_dies_stops_the_others_and_the_gateway_exits_1(config: Path) -> None:
    """A worker killed with SIGKILL: the supervisor stops the other (a drain) and exits 1, for a restart."""
    process = start(config)
    try:
        wait_serving(process, config, 2)
        first, second = sorted(children(process.pid))
        os.kill(second, signal.SIGKILL)
        assert process.wait(60) == 1
        assert not alive(first)
        assert "ended (status -9): stopping the others" in (config.parent / "serve.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
