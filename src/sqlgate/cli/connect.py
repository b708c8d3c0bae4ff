"""``sqlgate connect DB``: psql through the gateway with your token.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}


def connect() -> None:
    """Start psql through the gateway with your token."""
    not_ready("connect")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("connect", context_settings=_LOOSE)(connect)
