"""Credential commands: `rotate-admin` rotates a database's admin secret; `creds` is still a placeholder.

`creds` will ask the gateway's HTTP API (``POST /v1/credentials``) for a
short-lived login once that API lands; until then it refuses with exit code 3.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from sqlgate.audit.events import AuditEvent
from sqlgate.broker.backends import create_backend
from sqlgate.broker.rotation import rotate_admin as rotate
from sqlgate.cli.common import ConfigOption, JsonOption, console, not_ready, print_json
from sqlgate.config import DatabaseConfig, load_settings

_LOOSE = {"allow_extra_args": True, "ignore_unknown_options": True}


class _StderrAuditor:
    """Writes each event as one JSON line on stderr (until the command can open the deployment's audit log)."""

    async def record(self, event: AuditEvent) -> None:
        """Write ``event``."""
        sys.stderr.write(json.dumps({"audit": event.model_dump(mode="json")}) + "\n")

    def enqueue(self, event: AuditEvent) -> None:
        """Write ``event``."""
        sys.stderr.write(json.dumps({"audit": event.model_dump(mode="json")}) + "\n")


def creds() -> None:
    """Print a short-lived database login for direct use."""
    not_ready("creds")


def rotate_admin(
    database: Annotated[str, typer.Argument(help="Database alias from the settings file.", show_default=False)],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Set a new random admin password, prove it works, then save it to admin_password_file (mode 0600)."""
    settings = load_settings(config)
    target = settings.database(database)
    rotated_at = asyncio.run(_rotate(database, target))
    result = {
        "database": database,
        "admin_user": target.admin_user,
        "secret_file": str(target.admin_password_file),
        "rotated_at": rotated_at.isoformat(),
    }
    if json_output:
        print_json(result)
    else:
        console.print(
            f"rotated the admin password of [bold]{database}[/bold] ({target.admin_user}); "
            f"the new secret is in {target.admin_password_file}",
            highlight=False,
        )


async def _rotate(alias: str, target: DatabaseConfig) -> datetime:
    backend = create_backend(target)
    try:
        return await rotate(alias, target, backend, _StderrAuditor())
    finally:
        await backend.close()


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("creds", context_settings=_LOOSE)(creds)
    app.command("rotate-admin")(rotate_admin)
