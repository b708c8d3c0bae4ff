"""Run the gateway: `up` for the embedded demo, `serve` for deployments."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sqlgate.cli.common import ConfigOption, console
from sqlgate.config import Settings, find_config, load_settings
from sqlgate.logs import configure_logging

InsecureDev = Annotated[
    bool,
    typer.Option("--insecure-dev", help="Allow the dev issuer on a non-loopback HTTP listener (never in production)."),
]


def _run(coroutine: object) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows

        uvloop.run(coroutine)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coroutine)  # type: ignore[arg-type]


def _logging(settings: Settings) -> None:
    configure_logging(settings)  # text, or JSON lines with log.format: json


def serve(config: ConfigOption = None, insecure_dev: InsecureDev = False) -> None:
    """Run the gateway from a settings file (-c or $SQLGATE_CONFIG) until Ctrl-C or SIGTERM."""
    from sqlgate.server.run import Gateway, serve_until_stopped  # noqa: PLC0415 - keeps --help fast

    settings = load_settings(config)
    _logging(settings)

    def ready(gateway: Gateway) -> None:
        console.print(
            f"sqlgate serving: postgres {gateway.pg.host}:{gateway.pg.port}, "
            f"http {settings.listen.http} (Ctrl-C stops)",
            highlight=False,
        )

    if settings.server.workers > 1:
        from sqlgate.server.workers import serve_workers  # noqa: PLC0415

        def run_one(own: Settings, worker_ready: Callable[[Gateway], None]) -> None:
            _run(serve_until_stopped(own, insecure_dev=insecure_dev, ready=worker_ready))

        def all_ready() -> None:
            console.print(
                f"sqlgate serving: postgres {settings.listen.postgres}, http {settings.listen.http}, "
                f"{settings.server.workers} workers (Ctrl-C stops)",
                highlight=False,
            )

        raise typer.Exit(serve_workers(settings, run_one, ready=all_ready))
    _run(serve_until_stopped(settings, insecure_dev=insecure_dev, ready=ready))


def up(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo keeps its database, keys and files.")
    ] = Path(".sqlgate"),
    pg_port: Annotated[int, typer.Option("--pg-port", help="Port of the gateway's PostgreSQL listener.")] = 6543,
    http_port: Annotated[int, typer.Option("--http-port", help="Port of the gateway's HTTP API.")] = 8480,
    mysql: Annotated[
        bool,
        typer.Option(
            "--mysql",
            help="Also a MySQL demo database (demo_mysql) on the MariaDB at 127.0.0.1:3306 (root, no password), "
            "served by the MySQL listener; skipped with a message when no MariaDB answers.",
        ),
    ] = False,
    mysql_port: Annotated[int, typer.Option("--mysql-port", help="Port of the gateway's MySQL listener.")] = 6033,
) -> None:
    """Start the embedded demo: PostgreSQL with sample data, the dev issuer and the gateway on 127.0.0.1."""
    from sqlgate.server.demo import DemoPaths, start_demo_database, write_demo_files  # noqa: PLC0415
    from sqlgate.server.run import Gateway, serve_until_stopped  # noqa: PLC0415

    paths = DemoPaths(data_dir.resolve())
    mysql_database = _mysql_demo(paths.data_dir) if mysql else ""
    with console.status("starting the embedded PostgreSQL and loading the demo data..."):
        server = start_demo_database(paths)
    try:
        write_demo_files(
            paths,
            server,
            postgres=f"127.0.0.1:{pg_port}",
            http=f"127.0.0.1:{http_port}",
            mysql=(f"127.0.0.1:{mysql_port}", mysql_database) if mysql_database else None,
        )
        settings = load_settings(paths.config)
        _logging(settings)
        if mysql_database and "demo_mysql" not in paths.policy.read_text():
            console.print(
                f"note: {paths.policy} names no rule for demo_mysql (it predates --mysql): "
                "add demo_mysql to a rule's databases to use it.",
                highlight=False,
            )

        def ready(gateway: Gateway) -> None:
            _banner(paths.config, gateway)

        _run(serve_until_stopped(settings, ready=ready))
    finally:
        with console.status("stopping the embedded PostgreSQL..."):
            server.stop()
        console.print("sqlgate stopped; nothing is left running.", highlight=False)


def _mysql_demo(data_dir: Path) -> str:
    """The demo_mysql settings entry, after making its database on the local MariaDB; "" when none answers."""
    from sqlgate.server.demo_mysql import (  # noqa: PLC0415
        DEFAULT_HOST,
        DEFAULT_PORT,
        mariadb_answers,
        mysql_database_yaml,
        prepare_mysql_demo,
    )

    data_dir.mkdir(parents=True, exist_ok=True)
    why = asyncio.run(mariadb_answers(DEFAULT_HOST, DEFAULT_PORT))
    if why is not None:
        console.print(
            f"--mysql skipped: no MariaDB/MySQL lets root in without a password at {DEFAULT_HOST}:{DEFAULT_PORT} "
            f"({why}); the PostgreSQL demo starts alone.",
            highlight=False,
            soft_wrap=True,
        )
        return ""
    with console.status("creating the MySQL demo database on the local MariaDB..."):
        demo = asyncio.run(prepare_mysql_demo(data_dir, DEFAULT_HOST, DEFAULT_PORT))
    return mysql_database_yaml(demo)


def _banner(config: Path, gateway: Gateway) -> None:  # type: ignore[name-defined] # noqa: F821
    found = find_config().path  # what commands typed in this folder will find by themselves
    same = found is not None and found.resolve() == config.resolve()
    option = "" if same else f"-c {shlex.quote(str(config))} "
    token = f"sqlgate token {option}--user alice --group analysts"
    console.print(
        "\n[bold green]sqlgate is up[/bold green] (embedded PostgreSQL, dev issuer, gateway)\n\n"
        f"  a token for alice (group analysts):\n    {token}\n\n"
        "  psql through the gateway (the token is the password):\n"
        f'    PGPASSWORD="$({token})" psql "host=127.0.0.1 port={gateway.pg.port} dbname=demo user=alice"\n\n'
        f"{_mysql_banner(token, gateway)}"
        f"  HTTP API: http://127.0.0.1:{gateway.http_port}/docs    settings: {config}\n\n"
        "Ctrl-C stops everything.",
        highlight=False,
        soft_wrap=True,  # the lines are meant to be copied whole
    )


def _mysql_banner(token: str, gateway: Gateway) -> str:  # type: ignore[name-defined] # noqa: F821
    if gateway.mysql is None:
        return ""
    return (
        "  mysql through the gateway (the token is the clear-text password; plaintext from loopback only):\n"
        f'    MYSQL_PWD="$({token})" mysql --enable-cleartext-plugin -h 127.0.0.1 -P {gateway.mysql.port} '
        "-u alice demo_mysql\n\n"
    )


def register(app: typer.Typer) -> None:
    """Add `up` and `serve` to the command line."""
    app.command("up")(up)
    app.command("serve")(serve)
