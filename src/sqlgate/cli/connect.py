"""``sqlgate connect DB``: psql through the gateway, with your token as the password."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer

from sqlgate.cli.apiclient import signed_in_token
from sqlgate.cli.common import ConfigOption, fail
from sqlgate.config import load_settings, split_host_port
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


def connect(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    database: Annotated[str, typer.Argument(help="Database alias from the gateway's settings.")],
    psql_args: Annotated[list[str] | None, typer.Argument(help="Extra arguments for psql (after --).")] = None,
    config: ConfigOption = None,
    role: Annotated[str | None, typer.Option("--role", help="Privilege level to ask for (read, write, ...).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Gateway host (default: listen.postgres).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Gateway port (default: listen.postgres).")] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="SQLGATE_TOKEN", help="Token to use (default: your `sqlgate login`)."),
    ] = None,
) -> None:
    """Start psql through the gateway with your token (from `sqlgate login`, --token or $SQLGATE_TOKEN)."""
    settings = load_settings(config)
    if token is None:
        token = signed_in_token(settings)
    default_host, default_port = split_host_port(settings.listen.postgres)
    claims = unverified_claims(token)
    user = role or str(claims.get("sub") or claims.get("preferred_username") or "")
    if not user:
        fail("the token names no subject; pass --role read (or another level) to choose the user")
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
