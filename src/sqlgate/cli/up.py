"""Run the gateway: `up` for the embedded demo, `serve` for deployments.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}


def up() -> None:
    """Start the embedded demo: PostgreSQL, dev issuer and gateway on 127.0.0.1."""
    not_ready("up")


def serve() -> None:
    """Run the gateway from a settings file (-c or $SQLGATE_CONFIG)."""
    not_ready("serve")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("up", context_settings=_LOOSE)(up)
    app.command("serve", context_settings=_LOOSE)(serve)
