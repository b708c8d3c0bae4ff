"""Access-request commands over the gateway's API: `request`, `requests`, `approve`, `deny`."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from sqlgate.cli.apiclient import ApiClient, GatewayOption, TokenOption
from sqlgate.cli.common import ConfigOption, JsonOption, console, print_json

Id = Annotated[str, typer.Argument(help="The request's id (from `sqlgate requests`).", show_default=False)]


def request(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    database: Annotated[str, typer.Argument(help="Database alias.", show_default=False)],
    role: Annotated[str, typer.Option("--role", help="The privilege level to ask for (e.g. write).")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the approvers.")],
    duration: Annotated[
        str | None, typer.Option("--duration", help="How long, e.g. 1h (capped by policy).", show_default=False)
    ] = None,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """File an access request for a role that policy grants after approval."""
    body = {"database": database, "role": role, "reason": reason, "duration": duration}
    created = ApiClient(config, gateway, token).call("POST", "/v1/requests", json=body)
    if json_output:
        print_json(created)
        return
    console.print(
        f"request [bold]{escape(created['id'])}[/bold] filed: role {escape(created['role'])} on "
        f"{escape(created['database'])} for {created['duration']}, {created['status']} "
        f"({created['min_approvals']} approval(s) needed; rule {escape(created['rule'])})",
        highlight=False,
    )


def requests(
    status: Annotated[
        str | None, typer.Option("--status", help="Only pending, approved, denied or expired.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your access requests and those you may approve, newest first."""
    params = {"status": status} if status else None
    found = ApiClient(config, gateway, token).call("GET", "/v1/requests", params=params)["requests"]
    if json_output:
        print_json(found)
        return
    if not found:
        console.print("no access requests")
        return
    table = Table()
    for name in ("id", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("requester", "database", "role", "duration", "reason"):
        table.add_column(name)
    for item in found:
        table.add_row(
            item["id"],
            _status(item),
            item["requester"]["name"],
            item["database"],
            item["role"],
            item["duration"],
            item["reason"],
        )
    console.print(table)


def _status(item: dict[str, Any]) -> str:
    if item["status"] == "pending":
        return f"pending ({item['approvals']}/{item['min_approvals']})"
    if item["status"] == "approved" and item.get("expires_at"):
        return f"approved until {item['expires_at']}"
    return str(item["status"])


def approve(
    request_id: Id,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve an access request (as an approver of its rule)."""
    result = ApiClient(config, gateway, token).call("POST", f"/v1/requests/{quote(request_id, safe='')}/approve")
    _decided(result, json_output)


def deny(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    request_id: Id,
    reason: Annotated[str, typer.Option("--reason", help="Why, shown to the requester.")],
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Deny an access request, with a reason."""
    result = ApiClient(config, gateway, token).call(
        "POST", f"/v1/requests/{quote(request_id, safe='')}/deny", json={"reason": reason}
    )
    _decided(result, json_output)


def _decided(result: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(result)
        return
    console.print(f"request [bold]{escape(result['id'])}[/bold]: {escape(_status(result))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the command line."""
    app.command("request")(request)
    app.command("requests")(requests)
    app.command("approve")(approve)
    app.command("deny")(deny)
