"""Load test of the connector: the example app under concurrent clients while logins rotate and the database restarts.

Run: python bench/connector_load.py [--clients 50] [--duration 30] [--ttl 10] [--restart-at 0.5]

The example app (examples/fastapi_app) runs under uvicorn with the connector; a gateway
stand-in mints real PostgreSQL logins with VALID UNTIL = ttl (the connector refreshes at
half-life, so logins rotate every ttl/2 seconds: 5 s by default); the embedded PostgreSQL
is stopped and started once (same port, same data). Each client loops over /orders,
/me and /stats as a random customer and, on a 503 with Retry-After, retries the request
(at most 5 times). Printed:

- requests, and failures in and outside the restart window (a request overlapping
  [stop, start + 1 s] is in the window); requests retried and how many then succeeded;
- p50 and p99 latency of successful requests (with retries);
- server side: logins made with an expired credential (refused logins in the server log
  and successful logins after VALID UNTIL, recorded by a login event trigger), and the
  most sessions of expired logins seen open at once (sampled every 0.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import multiprocessing
from typing import Any, Self

import uvicorn
from examples.fastapi_app.app import create_app
from joserfc.jwk import ECKey

from sqlgate.connector import EndUsers, GatewayCredentials, JwtVerifier
from sqlgate.connector.fastapi import Connector
from sqlgate.connector.testing import MintingGateway, ServerThread, StaticToken, TestIssuer
from sqlgate.embedded import EmbeddedPostgres
from sqlgate.server.demo import SCHEMA_SQL as DEMO_SCHEMA_TEMPLATE

APP_TOKEN = "bench-app-token"  # noqa: S105 - the stand-in gateway's accepted token
GRANT = "bench_app"
# The demo schema (sqlgate.server.demo), with the demo's role names filled in where it names them by placeholder.
SCHEMA_SQL = (
    DEMO_SCHEMA_TEMPLATE.replace("{owner}", "demo_owner")
    .replace("{read}", "demo_read")
    .replace("{write}", "demo_write")
)
RLS_SQL = (Path(__file__).resolve().parents[1] / "examples" / "fastapi_app" / "rls.sql").read_text()
SETUP_SQL = f"""
CREATE ROLE demo_read NOLOGIN; CREATE ROLE demo_write NOLOGIN; CREATE ROLE demo_owner NOLOGIN;
CREATE ROLE {GRANT} NOLOGIN IN ROLE demo_read;
CREATE DATABASE demo OWNER demo_owner;
"""
LOGIN_EVENTS_SQL = """
CREATE TABLE login_events (role name, at timestamptz DEFAULT clock_timestamp(), valid_until timestamptz);
CREATE FUNCTION record_login() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
  INSERT INTO public.login_events (role, valid_until)
  SELECT session_user, rolvaliduntil FROM pg_roles WHERE rolname = session_user;
