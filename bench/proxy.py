"""pgbench through sqlgate, side by side with a direct connection and pgbouncer, in one run.

    python bench/proxy.py [--seconds 10] [--rounds 2] [--scale 5]

Starts an embedded PostgreSQL, pgbouncer (Debian package `pgbouncer`, session mode;
skipped with a note when missing), pgpool-II (Debian `pgpool2`: streaming-replication
mode with this server as its one primary and load balancing on, so it parses every
statement as sqlgate does; skipped with a note when missing), a bare Python byte
relay (bench/bare_relay.py: the ceiling for any Python proxy) and three sqlgate
gateways (`sqlgate serve`) in front of it: "sqlgate" as configured by default
(`audit.writer: process`: each statement's record reaches the writer process before
its answer reaches the client), "sqlgate inline" (`audit.writer: inline`) and
"sqlgate x2" (the default with `server.workers: 2`). Then it runs `pgbench -S` against each, interleaved round by
round so machine noise hits all alike: 1 and 8 clients, simple and prepared protocol, and `-C` (a new
connection per transaction). Prints TPS, average latency and the ratios the targets
are stated in (sqlgate / pgpool, sqlgate / pgbouncer, ...), the machine's CPU time per
transaction for each target at 8 clients (pgbench, server and proxy share the CPUs, so
this is what throughput trades against), the proxy's own share of it and the share the
0.95x target leaves the gateway, plus gateway memory per idle session (1,000 idle
sessions by default, as the target is stated).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
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

from sqlgate.embedded import BIN, EmbeddedPostgres
from sqlgate.pgwire import framing

PGBENCH = shutil.which("pgbench") or str(BIN / "pgbench")
INLINE = "sqlgate inline"  # the same gateway with `audit.writer: inline`
WORKERS2 = "sqlgate x2"  # the same gateway with `server.workers: 2`
BENCH_POLICY = (
    "rules:\n  - name: bench\n    who: {groups: [bench]}\n    databases: [bench]\n    role: read\n    max_ttl: 1h\n"
)


@dataclass(frozen=True)
class Target:
    """One way to reach the database."""

    name: str
    host: str
    port: int
    user: str
    password: str
    dbname: str
    pid: int | None = None  # the proxy's process (its descendants count too); None: no proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, not idle or waiting for I/O), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds spent so far by ``pid`` alone (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds spent so far by ``pid`` and its live descendants (all threads), from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent and child not in tree]
        tree.update(children)
        frontier += children
    return sum(times.get(member, 0.0) for member in tree)


def pgbench(
    target: Target, clients: int, seconds: int, mode: str, connect_each: bool
) -> tuple[float, float, float, float, float]:
    """One pgbench run: TPS, latency and CPU per transaction.

    Returns (TPS, average latency in ms, machine CPU µs per transaction — pgbench, server and
    proxy together — the proxy's own CPU µs per transaction, NaN without a proxy, and the part
    of it its first process spent: for sqlgate, the gateway without its audit writer process).
    """
    argv = [
        PGBENCH,
        "-n",
        "-S",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(seconds),
        "-h",
        target.host,
        "-p",
        str(target.port),
        "-U",
        target.user,
        target.dbname,
    ]
    if connect_each:
        argv.insert(1, "-C")
    env = {**os.environ, "PGPASSWORD": target.password, "PGSSLMODE": "disable"}
    busy = machine_busy_seconds()
    proxy = process_tree_cpu_seconds(target.pid) if target.pid else float("nan")
    main = process_cpu_seconds(target.pid) if target.pid else float("nan")
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    busy = machine_busy_seconds() - busy
    proxy = process_tree_cpu_seconds(target.pid) - proxy if target.pid else float("nan")
    main = process_cpu_seconds(target.pid) - main if target.pid else float("nan")
    if out.returncode != 0:
        raise RuntimeError(f"pgbench against {target.name} failed: {out.stderr.strip()[-500:]}")
    tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", out.stdout).group(1))  # type: ignore[union-attr]
    transactions = max(1.0, tps * seconds)
    return tps, latency, busy / transactions * 1e6, proxy / transactions * 1e6, main / transactions * 1e6


@contextlib.contextmanager
def pgbouncer(server: EmbeddedPostgres, workdir: Path) -> Iterator[Target | None]:
    exe = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(exe).exists():
        print("pgbouncer not found (apt-get install pgbouncer): its column is skipped")
        yield None
        return
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")  # pgbouncer runs as the postgres user and writes its log here
    (workdir / "users.txt").write_text(f'"postgres" "{server.password}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"[databases]\nbench = host=127.0.0.1 port={server.port} dbname=bench\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = scram-sha-256\n"
        f"auth_file = {workdir / 'users.txt'}\npool_mode = session\nmax_client_conn = 2000\n"
        f"default_pool_size = 40\nunix_socket_dir =\nlogfile = {workdir / 'pgbouncer.log'}\n"
    )
    for path in workdir.iterdir():
        path.chmod(0o644)
    argv = [exe, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        argv = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(argv)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield Target("pgbouncer", "127.0.0.1", port, "postgres", server.password, "bench", proc.pid)
    finally:
        subprocess.run(["pkill", "-f", str(workdir / "pgbouncer.ini")], check=False)
        proc.wait(timeout=10)


PGPOOL = "/usr/sbin/pgpool"


@contextlib.contextmanager
def pgpool(server: EmbeddedPostgres, workdir: Path) -> Iterator[Target | None]:
    """pgpool-II (Debian `pgpool2`) in front of the same server: the fair peer, a C proxy that parses every statement.

    Streaming-replication mode with the server as its one primary and load balancing on, so each
    statement is parsed to decide where it may go; connection cache on (pgpool's session pooling).
    """
    exe = shutil.which("pgpool") or PGPOOL
    if not Path(exe).exists():
        print("pgpool-II not found (apt-get install pgpool2): its column is skipped")
        yield None
        return
    port, pcp_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pool_passwd").write_text(f"postgres:TEXT{server.password}\n")
    (workdir / "pool_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    (workdir / "pcp.conf").write_text("")
    (workdir / "pgpool.conf").write_text(
        "backend_clustering_mode = 'streaming_replication'\n"
        f"listen_addresses = '127.0.0.1'\nport = {port}\nsocket_dir = '{workdir}'\n"
        f"pcp_listen_addresses = ''\npcp_port = {pcp_port}\npcp_socket_dir = '{workdir}'\n"
        f"backend_hostname0 = '127.0.0.1'\nbackend_port0 = {server.port}\nbackend_weight0 = 1\n"
        "backend_flag0 = 'ALWAYS_PRIMARY|DISALLOW_TO_FAILOVER'\n"
        f"enable_pool_hba = on\npool_passwd = '{workdir / 'pool_passwd'}'\n"
        "num_init_children = 64\nmax_pool = 2\nconnection_cache = on\nload_balance_mode = on\n"
        "sr_check_period = 0\nhealth_check_period = 0\nuse_watchdog = off\nfailover_on_backend_error = off\n"
        f"wd_ipc_socket_dir = '{workdir}'\npid_file_name = '{workdir / 'pgpool.pid'}'\nlogdir = '{workdir}'\n"
        "log_min_messages = warning\n"
    )
    argv = [exe, "-n", "-f", str(workdir / "pgpool.conf"), "-F", str(workdir / "pcp.conf")]
    argv += ["-a", str(workdir / "pool_hba.conf")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(workdir / "pgpool.log").open("w"))
    try:
        wait_port(port)
        yield Target("pgpool", "127.0.0.1", port, "postgres", server.password, "bench", proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown of pgpool and its children
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def bare_relay(server: EmbeddedPostgres) -> Iterator[Target]:
    """bench/bare_relay.py in front of the server: what Python and uvloop cost with no work at all."""
    port = free_port()
    script = Path(__file__).with_name("bare_relay.py")
    proc = subprocess.Popen([sys.executable, str(script), str(port), "127.0.0.1", str(server.port)])
    try:
        wait_port(port)
        yield Target("bare relay", "127.0.0.1", port, "postgres", server.password, "bench", proc.pid)
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def sqlgate(
    server: EmbeddedPostgres,
    workdir: Path,
    writer: str = "process",
    *,
    workers: int = 1,
    name: str = "sqlgate",
    login_prefix: str = "sg",
    policy: str = BENCH_POLICY,
) -> Iterator[tuple[Target, int]]:
    """A gateway from `sqlgate serve` with a bench user allowed to read the bench database.

    ``writer`` is its `audit.writer`: the audit log in a process of its own, or in the gateway's process;
    ``workers`` its `server.workers`.
    Gateways side by side need their own ``login_prefix``: each reaps the logins of its prefix it does not know.
    ``policy``: the policy file's text (the token is for user ``bench`` in group ``bench``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pg_port, http_port = free_port(), free_port()
    secret = workdir / "admin.secret"
    secret.write_text(server.password)
    secret.chmod(0o600)
    (workdir / "policy.yaml").write_text(policy)
    (workdir / "sqlgate.yaml").write_text(
        f"data_dir: {workdir / 'data'}\nlisten: {{postgres: '127.0.0.1:{pg_port}', http: '127.0.0.1:{http_port}'}}\n"
        "identity: {dev_issuer: true}\n"
        f"databases:\n  bench:\n    host: 127.0.0.1\n    port: {server.port}\n    dbname: bench\n"
        f"    admin_user: postgres\n    admin_password_file: {secret}\n    roles: {{read: bench_read}}\n"
        f"    connection_limit: 5000\n    tls: disable\n    login_prefix: {login_prefix}\n"
        f"policy_file: {workdir / 'policy.yaml'}\n"
    )
    config = str(workdir / "sqlgate.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlgate", "serve", "-c", config],
        env={**os.environ, "SQLGATE_AUDIT__WRITER": writer, "SQLGATE_SERVER__WORKERS": str(workers)},
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sqlgate.log").open("w"),
    )
    try:
        wait_port(pg_port)
        time.sleep(1 if workers > 1 else 0)  # the other workers start after the first one listens
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "sqlgate",
                "token",
                "-c",
                config,
                "--user",
                "bench",
                "--group",
                "bench",
                "--ttl",
                "1h",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        yield Target(name, "127.0.0.1", pg_port, "bench", token.stdout.strip(), "bench", proc.pid), proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_memory(target: Target, pid: int, count: int) -> float:
    """Gateway RSS growth per idle authenticated session, in KiB."""
    import psycopg  # noqa: PLC0415 - a dev dependency, only needed here

    before = rss_kib(pid)
    conns = [
        psycopg.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            dbname=target.dbname,
            sslmode="disable",
        )
        for _ in range(count)
    ]
    time.sleep(1)
    after = rss_kib(pid)
    for conn in conns:
        conn.close()
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=int, default=5)
    parser.add_argument(
        "--idle",
        type=int,
        default=1000,
        help="idle sessions for the memory figure (0: skip); the embedded server gets room for them",
    )
    args = parser.parse_args()

    with EmbeddedPostgres(max_connections=max(300, args.idle + 100)) as server, tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # pgbouncer runs as the postgres user when we are root
        server.create_database("bench")
        server.create_role("bench_read", options="NOLOGIN")
        subprocess.run(
            [
                PGBENCH,
                "-i",
                "-q",
                "-s",
                str(args.scale),
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                "postgres",
                "bench",
            ],
            env={**os.environ, "PGPASSWORD": server.password},
            capture_output=True,
            check=True,
        )
        server.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench_read", dbname="bench")
        direct = Target("direct", server.host, server.port, "postgres", server.password, "bench")
        with (
            pgbouncer(server, Path(tmp) / "pgb") as bouncer,
            pgpool(server, Path(tmp) / "pgpool") as pool,
            bare_relay(server) as bare,
            sqlgate(server, Path(tmp)) as (gate, gate_pid),
            sqlgate(server, Path(tmp) / "inline", "inline", name=INLINE, login_prefix="sgi") as (gate_inline, _),
            sqlgate(server, Path(tmp) / "x2", workers=2, name=WORKERS2, login_prefix="sgx") as (gate_x2, _),
        ):
            if args.idle:  # first, on a fresh gateway whose heap has not grown and shrunk yet
                per_session = idle_memory(gate, gate_pid, args.idle)
            targets = [t for t in (direct, bouncer, pool, bare, gate, gate_inline, gate_x2) if t is not None]
            cases = [
                (1, "simple", False),
                (8, "simple", False),
                (1, "prepared", False),
                (8, "prepared", False),
                (8, "simple", True),
            ]
            results: dict[tuple[int, str, bool, str], list[tuple[float, float, float, float, float]]] = {}
            for round_no in range(args.rounds):
                for clients, mode, connect_each in cases:
                    for target in targets if round_no % 2 == 0 else reversed(targets):
                        key = (clients, mode, connect_each, target.name)
                        results.setdefault(key, []).append(pgbench(target, clients, args.seconds, mode, connect_each))
            report(results, cases, [t.name for t in targets])
            if args.idle:
                print(
                    f"\ngateway memory per idle session ({args.idle} sessions): {per_session:.1f} KiB (target < 64 KiB)"
                )


