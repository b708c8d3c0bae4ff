"""Credential commands: `rotate-admin` rotates a database's admin secret; `creds` prints a short-lived login.

`creds` asks the gateway's HTTP API (``POST /v1/credentials``) for a login of the
database itself, decided by policy for the caller's token (see
:mod:`sqlgate.cli.apiclient` for the gateway URL and token). A grant that carries
masks or guardrails is refused unless its rule says ``direct_login: true``: the
command prints the gateway's reason, the rule and what to do instead, and exits 1.
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
from sqlgate.cli.apiclient import ApiClient, GatewayOption, TokenOption
from sqlgate.cli.common import ConfigOption, JsonOption, console, print_json
from sqlgate.config import DatabaseConfig, load_settings


class _StderrAuditor:
    """Writes each event as one JSON line on stderr (until the command can open the deployment's audit log)."""

    async def record(self, event: AuditEvent) -> None:
        """Write ``event``."""
        sys.stderr.write(json.dumps({"audit": event.model_dump(mode="json")}) + "\n")

    def enqueue(self, event: AuditEvent) -> None:
        """Write ``event``."""
        sys.stderr.write(json.dumps({"audit": event.model_dump(mode="json")}) + "\n")


def creds(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    database: Annotated[str, typer.Argument(help="Database alias.", show_default=False)],
    role: Annotated[
        str | None,
        typer.Option("--role", help="Privilege level (default: the best policy grants).", show_default=False),
    ] = None,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="Lifetime, e.g. 15m (capped by policy).", show_default=False)
    ] = None,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print a short-lived database login for direct use (policy decides; it expires by itself)."""
    body = {"database": database, "role": role, "ttl": ttl}
    issued = ApiClient(config, gateway, token).call("POST", "/v1/credentials", json=body)
    if json_output:
        print_json(issued)
        return
    for key in ("host", "port", "dbname", "user", "password", "expires_at"):
        console.print(f"{key + ':':<12}{issued[key]}", highlight=False, markup=False)
    console.print(f"{'dsn:':<12}{issued['dsn']}", highlight=False, markup=False, soft_wrap=True)


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
    app.command("creds")(creds)
    app.command("rotate-admin")(rotate_admin)
