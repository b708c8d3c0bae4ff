"""Credential commands: `creds` for a short-lived login, `rotate-admin` for the admin secret.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}


def creds() -> None:
    """Print a short-lived database login for direct use."""
    not_ready("creds")


def rotate_admin() -> None:
    """Rotate the admin secret of a database."""
    not_ready("rotate-admin")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("creds", context_settings=_LOOSE)(creds)
    app.command("rotate-admin", context_settings=_LOOSE)(rotate_admin)
