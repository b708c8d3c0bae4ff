"""``sqlgate audit``: verify, tail, search and export the audit log.

Placeholder: the feature behind these commands has not landed yet; each
command says so and exits with code 3.
"""

from __future__ import annotations

import typer

from sqlgate.cli.common import not_ready

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}

audit_app = typer.Typer(help="Verify, tail, search and export the audit log.", no_args_is_help=True)


@audit_app.command("verify", context_settings=_LOOSE)
def audit_verify() -> None:
    """Verify the audit chain and signed checkpoints."""
    not_ready("audit verify")


@audit_app.command("tail", context_settings=_LOOSE)
def audit_tail() -> None:
    """Show the newest audit records."""
    not_ready("audit tail")


@audit_app.command("search", context_settings=_LOOSE)
def audit_search() -> None:
    """Search audit records."""
    not_ready("audit search")


@audit_app.command("export", context_settings=_LOOSE)
def audit_export() -> None:
    """Export the audit log as JSONL."""
    not_ready("audit export")


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.add_typer(audit_app, name="audit")
