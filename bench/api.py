"""Point selects through sqlgate's ``POST /v1/query`` against a minimal FastAPI + asyncpg app, in one run.

    python bench/api.py [--seconds 10] [--rounds 2] [--concurrency 16] [--state sqlite|postgresql]

Starts an embedded PostgreSQL with a ``customers`` table, a sqlgate gateway
(``sqlgate serve``, uvicorn inside) and a baseline app (FastAPI + asyncpg with a
static pool of the same size, served by uvicorn) in subprocesses on this machine.
A load generator (httpx, async, ``--concurrency`` requests in flight) posts the
same point select with a random id to each, interleaved round by round so machine
noise hits both alike. Prints requests/s, p50/p99 latency and the ratio
sqlgate / baseline (target >= 0.8). ``--state postgresql`` keeps the gateway's
state (and so its audit log, written for every statement) on the PostgreSQL
server instead of a SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
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

import httpx

from sqlgate.embedded import EmbeddedPostgres

SQL = "SELECT id, name, region FROM customers WHERE id = $1"
ROWS = 100_000
POOL_SIZE = 10

BASELINE_APP = f'''
"""The baseline: FastAPI + asyncpg, one static pool, the idiomatic minimal query endpoint."""
import contextlib, os
from typing import Any
import asyncpg
from fastapi import FastAPI, Response
from pydantic import BaseModel
import json

pool: Any = None

@contextlib.asynccontextmanager
async def lifespan(_app):
    global pool
    pool = await asyncpg.create_pool(os.environ["BASELINE_DSN"], min_size={POOL_SIZE}, max_size={POOL_SIZE})
    yield
    await pool.close()

app = FastAPI(lifespan=lifespan)

class Query(BaseModel):
    database: str
    sql: str
    params: list[Any] = []

@app.post("/v1/query")
async def query(body: Query) -> Response:
    rows = await pool.fetch(body.sql, *body.params)
    columns = [{{"name": name}} for name in (rows[0].keys() if rows else [])]
    result = {{"columns": columns, "rows": [list(r.values()) for r in rows], "row_count": len(rows)}}
    return Response(json.dumps(result), media_type="application/json")
'''


@dataclass(frozen=True)
class Target:
    """One HTTP endpoint to load."""

    name: str
    url: str
    headers: dict[str, str]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess, stopped with SIGINT (then killed) at the end."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def sqlgate(server: EmbeddedPostgres, workdir: Path, state: str) -> Iterator[Target]:
    """A gateway (`sqlgate serve`) whose policy lets the bench identity read the bench database."""
    http_port = free_port()
    secret = workdir / "admin.secret"
    secret.write_text(server.password)
    secret.chmod(0o600)
    (workdir / "policy.yaml").write_text(
        "rules:\n  - name: bench\n    who: {groups: [bench]}\n    databases: [bench]\n    role: read\n    max_ttl: 1h\n"
    )
    (workdir / "sqlgate.yaml").write_text(
        f"data_dir: {workdir / 'data'}\nstate: '{state}'\nlisten: {{postgres: '127.0.0.1:{free_port()}', http: '127.0.0.1:{http_port}'}}\n"
        "identity: {dev_issuer: true}\n"
        f"api: {{pool_size: {POOL_SIZE}}}\n"
        f"databases:\n  bench:\n    host: 127.0.0.1\n    port: {server.port}\n    dbname: bench\n"
        f"    admin_user: postgres\n    admin_password_file: {secret}\n    roles: {{read: bench_read}}\n"
        f"policy_file: {workdir / 'policy.yaml'}\n"
    )
    config = str(workdir / "sqlgate.yaml")
    with process([sys.executable, "-m", "sqlgate", "serve", "-c", config], workdir / "sqlgate.log"):
        url = f"http://127.0.0.1:{http_port}"
        wait_http(url + "/healthz")
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
        yield Target("sqlgate", url, {"Authorization": f"Bearer {token.stdout.strip()}"})


@contextlib.contextmanager
def baseline(server: EmbeddedPostgres, workdir: Path) -> Iterator[Target]:
    """The minimal FastAPI + asyncpg app under uvicorn, logged in as the server's superuser."""
    (workdir / "baseline_app.py").write_text(BASELINE_APP)
    port = free_port()
    env = {"BASELINE_DSN": server.dsn("bench"), "PYTHONPATH": str(workdir), "PATH": "/usr/bin:/bin"}
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "baseline_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "uvloop",
    ]
    with process(argv, workdir / "baseline.log", env):
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/docs")
        yield Target("baseline", url, {})


