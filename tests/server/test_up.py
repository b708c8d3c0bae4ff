"""`sqlgate up` as the README shows it: the demo starts, psql works with a dev token, Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlgate.embedded import BIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def postgres_processes(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "postgres" in line and str(data_dir) in line]


def start_up(data_dir: Path, pg_port: int, http_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "sqlgate",
        "up",
        "--data-dir",
        str(data_dir),
        "--pg-port",
        str(pg_port),
        "--http-port",
        str(http_port),
    ]
    with log_path.open("w") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def test_up_serves_the_demo_and_stops_cleanly(tmp_path):
    data_dir, pg_port, http_port, log = tmp_path / "demo", free_port(), free_port(), tmp_path / "up.log"
    proc = start_up(data_dir, pg_port, http_port, log)
    try:
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text())
        assert listening(pg_port)
        assert listening(http_port)
        banner = log.read_text()
        assert "sqlgate token -c" in banner
        assert f"port={pg_port} dbname=demo user=alice" in banner
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "sqlgate",
                "token",
                "-c",
                str(data_dir / "sqlgate.yaml"),
                "--user",
                "alice",
                "--group",
                "analysts",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out = subprocess.run(
            [
                str(BIN / "psql"),
                "-X",
                "-At",
                f"host=127.0.0.1 port={pg_port} dbname=demo user=alice",
                "-c",
                "SELECT email FROM customers WHERE id = 1",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": token},
            check=False,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "c***@example.com"
        assert postgres_processes(data_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not listening(pg_port)
    assert not listening(http_port)
    wait_for(lambda: not postgres_processes(data_dir), timeout=20)