RATIOS = (  # (numerator, denominator) shown side by side when both ran
    ("sqlgate", "pgpool"),
    (INLINE, "pgpool"),
    (WORKERS2, "pgpool"),
    ("sqlgate", "pgbouncer"),
    (WORKERS2, "pgbouncer"),
    ("bare relay", "pgbouncer"),
    ("sqlgate", "direct"),
)


def hot_path_build() -> str:
    """Whether the gateways (this Python, this install) run the hot path compiled (hatch_build.py) or pure."""
    module = Path(str(framing.__file__)).name
    if module.endswith(".py"):
        return f"pure Python ({module}: SQLGATE_NO_EXTENSIONS=1 or no Cython/C compiler at install)"
    return f"compiled with Cython ({module})"


def report(results, cases, names) -> None:  # noqa: ANN001
    print(f"gateway hot path: {hot_path_build()}")
    print(f"{'case':24s}" + "".join(f"{n:>24s}" for n in names))
    for clients, mode, connect_each in cases:
        label = f"{clients} client(s) {mode}{' -C' if connect_each else ''}"
        runs = {n: results[(clients, mode, connect_each, n)] for n in names}
        tps = {n: statistics.median(r[0] for r in runs[n]) for n in names}
        lat = {n: statistics.median(r[1] for r in runs[n]) for n in names}
        cpu = {n: statistics.median(r[2] for r in runs[n]) for n in names}
        own = {n: statistics.median(r[3] for r in runs[n]) for n in names}
        main = {n: statistics.median(r[4] for r in runs[n]) for n in names}
        print(f"{label:24s}" + "".join(f"{tps[n]:>14.0f} tps {lat[n]:>5.2f}ms" for n in names))
        ratios = [f"{a}/{b} {tps[a] / tps[b]:.2f}x" for a, b in RATIOS if a in tps and b in tps]
        print(f"{'':24s}TPS: " + ", ".join(ratios))
        if clients == 1:
            added = {n: lat[n] - lat["direct"] for n in names if n != "direct"}
            spent = ", ".join(f"{n} {added[n]:.3f}" for n in added)
            print(f"{'':24s}added latency (ms): {spent}")
            if added.get("pgbouncer", 0) > 0:
                ratio = added["sqlgate"] / added["pgbouncer"]
                print(f"{'':24s}sqlgate's added latency / pgbouncer's: {ratio:.2f}x (target <= 2x)")
        if clients > 1:  # the machine's CPUs are shared by pgbench, the server and the proxy: what each costs
            spent = ", ".join(f"{n} {cpu[n]:.0f}" for n in names)
            print(f"{'':24s}machine CPU per transaction (µs, all processes): {spent}")
            proxies = [n for n in names if own[n] == own[n]]  # NaN: no proxy in between
            spent = ", ".join(f"{n} {own[n]:.0f}" for n in proxies)
            print(f"{'':24s}the proxy's own CPU per transaction (µs): {spent}")
            if "bare relay" in own:
                gates = [n for n in ("sqlgate", INLINE, WORKERS2) if n in own]
                versus = ", ".join(f"{n} {own[n] / own['bare relay']:.2f}x" for n in gates)
                print(f"{'':24s}the gateway's own CPU / the bare relay's: {versus} (target <= 2x)")
            gates = [n for n in ("sqlgate", INLINE) if n in own]
            split = ", ".join(f"{n} {main[n]:.0f} + {own[n] - main[n]:.0f}" for n in gates)
            print(f"{'':24s}of which (µs) the gateway process + its audit writer process: {split}")
            if not connect_each and "pgbouncer" in own:
                print(f"{'':24s}{budget_line(own['pgbouncer'], cpu['pgbouncer'], own['sqlgate'])}")


def budget_line(bouncer_own: float, bouncer_machine: float, sqlgate_own: float) -> str:
    """What the 0.95x target leaves the gateway per transaction, with everything else on the machine unchanged.

    TPS follows the machine's CPU per transaction, so sqlgate / pgbouncer >= 0.95 needs
    sqlgate's own CPU <= pgbouncer's own + (1 / 0.95 - 1) x the machine's CPU per pgbouncer transaction.
    """
    budget = bouncer_own + (1 / 0.95 - 1) * bouncer_machine
    return (
        f"0.95x pgbouncer leaves the gateway {budget:.0f} µs per transaction "
        f"(pgbouncer's {bouncer_own:.0f} + 5.3% of the machine's {bouncer_machine:.0f}); sqlgate spends {sqlgate_own:.0f}"
    )


if __name__ == "__main__":
    main()
