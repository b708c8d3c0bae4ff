"""``sqlgate connect DB``: psql (or mysql, for a MySQL database) through the gateway, your token as the password."""

from __future__ import annotations

import os
import shutil
from enum import StrEnum
from typing import Annotated

import typer

from sqlgate.cli.apiclient import signed_in_token
from sqlgate.cli.common import ConfigOption, fail
from sqlgate.config import Settings, is_loopback, load_settings, split_host_port
from sqlgate.embedded import BIN
from sqlgate.identity.client import unverified_claims


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    bundled = BIN / "psql"
    if bundled.exists():
        return str(bundled)
    fail("psql was not found; install the PostgreSQL client (apt-get install postgresql-client)")
    return ""  # unreachable: fail() exits


def _mysql() -> str:
    found = shutil.which("mysql") or shutil.which("mariadb")
    if found:
        return found
    fail("mysql was not found; install the MySQL or MariaDB client (apt-get install mariadb-client)")
    return ""  # unreachable: fail() exits


def _mysql_argv(settings: Settings, database: str, user: str, host: str | None, port: int | None) -> list[str]:
    """The mysql command line for a MySQL database: clear-text plugin (the token), TLS unless on loopback."""
    if settings.listen.mysql is None and (host is None or port is None):
        fail(f"{database} is a MySQL database, and listen.mysql is not set; pass --host and --port of the listener")
    default_host, default_port = split_host_port(settings.listen.mysql or "127.0.0.1:6033")
    where = host or default_host
    argv = [_mysql(), f"--host={where}", f"--port={port or default_port}", f"--user={user}"]
    argv.append("--enable-cleartext-plugin")
    if not is_loopback(where):
        argv.append("--ssl")
    return [*argv, f"--database={database}"]


class Client(StrEnum):
    """Which client ``sqlgate connect`` starts."""

    AUTO = "auto"
    PSQL = "psql"
    MYSQL = "mysql"


def connect(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    database: Annotated[str, typer.Argument(help="Database alias from the gateway's settings.")],
    psql_args: Annotated[list[str] | None, typer.Argument(help="Extra arguments for psql or mysql (after --).")] = None,
    config: ConfigOption = None,
    role: Annotated[str | None, typer.Option("--role", help="Privilege level to ask for (read, write, ...).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Gateway host (default: listen.postgres/mysql).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Gateway port (default: listen.postgres/mysql).")] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="SQLGATE_TOKEN", help="Token to use (default: your `sqlgate login`)."),
    ] = None,
    client: Annotated[
        Client,
        typer.Option(
            "--client",
            help="psql or mysql; auto: mysql for an engine mysql database, else psql "
            "(a Cloud SQL for MySQL instance needs --client mysql).",
        ),
    ] = Client.AUTO,
) -> None:
    """Start psql (mysql for a MySQL database) through the gateway with your token (`sqlgate login`, --token)."""
    settings = load_settings(config)
    if token is None:
        token = signed_in_token(settings)
    default_host, default_port = split_host_port(settings.listen.postgres)
    claims = unverified_claims(token)
    user = role or str(claims.get("sub") or claims.get("preferred_username") or "")
    if not user:
        fail("the token names no subject; pass --role read (or another level) to choose the user")
    configured = settings.databases.get(database)
    if client is Client.MYSQL or (client is Client.AUTO and configured is not None and configured.engine == "mysql"):
        argv = [*_mysql_argv(settings, database, user, host, port), *(psql_args or [])]
        os.execvpe(argv[0], argv, {**os.environ, "MYSQL_PWD": token})  # noqa: S606 - the terminal becomes mysql's
    env = {**os.environ, "PGPASSWORD": token}
    argv = [
        _psql(),
        f"host={host or default_host} port={port or default_port} dbname={database} user={user}",
        *(psql_args or []),
    ]
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replaces this process with psql, so the terminal is psql's


def register(app: typer.Typer) -> None:
    """Add `connect` to the command line."""
    app.command("connect")(connect)
