"""Shared pieces of the command line: the app, options, output and error handling."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.main
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
        "--config",
        "-c",
        help="Settings file (default: $SQLGATE_CONFIG, else ./sqlgate.yaml, else .sqlgate/sqlgate.yaml upward).",
        show_default=False,
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


def _say_which_settings(value: bool) -> None:
    """``--verbose``: report on stderr which settings file a command used, or every path it looked at."""
    if not value:
        return
    logger = logging.getLogger("sqlgate.config")
    if not any(getattr(h, "sqlgate_verbose", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("sqlgate: %(message)s"))
        handler.sqlgate_verbose = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        expose_value=False,
        is_eager=True,
        callback=_say_which_settings,
        help="Say which settings file is used (or every path looked at).",
    ),
]


def _verbose_param() -> Any:
    """The ``--verbose`` option as Typer builds it, to be added to every command."""
    probe = typer.Typer()

    @probe.command()
    def _probe(verbose: VerboseOption = False) -> None:
        """Only here to build the option."""

    return typer.main.get_command(probe).params[0]


def _add_verbose(command: Any, option: Any) -> None:
    if not any(param.name == "verbose" for param in command.params):
        command.params.append(option)
    for sub in getattr(command, "commands", {}).values():
        _add_verbose(sub, option)


def cli_command() -> Any:
    """The whole command line as a Click command, with ``--verbose`` on every command."""
    command = typer.main.get_command(app)
    _add_verbose(command, _verbose_param())
    return command