class Connection:
    """A keep-alive HTTP/1.1 connection speaking just enough to post JSON and read the answer.

    A hand-written client keeps the load generator's own cost low (httpx would be
    the bottleneck on a small machine), so the figures measure the servers.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: Target) -> None:
        self.reader, self.writer = reader, writer
        self.head = "".join(f"{key}: {value}\r\n" for key, value in target.headers.items())

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST /v1/query; the status and the body."""
        request = (
            f"POST /v1/query HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{self.head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


async def load(target: Target, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """Requests/s and each request's latency (ms), ``concurrency`` requests in flight for ``seconds``."""
    latencies: list[float] = []
    host, port = target.url.removeprefix("http://").split(":")
    connections = []
    for _ in range(concurrency):
        reader, writer = await asyncio.open_connection(host, int(port))
        connections.append(Connection(reader, writer, target))

    async def one(connection: Connection) -> None:
        body = json.dumps({"database": "bench", "sql": SQL, "params": [random.randint(1, ROWS)]}).encode()  # noqa: S311
        started = time.perf_counter()
        status, answer = await connection.post(body)
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"{target.name} answered {status}: {answer[:300]!r}")

    async def worker(connection: Connection, until: float) -> None:
        while time.perf_counter() < until:
            await one(connection)

    for connection in connections:  # warm up: pools, leases, statement caches
        for _ in range(20):
            await one(connection)
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(worker(connection, started + seconds) for connection in connections))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.writer.close()
    return len(latencies) / elapsed, latencies


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--state",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="The gateway's state database (audit log, leases): a SQLite file or the PostgreSQL server.",
    )
    args = parser.parse_args()
    with EmbeddedPostgres() as server, tempfile.TemporaryDirectory() as tmp:
        server.create_database("bench")
        server.create_role("bench_read", options="NOLOGIN")
        server.psql(
            "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, region text NOT NULL);"
            f"INSERT INTO customers SELECT i, 'customer ' || i, (ARRAY['eu','us','apac'])[1 + i % 3] "
            f"FROM generate_series(1, {ROWS}) i;"
            "GRANT SELECT ON customers TO bench_read; ANALYZE customers;",
            dbname="bench",
        )
        workdir = Path(tmp)
        state = "sqlite"
        if args.state == "postgresql":
            server.create_database("sqlgate_state")
            state = server.dsn("sqlgate_state")
        with sqlgate(server, workdir, state) as gate, baseline(server, workdir) as base:
            results: dict[str, list[tuple[float, list[float]]]] = {"sqlgate": [], "baseline": []}
            for _round in range(args.rounds):
                for target in (base, gate):
                    results[target.name].append(asyncio.run(load(target, args.seconds, args.concurrency)))
            report(results, args)


def report(results: dict[str, list[tuple[float, list[float]]]], args: argparse.Namespace) -> None:
    """Print requests/s and latency per target, then the ratio."""
    print(
        f"point select over HTTP, {args.concurrency} in flight, {args.rounds} x {args.seconds:.0f} s each, "
        f"gateway state (audit log) in {args.state}"
    )
    rates = {}
    for name, runs in results.items():
        rate = statistics.median(run[0] for run in runs)
        latencies = [value for run in runs for value in run[1]]
        rates[name] = rate
        print(
            f"  {name:<9} {rate:8.0f} req/s   p50 {percentile(latencies, 0.50):6.2f} ms   "
            f"p99 {percentile(latencies, 0.99):6.2f} ms   ({len(latencies)} requests)"
        )
    print(f"  sqlgate / baseline: {rates['sqlgate'] / rates['baseline']:.2f}x (target >= 0.80)")


if __name__ == "__main__":
    main()
