"""My access (``/ui``) and access requests (``/ui/requests``): what policy gives me, asking for more, deciding.

Every answer comes from the services the JSON API calls: the databases and connection lines
of ``GET /v1/databases`` (:func:`sqlgate.api.routes.access.reachable_databases`), the policy
engine's decision for each role, and :class:`~sqlgate.policy.requests.RequestService` for
filing, listing, previewing, approving and denying (each step audited by the service, made
durable before the page answers, as the API does). Whether Approve and Deny are offered is
the service's own preview (``may_approve``): a requester never sees them on a request of theirs.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Query, Request, Response

from sqlgate.api.routes.access import reachable_databases
from sqlgate.api.routes.requests import _may_see as may_see  # the API's own visibility rule
from sqlgate.config import format_duration, parse_duration
from sqlgate.console.web import PREFIX, ConsoleRoute, checked_form, console_of, flash, redirect, render, signed_in
from sqlgate.errors import SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.policy.approvals import RequestPreview
from sqlgate.policy.request_rows import AccessRequest

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

RequestId = Annotated[str, Path(min_length=1, max_length=64)]


@dataclass
class RoleRow:
    """One role on one database as policy answers for me now."""

    role: str
    outcome: str  # allow | needs_approval
    ttl: str | None
    rules: list[str]
    reason: str | None
    connect: str | None = None  # `sqlgate connect` for a role other than the default one


@dataclass
class DatabaseCard:
    """A database I may use (or ask for), with ready-to-copy connection lines."""

    name: str
    engine: str
    default_role: str | None
    lines: list[tuple[str, str]] = field(default_factory=list)  # (label, line)
    roles: list[RoleRow] = field(default_factory=list)

    @property
    def requestable(self) -> list[str]:
        """Roles that need an approval first."""
        return [row.role for row in self.roles if row.outcome == "needs_approval"]


async def my_databases(request: Request, principal: Principal) -> list[DatabaseCard]:
    """Each database policy lets ``principal`` use now or after approval, role by role."""
    console = console_of(request)
    api = console.api
    cards = []
    for entry in await reachable_databases(api, principal, request.url.hostname):
        card = DatabaseCard(entry.name, entry.engine, entry.role if entry.access == "allow" else None)
        if entry.connect is not None:
            psql = entry.connect.psql.split("  # ", 1)[0]
            user = quote(principal.name, safe="")
            dsn = f"postgresql://{user}@{entry.connect.host}:{entry.connect.port}/{quote(entry.name, safe='')}"
            card.lines = [("psql", psql), ("DSN", dsn), ("sqlgate", f"sqlgate connect {shlex.quote(entry.name)}")]
        config = console.services.settings.databases[entry.name]
        for role in config.roles:
            decision = await api.engine.decide(principal, entry.name, role)
            if decision.outcome == "deny":
                continue
            ttl = format_duration(decision.ttl) if decision.ttl is not None else None
            row = RoleRow(role, decision.outcome, ttl, list(decision.matched_rules), decision.reason)
            if decision.allowed and role != card.default_role and entry.connect is not None:
                row.connect = f"sqlgate connect {shlex.quote(entry.name)} --role {shlex.quote(role)}"
            card.roles.append(row)
        cards.append(card)
    return cards


@router.get("")
async def my_access(request: Request) -> Response:
    """Each database I may use, the role, the time limit and why, with connection lines and Request access."""
    _session, principal = await signed_in(request)
    cards = await my_databases(request, principal)
    return await render(request, "access.html", title="My access", cards=cards, request_link=request_link)


@router.get("/requests/new")
async def request_form(
    request: Request,
    database: Annotated[str, Query(min_length=1, max_length=63)],
    role: Annotated[str | None, Query(max_length=63)] = None,
) -> Response:
    """The Request access form: Role, Duration, Reason."""
    _session, principal = await signed_in(request)
    return await _request_form(request, principal, database, role)


async def _request_form(  # noqa: PLR0913 - the form's fields, echoed back after a refusal
    request: Request,
    principal: Principal,
    database: str,
    role: str | None,
    *,
    status: int = 200,
    error: str | None = None,
    duration: str = "",
    reason: str = "",
) -> Response:
    console = console_of(request)
    console.api.engine.database(database)
    roles = []
    for name in console.services.settings.databases[database].roles:
        decision = await console.api.engine.decide(principal, database, name)
        if decision.outcome == "needs_approval":
            roles.append((name, format_duration(decision.ttl) if decision.ttl is not None else None))
    return await render(
        request,
        "request_form.html",
        status=status,
        title="Request access",
        database=database,
        roles=roles,
        chosen=role,
        error=error,
        duration=duration,
        reason=reason,
    )


@router.post("/requests")
async def file_request(request: Request) -> Response:
    """File an access request (the service decides whether it may be filed, and caps it)."""
    session, principal = await signed_in(request)
    form = await checked_form(request, session)
    console = console_of(request)
    database, role = form.get("database", ""), form.get("role", "")
    duration_text, reason = form.get("duration", "").strip(), form.get("reason", "")
    try:
        console.api.engine.database(database)
        duration = parse_duration(duration_text) if duration_text else None
    except ValueError as exc:
        return await _request_form(
            request,
            principal,
            database,
            role,
            status=400,
            error=f"Duration: {exc}",
            duration=duration_text,
            reason=reason,
        )
    try:
        filed = await console.services.requests.create(principal, database, role, duration, reason)
    except SqlgateError as exc:
        return await _request_form(
            request, principal, database, role, status=exc.http_status, error=str(exc), duration=duration_text,
            reason=reason,
        )  # fmt: skip
    await console.services.audit.flush()  # the step's audit record is durable before we answer
    await flash(
        request,
        session,
        "ok",
        f"Request filed: {filed.role} on {filed.database} for {format_duration(filed.duration)}.",
    )
    return redirect(f"{PREFIX}/requests")


@dataclass
class InboxItem:
    """A pending request I may see as an approver, with what approving it now would grant."""

    request: AccessRequest
    preview: RequestPreview | None


@router.get("/requests")
async def requests_page(request: Request) -> Response:
    """My requests with their state; for approvers, the inbox with Approve and Deny."""
    _session, principal = await signed_in(request)
    console = console_of(request)
    service = console.services.requests
    mine = await service.list(principal_key=principal.key, limit=100)
    pending = await service.list(status="pending", limit=500)
    deciding = [r for r in pending if r.principal_key != principal.key and may_see(console.api, principal, r)]
    previews = await service.previews(deciding, principal)
    inbox = [InboxItem(request, previews.get(request.id)) for request in deciding]
    return await render(request, "requests.html", title="Requests", mine=mine, inbox=inbox, when=_when)


@router.post("/requests/{request_id}/approve")
async def approve(request: Request, request_id: RequestId) -> Response:
    """Approve a pending request, with an optional comment (the service checks the approver, never the requester)."""
    session, principal = await signed_in(request)
    form = await checked_form(request, session)
    services = console_of(request).services
    try:
        approved = await services.requests.approve(request_id, principal, comment=form.get("comment", ""))
    except SqlgateError as exc:
        await flash(request, session, "error", f"Not approved: {exc}")
        return redirect(f"{PREFIX}/requests")
    await services.audit.flush()  # the step's audit record is durable before we answer
    services.grants.forget()
    who = f"{approved.requester_name}: {approved.role} on {approved.database}"
    if approved.status == "approved" and approved.expires_at is not None:
        await flash(request, session, "ok", f"Approved {who}, until {_when(approved.expires_at)}.")
    else:
        await flash(
            request,
            session,
            "ok",
            f"Your approval of {who} is recorded ({approved.approvals} of {approved.min_approvals}).",
        )
    return redirect(f"{PREFIX}/requests")


@router.post("/requests/{request_id}/deny")
async def deny(request: Request, request_id: RequestId) -> Response:
    """Deny a pending request, with a comment (kept as the reason in the audit log)."""
    session, principal = await signed_in(request)
    form = await checked_form(request, session)
    services = console_of(request).services
    try:
        denied = await services.requests.deny(request_id, principal, form.get("comment", ""))
    except SqlgateError as exc:
        await flash(request, session, "error", f"Not denied: {exc}")
        return redirect(f"{PREFIX}/requests")
    await services.audit.flush()  # the step's audit record is durable before we answer
    await flash(request, session, "ok", f"Denied {denied.requester_name}: {denied.role} on {denied.database}.")
    return redirect(f"{PREFIX}/requests")


def _when(value: Any) -> str:
    """A time as people read it in a table (UTC, to the minute)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def request_link(database: str, role: str) -> str:
    """The Request access form for ``role`` on ``database``."""
    return f"{PREFIX}/requests/new?{urlencode({'database': database, 'role': role})}"
