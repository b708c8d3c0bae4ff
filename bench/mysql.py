"""Point selects through sqlgate's MySQL listener, side by side with a direct connection and a bare byte relay.

    python bench/mysql.py [--seconds 10] [--rounds 2] [--threads 1,4] [--table-size 10000]

Needs the machine's MariaDB on 127.0.0.1:3306 (root without password). Creates a
database with sysbench's sbtest1 table, a read role and an admin account, then runs,
interleaved round by round so machine noise hits all alike:

- ``direct``: MariaDB itself;
- ``bare relay``: bench/bare_relay.py, every byte relayed unread (the ceiling for a
  Python proxy);
- ``sqlgate``: ``sqlgate serve`` with ``listen.mysql``, a token as the password, the
  guardrails of a read-only grant and statement audit on.

With /usr/bin/sysbench: ``oltp_point_select`` with server-side prepared statements
(COM_STMT_EXECUTE, binary rows) and with them off (COM_QUERY, text rows). Without
it: a PyMySQL loop of point selects (text protocol). Prints queries per second,
the ratios sqlgate / direct and sqlgate / bare relay, and the CPU each proxy process (the gateway
and its audit writer apart) spent per statement.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql

SYSBENCH = shutil.which("sysbench")
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
POLICY = (
    "rules:\n  - name: bench\n    who: {groups: [bench]}\n    databases: [bench]\n    role: read\n    max_ttl: 1h\n"
    "    guardrails: {deny: [write, ddl, dcl, admin]}\n"
)


@dataclass(frozen=True)
class Target:
    """One way to reach the database."""

    name: str
    port: int
    user: str
    password: str
    database: str
    pid: int | None = None  # the proxy's process; None: no proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``pid`` itself (all threads) and of its child processes, from /proc."""
    own = children = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            spent = (int(fields[11]) + int(fields[12])) / tick
            if int(entry.name) == pid:
                own += spent
            elif int(fields[1]) == pid:
                children += spent
    return own, children


