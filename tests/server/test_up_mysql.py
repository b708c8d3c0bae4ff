"""`sqlgate up --mysql`: the MySQL demo on the machine's MariaDB, reached with the mysql CLI through the listener.

Skips, naming MariaDB, when no server lets root in at 127.0.0.1:3306 or the
mysql client is missing. The demo database, roles and admin it makes are
dropped afterwards unless they were there before the test (a developer's demo).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sqlgate.cli.common import console
from sqlgate.cli.up import _mysql_demo
from sqlgate.server import demo_mysql
from sqlgate.server.demo_mysql import MYSQL_ADMIN, MYSQL_DB, MYSQL_LOGIN_PREFIX, MYSQL_ROLES, mariadb_answers
from tests.server.test_up import free_port, listening, wait_for

MYSQL = shutil.which("mysql")


def root(sql: str) -> str:
    """Run SQL as the local MariaDB's root with the mysql CLI; its tab-separated output."""
    assert MYSQL is not None
    command = [MYSQL, "-h127.0.0.1", "-P3306", "-uroot", "-N", "-B", "-e", sql]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def mysql_cli(port: int, token: str, sql: str) -> subprocess.CompletedProcess[str]:
    """The mysql CLI through the listener, the token in MYSQL_PWD (never on the command line)."""
    assert MYSQL is not None
    command = [MYSQL, "-h127.0.0.1", f"-P{port}", "-ualice", "--enable-cleartext-plugin", "-N", "-B"]
    result = subprocess.run(
        [*command, "-e", sql, "demo_mysql"],
        env={**os.environ, "MYSQL_PWD": token},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # MariaDB's client always allows clear text and says --enable-cleartext-plugin is obsolete; MySQL's needs it.
    result.stdout = "".join(line for line in result.stdout.splitlines(keepends=True) if not line.startswith("WARNING:"))
    return result


@pytest.fixture
def mariadb() -> None:
    """Skip unless the machine's MariaDB answers and its client is installed."""
    why = asyncio.run(mariadb_answers())
    if why is not None:
        pytest.skip(f"needs MariaDB on 127.0.0.1:3306 (root, no password): {why}")
    if MYSQL is None:
        pytest.skip("needs the mysql CLI (Debian's mariadb-client)")


def _drop_demo() -> None:
    logins = root(f"SELECT User FROM mysql.user WHERE User LIKE '{MYSQL_LOGIN_PREFIX}\\_%'").split()
    drops = [f"DROP USER IF EXISTS '{user}'@'%';" for user in logins]
    roles = "".join(f"DROP ROLE IF EXISTS {role};" for role in MYSQL_ROLES.values())
    root(f"{''.join(drops)} DROP USER IF EXISTS '{MYSQL_ADMIN}'@'%'; {roles} DROP DATABASE IF EXISTS {MYSQL_DB};")


def _token(config: Path, *groups: str) -> str:
    argv = [sys.executable, "-m", "sqlgate", "token", "-c", str(config), "--user", "alice"]
    for group in groups:
        argv += ["--group", group]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_up_mysql_serves_the_mariadb_demo_through_the_listener(tmp_path, mariadb):
    """Like psql in test_up: the banner's mysql line works, masks and guardrails apply, a wrong token is refused."""
    existed = bool(root(f"SHOW DATABASES LIKE '{MYSQL_DB}'").strip())
    data_dir, log = tmp_path / "demo", tmp_path / "up.log"
    pg_port, http_port, mysql_port = free_port(), free_port(), free_port()
    argv = [sys.executable, "-m", "sqlgate", "up", "--data-dir", str(data_dir), "--mysql"]
    argv += ["--pg-port", str(pg_port), "--http-port", str(http_port), "--mysql-port", str(mysql_port)]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ctrl-C stops everything" in log.read_text() or proc.poll() is not None)
        banner = log.read_text()
        assert "Ctrl-C stops everything" in banner, banner[-2000:]
        assert f"mysql --enable-cleartext-plugin -h 127.0.0.1 -P {mysql_port} -u alice demo_mysql" in banner
        assert listening(mysql_port)
        config = data_dir / "sqlgate.yaml"
        analyst = _token(config, "analysts")

        rows = mysql_cli(mysql_port, analyst, "SELECT name, email, ssn FROM customers WHERE id = 1")
        assert rows.returncode == 0, rows.stderr
        assert rows.stdout.strip().split("\t") == ["Grace 1", "c***@example.com", "****"]
        count = mysql_cli(mysql_port, analyst, "SELECT COUNT(*) FROM orders")
        assert count.stdout.strip() == "1000", count.stderr

        refused = mysql_cli(mysql_port, analyst, "DELETE FROM orders")
        assert refused.returncode != 0
        assert "ERROR 1142 (42000)" in refused.stderr
        assert "analysts-read-demo" in refused.stderr
        assert mysql_cli(mysql_port, analyst, "SELECT COUNT(*) FROM orders").stdout.strip() == "1000"

        wrong = mysql_cli(mysql_port, analyst[:-4] + "AAAA", "SELECT 1")
        assert wrong.returncode != 0
        assert "ERROR 1045" in wrong.stderr

        # the login the broker minted for alice is a real MariaDB account holding the read role
        logins = root(f"SELECT User FROM mysql.user WHERE User LIKE '{MYSQL_LOGIN_PREFIX}\\_alice\\_%'").split()
        assert logins
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        if not existed:
            _drop_demo()
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not listening(mysql_port)


def test_up_mysql_without_a_server_says_so_and_skips_it(tmp_path, monkeypatch):
    """No server at the MariaDB address: a clear message and no MySQL entry (the PostgreSQL demo goes on)."""
    monkeypatch.setattr(demo_mysql, "DEFAULT_PORT", free_port())  # a closed port on this machine
    with console.capture() as captured:
        entry = _mysql_demo(tmp_path)
    assert entry == ""
    assert "--mysql skipped: no MariaDB/MySQL lets root in without a password at 127.0.0.1:" in captured.get()
    assert "the PostgreSQL demo starts alone" in captured.get()


def test_the_mysql_database_entry_loads_as_settings(tmp_path):
    """The generated entry is a valid mysql database in the settings model."""
    from sqlgate.config import Settings  # noqa: PLC0415

    demo = demo_mysql.MysqlDemo(host="127.0.0.1", port=3306, admin_secret=tmp_path / "secret")
    import yaml  # noqa: PLC0415

    parsed = yaml.safe_load("databases:\n" + demo_mysql.mysql_database_yaml(demo))
    settings = Settings.model_validate({"data_dir": str(tmp_path), **parsed})
    database = settings.databases["demo_mysql"]
    assert (database.engine, database.dbname, database.admin_user) == ("mysql", MYSQL_DB, MYSQL_ADMIN)
    assert database.roles == MYSQL_ROLES


def test_the_demo_policy_names_demo_mysql_only_with_mysql():
    """Without --mysql the policy is the PostgreSQL demo's alone (`sqlgate policy check` warns of nothing)."""
    from sqlgate.server.demo import demo_policy  # noqa: PLC0415

    assert "demo_mysql" not in demo_policy(mysql=False)
    assert demo_policy(mysql=True).count("databases: [demo, demo_mysql]") == 3
