"""Access-request commands over the gateway's API: `request`, `requests`, `approve`, `deny`.

The rules (a reason the rule may require, a duration no longer than its cap) are the
gateway's: the commands send what was typed and print the gateway's answer, which names
the rule. `sqlgate requests` shows approvers what approving now would grant.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from sqlgate.cli.apiclient import ApiClient, GatewayOption, TokenOption
from sqlgate.cli.common import ConfigOption, JsonOption, console, print_json
from sqlgate.config import format_duration, parse_duration

Id = Annotated[str, typer.Argument(help="The request's id (from `sqlgate requests`).", show_default=False)]


def request(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    database: Annotated[str, typer.Argument(help="Database alias.", show_default=False)],
    role: Annotated[str, typer.Option("--role", help="The privilege level to ask for (e.g. write).")],
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why, for the approvers (required unless the rule says require_reason: false)."),
    ] = "",
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="How long, e.g. 30m or 2h; at most the rule's limit (its limit when absent).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """File an access request for a role that policy grants after approval."""
    if duration is not None:
        try:
            duration = format_duration(parse_duration(duration))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--duration") from None
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


def requests(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    request_id: Annotated[
        str | None,
        typer.Argument(help="Show this request in full, with what approving it now would grant.", show_default=False),
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Only pending, approved, denied or expired.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """List your access requests and those you may approve, newest first (approvers see what approving grants)."""
    client = ApiClient(config, gateway, token)
    if request_id is not None:
        _show(client.call("GET", f"/v1/requests/{quote(request_id, safe='')}"), json_output)
        return
    params = {"status": status} if status else None
    found = client.call("GET", "/v1/requests", params=params)["requests"]
    if json_output:
        print_json(found)
        return
    if not found:
        console.print("no access requests")
        return
    table = Table()
    for name in ("id", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("requester", "database", "role", "duration", "reason", "if you approve now"):
        table.add_column(name)
    for item in found:
        table.add_row(
            item["id"],
            _status(item),
            escape(item["requester"]["name"]),
            item["database"],
            item["role"],
            item["duration"],
            escape(item["reason"]),
            escape(_if_approved(item.get("preview"))),
        )
    console.print(table)


def _if_approved(preview: dict[str, Any] | None) -> str:
    """One cell: what approving now grants, or why you may not."""
    if preview is None:
        return ""
    if not preview["may_approve"]:
        return f"you may not: {preview['why_not']}"
    more = "" if preview["completes"] else f" (approval {preview['approvals'] + 1} of {preview['min_approvals']})"
    return f"{preview['role']} on {preview['database']} for {preview['duration']}, until {preview['expires_at']}{more}"


def _show(item: dict[str, Any], json_output: bool) -> None:
    if json_output:
        print_json(item)
        return
    lines = [
        f"request {item['id']}: {_status(item)}",
        f"requester: {item['requester']['name']} ({item['requester']['subject']})",
        f"asks for: role {item['role']} on {item['database']} for {item['duration']} (rule {item['rule']})",
        f"reason: {item['reason'] or '(none)'}",
        f"filed: {item['created_at']}",
    ]
    if item.get("decided_by"):
        lines.append(f"decided by: {item['decided_by']} at {item['decided_at']}")
    if item.get("decision_reason"):
        lines.append(f"decision: {item['decision_reason']}")
    preview = item.get("preview")
    if preview is not None:
        lines.append(f"if you approve now: {_if_approved(preview)}")
        if preview.get("pending_until"):
            lines.append(f"expires undecided at: {preview['pending_until']}")
        if preview.get("guardrails"):
            lines.append(f"guardrails: deny {', '.join(preview['guardrails'].get('deny') or []) or 'nothing'}")
        if preview.get("mask"):
            lines.append(f"masked: {', '.join(f'{k} ({v})' for k, v in preview['mask'].items())}")
    for line in lines:
        console.print(escape(line), highlight=False)


def _status(item: dict[str, Any]) -> str:
    if item["status"] == "pending":
        return f"pending ({item['approvals']}/{item['min_approvals']})"
    if item["status"] == "approved" and item.get("expires_at"):
        return f"approved until {item['expires_at']}"
    return str(item["status"])


def approve(  # noqa: PLR0913, PLR0917 - one Typer option per parameter
    request_id: Id,
    comment: Annotated[
        str, typer.Option("--comment", help="Optional; kept in the audit log and shown to the requester.")
    ] = "",
    config: ConfigOption = None,
    gateway: GatewayOption = None,
    token: TokenOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve an access request (as an approver of its rule), with an optional comment."""
    result = ApiClient(config, gateway, token).call(
        "POST", f"/v1/requests/{quote(request_id, safe='')}/approve", json={"comment": comment}
    )
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
