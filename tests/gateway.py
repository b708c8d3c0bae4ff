"""A real gateway for end-to-end tests: the demo schema on the test server, ``start_gateway`` in a thread.

The gateway runs on its own event loop in a background thread, so tests can use
blocking clients (psql, pgbench, psycopg) as well as async ones against it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from sqlgate.config import load_settings
from sqlgate.identity.devissuer import mint_dev_token
from sqlgate.server.demo import schema_sql
from sqlgate.server.run import Gateway, start_gateway
from tests.pgserver import PgServer

T = TypeVar("T")

DEMO_POLICY = """\
rules:
  - name: analysts-read
    who: {groups: [analysts]}
    databases: [demo]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: engineers-read
    who: {groups: [engineers]}
    databases: [demo]
    role: read
    max_ttl: 1h
  - name: writers
    who: {groups: [writers]}
    databases: [demo]
    role: write
    max_ttl: 1h
  - name: oncall-write-with-approval
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    approval: {required: true, approvers: {groups: [dba]}, max_duration: 2h}
"""


class RunningGateway:
    """A gateway serving the demo database; ``token()`` mints dev-issuer tokens for it."""

    def __init__(self, pg_server: PgServer, workdir: Path, policy: str, database: str, tag: str) -> None:
        self.pg_server = pg_server
        self.workdir = workdir
        self.database = database
        self.tag = tag
        self.roles = {"read": f"read_{tag}", "write": f"write_{tag}", "owner": f"owner_{tag}"}
        self.admin = f"admin_{tag}"
        self._prepare_database(policy)
        self.settings = load_settings(workdir / "sqlgate.yaml")
        self._start(start_gateway(self.settings))

    def _start(self, starting: Coroutine[Any, Any, Gateway]) -> None:
        """Run ``starting`` on a new loop in a background thread, watching the loop and the log for errors."""
        self.loop = uvloop.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(self._on_loop_error)
        self._logged = _ErrorRecords()
        logging.getLogger("sqlgate").addHandler(self._logged)
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-gateway", daemon=True)
        self._thread.start()
        try:
            self.gateway: Gateway = self.call(starting)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            logging.getLogger("sqlgate").removeHandler(self._logged)
            raise
        self.pg_port = self.gateway.pg.port
        self.http_url = f"http://127.0.0.1:{self.gateway.http_port}"

    def _prepare_database(self, policy: str) -> None:
        password = secrets.token_urlsafe(18)
        read, write, owner = self.roles["read"], self.roles["write"], self.roles["owner"]
        self.pg_server.psql(
            f"CREATE ROLE {owner} NOLOGIN; CREATE ROLE {read} NOLOGIN; CREATE ROLE {write} NOLOGIN;"
            f"CREATE ROLE {self.admin} LOGIN CREATEROLE PASSWORD '{password}';"
            f"GRANT {read}, {write}, {owner} TO {self.admin} WITH ADMIN OPTION;"
            f"GRANT pg_signal_backend TO {self.admin};"
            f'GRANT CONNECT ON DATABASE "{self.database}" TO {read}, {write};'
        )
        self.pg_server.psql(schema_sql(owner, read, write), self.database)
        secret = self.workdir / "admin.secret"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        (self.workdir / "policy.yaml").write_text(policy)
        (self.workdir / "sqlgate.yaml").write_text(
            f"data_dir: {self.workdir / 'data'}\n"
            "listen: {postgres: '127.0.0.1:0', http: '127.0.0.1:0'}\n"
            "identity: {dev_issuer: true}\n"
            "api: {admin_groups: [sqlgate-admins], auditor_groups: [auditors]}\n"
            "databases:\n  demo:\n"
            f"    host: {self.pg_server.host}\n    port: {self.pg_server.port}\n    dbname: {self.database}\n"
            f"    admin_user: {self.admin}\n    admin_password_file: {secret}\n    owner_role: {owner}\n"
            f"    login_prefix: g{self.tag}\n    tls: disable\n"
            f"    roles: {{read: {read}, write: {write}}}\n"
            f"policy_file: {self.workdir / 'policy.yaml'}\n"
        )

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Anything the gateway's loop did not handle (an exception in a callback, a task nobody awaited)."""
        self.loop_errors.append(context)
        loop.default_exception_handler(context)

    def assert_no_loop_errors(self) -> None:
        """Fail when the gateway's event loop met an exception nothing handled, or logged an unexpected failure."""
        errors, self.loop_errors = self.loop_errors, []
        assert not errors, [f"{e.get('message')}: {e.get('exception')!r}" for e in errors]
        logged, self._logged.records = self._logged.records, []
        assert not logged, [f"{r.name}: {r.getMessage()} {r.exc_info[1] if r.exc_info else ''}" for r in logged]

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coroutine`` on the gateway's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def token(self, user: str = "alice", groups: tuple[str, ...] = ("analysts",), ttl: str = "15m") -> str:
        """A dev-issuer token this gateway accepts."""
        minutes = int(ttl.removesuffix("m")) if ttl.endswith("m") else None
        seconds = int(ttl.removesuffix("s")) if ttl.endswith("s") else None
        life = timedelta(minutes=minutes) if minutes is not None else timedelta(seconds=seconds or 900)
        return mint_dev_token(self.settings, user, list(groups), life)

    def conninfo(self, user: str, token: str, **extra: str) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect through the gateway."""
        return {
            "host": "127.0.0.1",
            "port": self.pg_port,
            "dbname": "demo",
            "user": user,
            "password": token,
            "sslmode": "disable",
            **extra,
        }

    def stop(self) -> None:
        """Stop the gateway, its loop and thread; drop the test roles."""
        try:
            self.call(self.gateway.stop())
            self.call(asyncio.sleep(_SETTLE))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            _close_loop(self.loop)
        prefix = f"g{self.tag}_"
        logins = self.pg_server.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{prefix}')").split()
        for role in [*logins, self.admin, *self.roles.values()]:
            self.pg_server.psql(f'DROP OWNED BY "{role}"', self.database)
            self.pg_server.psql(f'DROP ROLE IF EXISTS "{role}"')
        logging.getLogger("sqlgate").removeHandler(self._logged)
        self.assert_no_loop_errors()


# Now and then uvloop's loop.close() in this harness waited in epoll, or failed with EBUSY. The
# cause: a session that ended just before the gateway stopped handed its server connection back
# to the pool, whose reset task nobody owned, so the connection outlived the gateway. The pool now
# owns those tasks and closes them (UpstreamPool.aclose). The short pause and the bounded close
# stay as a guard: a handle left open again shows up as an error here, not as a hung suite.
_SETTLE = 0.5
_CLOSE_TIMEOUT = 10.0


class _ErrorRecords(logging.Handler):
    """The gateway's log records of level ERROR and above (an exception it caught but did not expect)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    closer = threading.Thread(target=loop.close, name="test-gateway-close", daemon=True)
    closer.start()
    closer.join(_CLOSE_TIMEOUT)
