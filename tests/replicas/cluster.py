"""Several ``sqlgate serve`` processes on one PostgreSQL state database, optionally behind HAProxy.

:class:`Cluster` prepares the demo database and a state database on the test
server, writes one settings file per replica (own ``data_dir``, shared state,
shared policy file, shared lease key, one dev-issuer key copied to every
replica, one gateway id), starts each replica as a real process and waits for
``/readyz``. With ``haproxy=True`` it starts ``/usr/bin/haproxy`` in front: a
TCP frontend for pgwire and one for HTTP, health-checked on each replica's
``/readyz``, retrying refused connections on another replica.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sqlgate.config import Settings, load_settings
from sqlgate.identity.devissuer import DevIssuer, mint_dev_token
from sqlgate.server.demo import schema_sql
from tests.gateway import DEMO_POLICY
from tests.pgserver import PgServer

READY_SECONDS = 60.0


def haproxy_path() -> Path | None:
    """Debian's haproxy binary, if installed."""
    for candidate in (Path("/usr/sbin/haproxy"), Path("/usr/bin/haproxy")):
        if candidate.is_file():
            return candidate
    found = shutil.which("haproxy")
    return Path(found) if found else None


def require_haproxy() -> Path:
    """The haproxy binary, or skip naming it."""
    path = haproxy_path()
    if path is None:
        pytest.skip("needs haproxy (Debian package haproxy)")
    return path


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One ``sqlgate serve`` process."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.pg_port = free_port()
        self.http_port = free_port()
        self.config = workdir / "sqlgate.yaml"
        self.log = workdir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        """The replica's own HTTP address."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        """Start the process (output to ``serve.log``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sqlgate", "serve", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        """Wait until ``/readyz`` answers 200 (fails with the log's tail when the process died)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"replica {self.name} exited {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"replica {self.name} not ready in {seconds} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The last lines of the replica's log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL after 20 s; the exit code (None when it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return None

    def conninfo(self, user: str, token: str) -> dict[str, Any]:
        """psycopg.connect arguments straight to this replica."""
        return {"host": "127.0.0.1", "port": self.pg_port, "dbname": "demo", "user": user, "password": token}


class Cluster:
    """``count`` replicas of one gateway on a fresh state database; the demo database as target."""

    def __init__(
        self,
        pg_server: PgServer,
        workdir: Path,
        count: int,
        *,
        haproxy: bool = False,
        drain_timeout: str = "3s",
        policy: str = DEMO_POLICY,
    ) -> None:
        self.pg_server = pg_server
        self.workdir = workdir
        self.tag = secrets.token_hex(3)
        self.database = f"t_{self.tag}_demo"
        self.state_database = f"t_{self.tag}_state"
        self.prefix = f"g{self.tag}"
        self.roles = {"read": f"read_{self.tag}", "write": f"write_{self.tag}", "owner": f"owner_{self.tag}"}
        self.admin = f"admin_{self.tag}"
        self.policy_file = workdir / "policy.yaml"
        self.policy_file.write_text(policy)
        self.replicas = [Replica(f"r{i + 1}", workdir / f"r{i + 1}") for i in range(count)]
        self.haproxy_process: subprocess.Popen[bytes] | None = None
        self.lb_pg_port = free_port() if haproxy else 0
        self.lb_http_port = free_port() if haproxy else 0
        self._prepare_databases()
        self._write_settings(drain_timeout)
        self.settings: Settings = load_settings(self.replicas[0].config)

    # -- set-up ---------------------------------------------------------------

    def _prepare_databases(self) -> None:
        server = self.pg_server
        server.psql(f'CREATE DATABASE "{self.database}"')
        server.psql(f'CREATE DATABASE "{self.state_database}"')
        self.admin_password = secrets.token_urlsafe(18)
        read, write, owner = self.roles["read"], self.roles["write"], self.roles["owner"]
        server.psql(
            f"CREATE ROLE {owner} NOLOGIN; CREATE ROLE {read} NOLOGIN; CREATE ROLE {write} NOLOGIN;"
            f"CREATE ROLE {self.admin} LOGIN CREATEROLE PASSWORD '{self.admin_password}';"
            f"GRANT {read}, {write}, {owner} TO {self.admin} WITH ADMIN OPTION;"
            f"GRANT pg_signal_backend TO {self.admin};"
            f'GRANT CONNECT ON DATABASE "{self.database}" TO {read}, {write};'
        )
        server.psql(schema_sql(owner, read, write), self.database)

    def _write_settings(self, drain_timeout: str) -> None:
        secret = self.workdir / "admin.secret"
        secret.write_text(self.admin_password + "\n")
        secret.chmod(0o600)
        lease_key = self.workdir / "lease.key"
        lease_key.write_text(secrets.token_urlsafe(48) + "\n")
        lease_key.chmod(0o600)
        issuer_port = self.lb_http_port or self.replicas[0].http_port
        issuer_url = f"http://127.0.0.1:{issuer_port}/dev-issuer"
        gateway_id = f"sqlgate-test-{self.tag}"
        first_key: Path | None = None
        for replica in self.replicas:
            data = replica.workdir / "data"
            (data / "dev-issuer").mkdir(parents=True)
            if first_key is None:
                DevIssuer.load(data, issuer_url, gateway_id)  # creates the key every replica shares
                first_key = data / "dev-issuer" / "signing-key.pem"
            else:
                shutil.copy2(first_key, data / "dev-issuer" / "signing-key.pem")
            replica.config.write_text(
                f"data_dir: {data}\n"
                f"state: {self.pg_server.dsn(self.state_database)}\n"
                f"listen: {{postgres: '127.0.0.1:{replica.pg_port}', http: '127.0.0.1:{replica.http_port}'}}\n"
                f"identity: {{dev_issuer: true, dev_issuer_url: '{issuer_url}', deployment_id: {gateway_id}}}\n"
                "api: {admin_groups: [sqlgate-admins], auditor_groups: [auditors]}\n"
                f"server: {{replica_name: {replica.name}, drain_timeout: {drain_timeout}, "
                f"lease_key_file: {lease_key}, heartbeat_timeout: 2s}}\n"
                "proxy: {require_tls: false}\n"
                "databases:\n  demo:\n"
                f"    host: {self.pg_server.host}\n    port: {self.pg_server.port}\n    dbname: {self.database}\n"
                f"    admin_user: {self.admin}\n    admin_password_file: {secret}\n"
                f"    owner_role: {self.roles['owner']}\n"
                f"    login_prefix: {self.prefix}\n    tls: disable\n"
                f"    roles: {{read: {self.roles['read']}, write: {self.roles['write']}}}\n"
                f"policy_file: {self.policy_file}\n"
            )

    def start(self) -> Cluster:
        """Start every replica (the first alone, so it migrates the state database), then HAProxy."""
        first, *others = self.replicas
        first.start()
        first.wait_ready()
        for replica in others:
            replica.start()
        for replica in others:
            replica.wait_ready()
        if self.lb_pg_port:
            self._start_haproxy()
        return self

    def _start_haproxy(self) -> None:
        servers_pg = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.pg_port} check port {r.http_port}" for r in self.replicas
        )
        servers_http = "\n".join(f"    server {r.name} 127.0.0.1:{r.http_port} check" for r in self.replicas)
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            "global\n    maxconn 2000\n"
            "defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 60s\n    timeout server 60s\n"
            "    retries 3\n    option redispatch\n"
            "    default-server inter 300ms fall 2 rise 1\n"
            f"frontend pg\n    bind 127.0.0.1:{self.lb_pg_port}\n    default_backend replicas_pg\n"
            "backend replicas_pg\n    balance roundrobin\n    option httpchk GET /readyz\n"
            f"{servers_pg}\n"
            f"frontend http\n    bind 127.0.0.1:{self.lb_http_port}\n    default_backend replicas_http\n"
            "backend replicas_http\n    balance roundrobin\n    option httpchk GET /readyz\n"
            f"{servers_http}\n"
        )
        haproxy = require_haproxy()
        check = subprocess.run([str(haproxy), "-c", "-f", str(config)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        with (self.workdir / "haproxy.log").open("ab") as log:
            self.haproxy_process = subprocess.Popen(
                [str(haproxy), "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.lb_http_port}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError("HAProxy did not pass a request to a ready replica in 20 s")

    # -- use ------------------------------------------------------------------

    def token(self, user: str = "alice", groups: tuple[str, ...] = ("analysts",)) -> str:
        """A dev-issuer token every replica accepts."""
        return mint_dev_token(self.settings, user, list(groups), timedelta(minutes=15))

    def admin_headers(self) -> dict[str, str]:
        """Authorization for the sessions API."""
        return {"Authorization": f"Bearer {self.token('root', ('sqlgate-admins',))}"}

    def lb_conninfo(self, user: str, token: str) -> dict[str, Any]:
        """psycopg.connect arguments through HAProxy."""
        return {"host": "127.0.0.1", "port": self.lb_pg_port, "dbname": "demo", "user": user, "password": token}

    def state(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on the state database."""
        with psycopg.connect(self.pg_server.dsn(self.state_database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def logins(self) -> set[str]:
        """The logins minted for this cluster that exist on the server now."""
        rows = self.pg_server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{self.prefix}_')")
        return set(rows.split())

    def audit_verify(self, replica: Replica) -> subprocess.CompletedProcess[str]:
        """``sqlgate audit verify --json`` with ``replica``'s settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SQLGATE_")}
        return subprocess.run(
            [sys.executable, "-m", "sqlgate", "audit", "verify", "--json", "-c", str(replica.config)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )

    def stop(self) -> None:
        """Stop HAProxy and every replica; drop the databases and roles."""
        if self.haproxy_process is not None:
            self.haproxy_process.terminate()
            self.haproxy_process.wait(10)
        for replica in self.replicas:
            replica.stop()
        server = self.pg_server
        server.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        server.psql(f'DROP DATABASE IF EXISTS "{self.state_database}" WITH (FORCE)')
        for role in [*sorted(self.logins()), self.admin, *self.roles.values()]:
            server.psql(f'DROP ROLE IF EXISTS "{role}"')
