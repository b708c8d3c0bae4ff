"""Shared pieces of the command line: the app, options, output and error handling."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from sqlgate import __version__
from sqlgate.errors import NotReady, SqlgateError

EXIT_ERROR = 1
EXIT_NOT_READY = 3

console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"sqlgate {__version__}")
        raise typer.Exit


app = typer.Typer(
    name="sqlgate",
    help="Identity-aware gateway for SQL databases: tokens in, short-lived database logins out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Identity-aware gateway for SQL databases."""


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Settings file (default: $SQLGATE_CONFIG, else ./sqlgate.yaml).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of text.")]


def fail(message: str, *, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def exit_code_for(exc: SqlgateError) -> int:
    """The process exit code for an error that reached the command line."""
    return EXIT_NOT_READY if isinstance(exc, NotReady) else EXIT_ERROR


def print_json(value: Any) -> None:
    """Write ``value`` as JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
