"""The ``sqlgate`` command line: thin Typer commands over the packages.

Each command group lives in its own module and registers itself on :data:`app`.
Exit codes: 0 success, 1 an error the message explains, 2 bad usage,
3 a feature that has not landed yet.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from sqlgate.cli import audit, broker, config_cmd, connect, doctor, identity, policy, up
from sqlgate.cli.common import app, cli_command, err_console, exit_code_for
from sqlgate.errors import SqlgateError

for _module in (config_cmd, up, identity, connect, broker, policy, audit, doctor):
    _module.register(app)


def main() -> None:
    """Entry point of the ``sqlgate`` console script; errors print a message, never a traceback."""
    try:
        cli_command()(prog_name="sqlgate")
    except SqlgateError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(exit_code_for(exc))


__all__ = ["app", "cli_command", "main"]