def root(*statements: str, database: str | None = None) -> None:
    conn = pymysql.connect(**MARIADB, database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@contextlib.contextmanager
def bench_database(table_size: int) -> Iterator[tuple[str, str, str]]:
    """A database with sbtest1, a read role and an admin account: (database, admin, admin password)."""
    tag = secrets.token_hex(3)
    db, admin, role, password = f"bench_{tag}", f"bench_adm_{tag}", f"bench_read_{tag}", secrets.token_urlsafe(18)
    root(
        f"CREATE DATABASE {db}",
        f"CREATE TABLE {db}.sbtest1 (id INT PRIMARY KEY AUTO_INCREMENT, k INT NOT NULL DEFAULT 0,"
        " c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k))",
        f"INSERT INTO {db}.sbtest1 (k, c, pad) SELECT seq % 1000, REPEAT(CHAR(97 + seq % 26), 120),"
        f" REPEAT('p', 60) FROM {db}.seq_1_to_{table_size}",
        f"CREATE ROLE {role}",
        f"GRANT SELECT ON {db}.* TO {role}",
        f"CREATE USER '{admin}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION",
        f"GRANT {role} TO '{admin}'@'%' WITH ADMIN OPTION",
    )
    try:
        yield db, admin, password
    finally:
        with contextlib.suppress(pymysql.MySQLError):
            conn = pymysql.connect(**MARIADB, autocommit=True)
            with conn.cursor() as cur:
                cur.execute("SELECT User FROM mysql.user WHERE User LIKE 'sgb\\_%'")
                for (user,) in cur.fetchall():
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            conn.close()
        root(f"DROP USER IF EXISTS '{admin}'@'%'", f"DROP ROLE IF EXISTS {role}", f"DROP DATABASE IF EXISTS {db}")


@contextlib.contextmanager
def bare_relay() -> Iterator[Target]:
    """bench/bare_relay.py in front of MariaDB."""
    port = free_port()
    script = Path(__file__).with_name("bare_relay.py")
    proc = subprocess.Popen([sys.executable, str(script), str(port), "127.0.0.1", "3306"])
    try:
        wait_port(port)
        yield Target("bare relay", port, "root", "", "", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def sqlgate(db: str, admin: str, password: str, workdir: Path) -> Iterator[Target]:
    """``sqlgate serve`` with a MySQL listener, and a token for user ``bench`` in group ``bench``."""
    workdir.mkdir(parents=True, exist_ok=True)
    mysql_port = free_port()
    secret = workdir / "admin.secret"
    secret.write_text(password)
    secret.chmod(0o600)
    (workdir / "policy.yaml").write_text(POLICY)
    (workdir / "sqlgate.yaml").write_text(
        f"data_dir: {workdir / 'data'}\n"
        f"listen: {{postgres: '127.0.0.1:{free_port()}', http: '127.0.0.1:{free_port()}', "
        f"mysql: '127.0.0.1:{mysql_port}'}}\n"
        "identity: {dev_issuer: true}\n"
        f"databases:\n  bench:\n    engine: mysql\n    host: 127.0.0.1\n    port: 3306\n    dbname: {db}\n"
        f"    admin_user: {admin}\n    admin_password_file: {secret}\n    roles: {{read: bench_read_{db[6:]}}}\n"
        "    connection_limit: 500\n    tls: disable\n    login_prefix: sgb\n"
        f"policy_file: {workdir / 'policy.yaml'}\n"
    )
    config = str(workdir / "sqlgate.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlgate", "serve", "-c", config],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sqlgate.log").open("w"),
    )
    try:
        wait_port(mysql_port)
        token = subprocess.run(
            [sys.executable, "-m", "sqlgate", "token", "-c", config, "--user", "bench", "--group", "bench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield Target("sqlgate", mysql_port, "bench", token, "bench", proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def sysbench(target: Target, db: str, *, threads: int, seconds: int, prepared: bool, table_size: int) -> float:
    """Queries per second of sysbench oltp_point_select against ``target``."""
    assert SYSBENCH is not None
    argv = [
        SYSBENCH,
        "oltp_point_select",
        "--mysql-host=127.0.0.1",
        f"--mysql-port={target.port}",
        f"--mysql-user={target.user}",
        f"--mysql-db={target.database or db}",
        "--tables=1",
        f"--table-size={table_size}",
        f"--threads={threads}",
        f"--time={seconds}",
        f"--db-ps-mode={'auto' if prepared else 'disable'}",
        "--mysql-ssl=off",
        "run",
    ]
    if target.password:
        argv.insert(5, f"--mysql-password={target.password}")
    # libmariadb loads mysql_clear_password on first use, racily when threads connect at once
    # ("Plugin mysql_clear_password could not be loaded: it is already loaded"): load it at library start.
    env = {**os.environ, "LIBMYSQL_PLUGINS": "mysql_clear_password"}
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 60, env=env)
    found = re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", out.stdout)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"sysbench against {target.name} failed: {(out.stderr or out.stdout).strip()[-800:]}")
    return float(found.group(1))


def python_loop(target: Target, db: str, *, threads: int, seconds: int, prepared: bool, table_size: int) -> float:
    """Queries per second of a PyMySQL point-select loop (one connection; text protocol only)."""
    del threads, prepared
    conn = pymysql.connect(
        host="127.0.0.1", port=target.port, user=target.user, password=target.password, database=target.database or db
    )
    count = 0
    deadline = time.monotonic() + seconds
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT c FROM sbtest1 WHERE id = %s", (random.randint(1, table_size),))  # noqa: S311
            cur.fetchall()
            count += 1
    conn.close()
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--table-size", type=int, default=10_000)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    run = sysbench if SYSBENCH else python_loop
    modes = [True, False] if SYSBENCH else [False]
    print(f"driver: {'sysbench oltp_point_select' if SYSBENCH else 'PyMySQL loop (no /usr/bin/sysbench)'}")
    with bench_database(args.table_size) as (db, admin, password), tempfile.TemporaryDirectory() as tmp:
        direct = Target("direct", 3306, "root", "", db)
        with bare_relay() as bare, sqlgate(db, admin, password, Path(tmp)) as gate:
            targets = [direct, bare, gate]
            qps: dict[tuple[str, int, bool], list[float]] = {}
            cpu: dict[tuple[str, int, bool], list[tuple[float, float]]] = {}
            for _round in range(args.rounds):
                for count in threads:
                    for prepared in modes:
                        for target in targets:
                            before = process_cpu_seconds(target.pid) if target.pid else (0.0, 0.0)
                            rate = run(
                                target,
                                db,
                                threads=count,
                                seconds=args.seconds,
                                prepared=prepared,
                                table_size=args.table_size,
                            )
                            key = (target.name, count, prepared)
                            qps.setdefault(key, []).append(rate)
                            if target.pid:
                                after = process_cpu_seconds(target.pid)
                                count_run = max(1.0, rate * args.seconds)
                                own = (after[0] - before[0]) / count_run * 1e6
                                children = (after[1] - before[1]) / count_run * 1e6
                                cpu.setdefault(key, []).append((own, children))
            report(qps, cpu, threads, modes)


def report(qps, cpu, threads, modes) -> None:  # noqa: ANN001
    header = f"{'case':<34}{'direct':>10}{'bare':>10}{'sqlgate':>10}{'/direct':>9}{'/bare':>8}"
    print(f"{header}{'bare µs':>9}{'gate µs':>9}{'audit µs':>10}")
    for count in threads:
        for prepared in modes:
            name = f"{count} thread(s), {'prepared (binary)' if prepared else 'text (COM_QUERY)'}"
            d, b, g = (statistics.median(qps[(t, count, prepared)]) for t in ("direct", "bare relay", "sqlgate"))
            bare_cpu = statistics.median(own for own, _ in cpu[("bare relay", count, prepared)])
            gate_cpu = statistics.median(own for own, _ in cpu[("sqlgate", count, prepared)])
            audit_cpu = statistics.median(child for _, child in cpu[("sqlgate", count, prepared)])
            ratios = f"{g / d:>9.2f}{g / b:>8.2f}"
            print(f"{name:<34}{d:>10.0f}{b:>10.0f}{g:>10.0f}{ratios}{bare_cpu:>9.1f}{gate_cpu:>9.1f}{audit_cpu:>10.1f}")
    print(
        "qps: queries per second (median of rounds); µs: CPU per statement of the proxy's process"
        " (gate: the gateway's own process; audit: its child processes, the audit writer)"
    )


if __name__ == "__main__":
    main()
