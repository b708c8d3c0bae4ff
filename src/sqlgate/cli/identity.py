"""Identity commands: `token` prints a token, `login` signs a person in.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}


def token() -> None:
    """Print an identity token (dev issuer, or the cached login)."""
    not_ready("token")


def login() -> None:
    """Sign in with your identity provider (device flow or browser)."""
    not_ready("login")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("token", context_settings=_LOOSE)(token)
    app.command("login", context_settings=_LOOSE)(login)