END $$;
CREATE EVENT TRIGGER record_login ON login EXECUTE FUNCTION record_login();
"""
STALE_SQL = (
    "SELECT count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.rolname = a.usename "
    "WHERE r.rolvaliduntil < now() AND a.state = 'active'"
)
STALE_IDLE_SQL = STALE_SQL.replace("a.state = 'active'", "a.state <> 'active'")
PATHS = ("/orders", "/orders", "/me", "/stats")


@dataclass
class Outcome:
    """One request: when it started and ended (monotonic), whether it succeeded, how often it was retried."""

    start: float
    end: float
    ok: bool
    retries: int
    status: str


@dataclass
class Window:
    """When the database was stopped and when it accepted connections again."""

    stop_at: float = 0.0
    started_at: float = 0.0
    settle: float = 1.0

    def overlaps(self, o: Outcome) -> bool:
        """True when the request ran during [stop, start + settle]."""
        return self.stop_at > 0 and o.start <= self.started_at + self.settle and o.end >= self.stop_at


@dataclass
class Sampled:
    """The most sessions of expired logins seen open at once."""

    stale_active: int = 0
    stale_idle: int = 0
    samples: int = 0
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(server: EmbeddedPostgres) -> None:
    server.psql(SETUP_SQL)
    server.psql(SCHEMA_SQL + RLS_SQL + LOGIN_EVENTS_SQL, dbname="demo")


async def client(http: aiohttp.ClientSession, base: str, tokens: list[str], until: float, out: list[Outcome]) -> None:
    while time.monotonic() < until:
        headers = {"Authorization": "Bearer " + random.choice(tokens)}  # noqa: S311 - load mix
        path = random.choice(PATHS)  # noqa: S311 - load mix
        start, retries, ok, status = time.monotonic(), 0, False, ""
        while True:
            try:
                async with http.get(base + path, headers=headers) as response:
                    await response.read()
                ok = response.status in {200, 404}
                retry = response.status == 503
                status = str(response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, retry, status = False, True, type(exc).__name__
            if ok or not retry or retries >= 5:
                break
            retries += 1
            await asyncio.sleep(0.2 + random.random() * 0.3)  # noqa: S311 - jitter
        out.append(Outcome(start, time.monotonic(), ok, retries, status))


async def restart(server: EmbeddedPostgres, at: float, window: Window) -> None:
    await asyncio.sleep(max(at - time.monotonic(), 0))
    window.stop_at = time.monotonic()
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    window.started_at = time.monotonic()


async def sample(server: EmbeddedPostgres, until: float, sampled: Sampled) -> None:
    while time.monotonic() < until:
        try:
            active = await asyncio.to_thread(server.psql, STALE_SQL, "demo")
            idle = await asyncio.to_thread(server.psql, STALE_IDLE_SQL, "demo")
            sampled.stale_active = max(sampled.stale_active, int(active.strip() or 0))
            sampled.stale_idle = max(sampled.stale_idle, int(idle.strip() or 0))
            sampled.samples += 1
        except Exception as exc:  # the server is restarting
            sampled.errors.append(type(exc).__name__)
        await asyncio.sleep(0.5)


def app_config(args: argparse.Namespace, gateway_url: str, issuer: TestIssuer) -> dict[str, Any]:
    """What the app process needs: the gateway, the end users' issuer key, pool sizes, its port."""
    return {
        "gateway": gateway_url,
        "ttl": args.ttl,
        "pool": args.pool,
        "port": free_port(),
        "log_level": args.app_log_level,
        "issuer": issuer.issuer,
        "audience": issuer.audience,
        "jwk": issuer.key.as_dict(private=False),
    }


def serve_app(config: dict[str, Any]) -> None:
    """The example app under uvicorn (runs in its own process, so clients and app do not share a GIL)."""
    source = GatewayCredentials(config["gateway"], "demo", identity=StaticToken(APP_TOKEN), ttl=config["ttl"])
    verifier = JwtVerifier(
        ECKey.import_key(config["jwk"]), issuer=config["issuer"], audience=config["audience"], algorithms=["ES256"]
    )
    connector = Connector(
        source,
        end_users=EndUsers(verifier),
        sqlalchemy=True,
        pool_options={"min_size": 5, "max_size": config["pool"]},
        engine_options={"pool_size": config["pool"], "max_overflow": 0},  # overflow connections churn
    )
    uvicorn.run(
        create_app(connector), host="127.0.0.1", port=config["port"], log_level=config["log_level"], access_log=False
    )


