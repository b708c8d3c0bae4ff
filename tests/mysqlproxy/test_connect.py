"""`sqlgate connect` starts the mysql CLI for a MySQL database, the token in its environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def test_sqlgate_connect_runs_mysql_through_the_listener(mysql_gateway):
    """`sqlgate connect shop -- -N -B -e ...` reads masked rows through the MySQL listener."""
    if shutil.which("mysql") is None:
        pytest.skip("needs the mysql CLI (Debian's mariadb-client)")
    token = mysql_gateway.token("alice", ("analysts",))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlgate",
            "connect",
            "shop",
            "-c",
            str(mysql_gateway.workdir / "sqlgate.yaml"),
            "--port",
            str(mysql_gateway.mysql_port),
            "--",
            "-N",
            "-B",
            "-e",
            "SELECT email FROM customers ORDER BY id",
        ],
        env={**os.environ, "SQLGATE_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("WARNING:")]
    assert lines == ["a***@example.com", "b***@example.org"]
    assert token not in result.stdout + result.stderr