class AppProcess:
    """The app in a child process; ready once /healthz answers."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.url = f"http://127.0.0.1:{config['port']}"
        self._process = multiprocessing.get_context("spawn").Process(target=serve_app, args=(config,), daemon=True)

    def __enter__(self) -> Self:
        self._process.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._process.is_alive():
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the example app did not start (run with --app-log-level info to see why)")

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()  # SIGTERM: uvicorn shuts down, the lifespan closes the pool
        self._process.join(30)


@dataclass
class Figures:
    """The figures of one run."""

    clients: int
    elapsed: float
    ttl: float
    downtime: float
    requests: int
    failed_in_window: int
    failed_outside: int
    failure_kinds: dict[str, int]
    retried: int
    retried_ok: int
    p50_ms: float
    p99_ms: float
    minted: int
    logins: int
    expired_refused: int
    expired_accepted: int
    stale_active: int
    stale_idle: int
    samples: int

    def print(self) -> None:
        """Print the figures."""
        print(
            f"connector load: {self.clients} clients, {self.elapsed:.1f} s, logins of {self.ttl:g} s (rotated every "
            f"{self.ttl / 2:g} s), database restarted once ({self.downtime:.1f} s down)"
        )
        print(f"  requests            {self.requests}  ({self.requests / self.elapsed:.0f}/s)")
        print(
            f"  failed              {self.failed_in_window} in the restart window, {self.failed_outside} outside it"
            f"  {self.failure_kinds}"
        )
        print(f"  retried (503)       {self.retried}, of which succeeded {self.retried_ok}")
        print(f"  latency             p50 {self.p50_ms:.1f} ms  p99 {self.p99_ms:.1f} ms")
        print(f"  credentials minted  {self.minted}; app logins {self.logins}")
        print(
            f"  expired logins      {self.expired_refused} refused (server log), "
            f"{self.expired_accepted} accepted after VALID UNTIL"
        )
        print(
            f"  sessions of expired logins (max seen, {self.samples} samples): {self.stale_active} running a "
            f"query, {self.stale_idle} idle"
        )


async def run(args: argparse.Namespace, server: EmbeddedPostgres) -> Figures:
    """One load run on a prepared server; returns its figures."""
    issuer = TestIssuer()
    tokens = [issuer.issue(f"customer{i}@example.com", ttl=3600) for i in range(1, 201)]
    gateway = MintingGateway(
        server.dsn("demo"),
        host=server.host,
        port=server.port,
        dbname="demo",
        tokens={APP_TOKEN},
        grant=GRANT,
        default_ttl=args.ttl,
    )
    with ServerThread(gateway.app) as gw, AppProcess(app_config(args, gw.url, issuer)) as app:
        outcomes: list[Outcome] = []
        window, sampled = Window(), Sampled()
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            began = time.monotonic()
            until = began + args.duration
            await asyncio.gather(
                *(client(http, app.url, tokens, until, outcomes) for _ in range(args.clients)),
                restart(server, began + args.duration * args.restart_at, window),
                sample(server, until, sampled),
            )
            elapsed = time.monotonic() - began
        minted = len(gateway.minted)
    return figures(args, outcomes, window, sampled, elapsed, minted, server)


def figures(  # noqa: PLR0917 - one call site, all inputs of one run
    args: argparse.Namespace,
    outcomes: list[Outcome],
    window: Window,
    sampled: Sampled,
    elapsed: float,
    minted: int,
    server: EmbeddedPostgres,
) -> Figures:
    """The figures of a run, with the server-side checks."""
    ok = [o for o in outcomes if o.ok]
    failed_in = [o for o in outcomes if not o.ok and window.overlaps(o)]
    failed_out = [o for o in outcomes if not o.ok and not window.overlaps(o)]
    retried = [o for o in outcomes if o.retries]
    latencies = sorted((o.end - o.start) * 1000 for o in ok)
    return Figures(
        clients=args.clients,
        elapsed=elapsed,
        ttl=args.ttl,
        downtime=window.started_at - window.stop_at,
        requests=len(outcomes),
        failed_in_window=len(failed_in),
        failed_outside=len(failed_out),
        failure_kinds=dict(Counter(o.status for o in failed_in + failed_out)),
        retried=len(retried),
        retried_ok=sum(o.ok for o in retried),
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan"),
        minted=minted,
        logins=int(server.psql("SELECT count(*) FROM login_events WHERE valid_until IS NOT NULL", "demo").strip()),
        expired_refused=(server.root / "server.log").read_text(errors="replace").count("has an expired password"),
        expired_accepted=int(server.psql("SELECT count(*) FROM login_events WHERE at >= valid_until", "demo").strip()),
        stale_active=sampled.stale_active,
        stale_idle=sampled.stale_idle,
        samples=sampled.samples,
    )


def load_test(args: argparse.Namespace) -> Figures:
    """Start a persistent embedded PostgreSQL, prepare it, run the load, stop it; returns the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", port=free_port()).start()
        try:
            prepare(server)
            return asyncio.run(run(args, server))
        finally:
            server.stop()


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line arguments (defaults for a quick run)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (the issue's run: 200)")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load (the issue's run: 60)")
    parser.add_argument("--ttl", type=float, default=10, help="login lifetime in seconds (rotation at half of it)")
    parser.add_argument("--restart-at", type=float, default=0.5, help="restart the database at this fraction")
    parser.add_argument("--app-log-level", default="critical", help="uvicorn log level of the app (error: tracebacks)")
    parser.add_argument("--pool", type=int, default=20, help="most connections per pool")
    return parser.parse_args(argv)


def main() -> None:
    load_test(arguments()).print()


if __name__ == "__main__":
    main()
