"""Pages for administrators and auditors: live sessions, the audit log, the policy.

- ``/ui/sessions`` (``api.admin_groups``): the API's own session handlers list and end sessions,
  so End session does exactly what ``DELETE /v1/sessions/{id}`` does (57P01 with the reason).
- ``/ui/audit`` (``api.auditor_groups``): :func:`sqlgate.audit.search.search` with the API's
  filters plus outcome; each record's details; a session's statements as a timeline; and the
  chain badge from :func:`sqlgate.audit.stored.verify_stored`, the routine of ``sqlgate audit verify``.
- ``/ui/policy`` (administrators and auditors): the rules as loaded and an explain form that calls
  :func:`sqlgate.policy.explain` with the same defaults as ``sqlgate policy explain``.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from ruamel.yaml import YAML

from sqlgate.api.routes import sessions as api_sessions
from sqlgate.audit.search import search
from sqlgate.console.sessions import ConsoleSession
from sqlgate.console.web import (
    PREFIX,
    ConsoleRoute,
    checked_form,
    console_of,
    flash,
    is_admin,
    is_auditor,
    redirect,
    render,
    require,
    signed_in,
)
from sqlgate.errors import SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.policy.cases import DEFAULT_ISSUER
from sqlgate.policy.explain import explain

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

OUTCOMES = ("success", "failure", "denied", "allowed", "error", "info", "would_deny")
PAGE = 50


async def _admin(request: Request) -> tuple[ConsoleSession, Principal]:
    session, principal = await signed_in(request)
    services = console_of(request).services
    require(is_admin(services, principal), "Live sessions", services.settings.api.admin_groups)
    return session, principal


async def _auditor(request: Request) -> Principal:
    _session, principal = await signed_in(request)
    services = console_of(request).services
    require(is_auditor(services, principal), "The audit log", services.settings.api.auditor_groups)
    return principal


# -- sessions -------------------------------------------------------------------------------------


@router.get("/sessions")
async def sessions_page(request: Request) -> Response:
    """Live sessions: who, database, role, source, since, statements so far, and End session."""
    _session, admin = await _admin(request)
    services = console_of(request).services
    found = await api_sessions.list_sessions(admin, services)
    return await render(request, "sessions.html", title="Live sessions", sessions=found.sessions, when=_iso_when)


@router.post("/sessions/{session_id}/end")
async def end_session(request: Request, session_id: Annotated[str, Path(min_length=1, max_length=64)]) -> Response:
    """End a session as ``DELETE /v1/sessions/{id}`` does: the client gets 57P01 with the reason."""
    session, admin = await _admin(request)
    form = await checked_form(request, session)
    services = console_of(request).services
    reason = form.get("reason", "").strip()[:500] or None
    try:
        await api_sessions.end_session(session_id, admin, services, reason)
    except SqlgateError as exc:
        await flash(request, session, "error", f"Not ended: {exc}")
    else:
        await flash(request, session, "ok", f"Session {session_id} ended.")
    return redirect(f"{PREFIX}/sessions")


# -- audit ----------------------------------------------------------------------------------------

Text = Annotated[str | None, Query(max_length=200)]


@router.get("/audit")
async def audit_page(  # noqa: PLR0913, PLR0917 - one query parameter per filter
    request: Request,
    who: Annotated[str | None, Query(max_length=500)] = None,
    database: Text = None,
    type: Text = None,  # noqa: A002 - the filter is called type everywhere (CLI, API)
    outcome: Text = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    grep: Text = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Search the audit log by who, database, type, outcome and time; each record with its details."""
    await _auditor(request)
    services = console_of(request).services
    filters = {
        "who": who or "",
        "database": database or "",
        "type": type or "",
        "outcome": outcome or "",
        "since": since or "",
        "until": until or "",
        "grep": grep or "",
    }
    error = None
    records: list[dict[str, Any]] = []
    next_cursor = None
    try:
        page = await search(
            services.store,
            who=who or None,
            db=database or None,
            type=type or None,
            outcome=outcome or None,
            since=since or None,
            until=until or None,
            grep=grep or None,
            limit=PAGE,
            cursor=cursor or None,
        )
        records, next_cursor = page.records, page.next_cursor
    except ValueError as exc:
        error = str(exc)
    older = None
    if next_cursor:
        older = "?" + "&".join(f"{k}={_q(v)}" for k, v in {**filters, "cursor": next_cursor}.items() if v)
    return await render(
        request,
        "audit.html",
        status=400 if error else 200,
        title="Audit log",
        filters=filters,
        outcomes=OUTCOMES,
        records=[_shown(record) for record in records],
        error=error,
        older=older,
    )


@router.get("/audit/verify")
async def audit_verify(request: Request, fresh: bool = False) -> Response:
    """The chain badge: intact, or broken with the first problem (as `sqlgate audit verify` finds it)."""
    await _auditor(request)
    template = "verify.html" if request.headers.get("hx-request") == "true" else "verify_page.html"
    fragment = template == "verify.html"
    try:
        checked, report = await console_of(request).verify_chain(fresh=fresh)
    except SqlgateError as exc:
        return await render(
            request, template, fragment=fragment, title="Audit chain", status_text="unverifiable", problem=str(exc)
        )
    first = report.findings[0] if report.findings else None
    problem = None
    if first is not None:
        where = f"chain {first.chain}" + (f", record {first.seq}" if first.seq is not None else "")
        problem = f"{first.kind} at {where}: {first.message}"
    return await render(
        request,
        template,
        fragment=fragment,
        title="Audit chain",
        status_text="intact" if report.ok else "broken",
        problem=problem,
        records=sum(chain.records for chain in report.chains.values()),
        chains=len(report.chains),
        checked=checked.strftime("%H:%M:%S UTC"),
    )


@router.get("/audit/session/{session_id}")
async def session_timeline(
    request: Request, session_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> Response:
    """One session's records, oldest first: its start, every statement, its end."""
    await _auditor(request)
    services = console_of(request).services
    page = await search(services.store, session=session_id, limit=1000)
    records = [_shown(record) for record in reversed(page.records)]
    return await render(
        request, "timeline.html", title=f"Session {session_id}", session_id=session_id, records=records,
        truncated=page.next_cursor is not None,
    )  # fmt: skip


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """A record with what a table row shows first, and its full JSON for the details."""
    principal = record.get("principal") or {}
    data = record.get("data") or {}
    summary = data.get("sql") or record.get("reason") or ""
    if str(record.get("type", "")).startswith("request.") and record.get("reason"):
        summary = f"reason: {record['reason']}"
    return {
        "time": str(record.get("time", "")),
        "type": record.get("type", ""),
        "who": principal.get("subject", ""),
        "database": record.get("database") or "",
        "outcome": record.get("outcome", ""),
        "session_id": record.get("session_id"),
        "summary": str(summary)[:300],
        "json": json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False),
    }


def _q(value: str) -> str:
    return quote(value, safe="")


# -- policy ---------------------------------------------------------------------------------------


@router.get("/policy")
async def policy_page(  # noqa: PLR0913, PLR0917 - the explain form's fields
    request: Request,
    user: Annotated[str | None, Query(alias="as", max_length=128)] = None,
    groups: Annotated[str | None, Query(max_length=500)] = None,
    database: Annotated[str | None, Query(max_length=63)] = None,
    role: Annotated[str | None, Query(max_length=63)] = None,
    at: Annotated[str | None, Query(max_length=40)] = None,
    source: Annotated[str | None, Query(alias="from", max_length=64)] = None,
) -> Response:
    """The rules as loaded, and "can alice in analysts use write on demo now, from 10.1.2.3?"."""
    _session, principal = await signed_in(request)
    services = console_of(request).services
    settings = services.settings
    require(
        is_admin(services, principal) or is_auditor(services, principal),
        "The policy page",
        [*settings.api.admin_groups, *settings.api.auditor_groups],
    )
    holder = services.policy
    policy = holder.policy
    rules = [
        (
            rule.name,
            dump_yaml(
                rule.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True, exclude={"name"})
            ),
        )
        for rule in policy.source.rules
    ]
    form = {
        "as": user or "",
        "groups": groups or "",
        "database": database or "",
        "role": role or "",
        "at": at or "",
        "from": source or "",
    }
    result, error = None, None
    if user and database:
        when, error = _when(at)
        if when is not None:
            names = tuple(g.strip() for g in (groups or "").split(",") if g.strip())
            asked = Principal(user, DEFAULT_ISSUER, user, groups=names)
            result = explain(policy, asked, database, role or None, when, source or None, token_expires_at=None)
    return await render(
        request,
        "policy.html",
        status=400 if error else 200,
        title="Policy",
        rules=rules,
        loaded_at=holder.loaded_at,
        policy_error=holder.last_error,
        digest=policy.digest,
        databases=sorted(settings.databases),
        form=form,
        result=result,
        error=error,
    )


def dump_yaml(value: Any) -> str:
    """``value`` as block YAML, the way a policy file spells it."""
    yaml = YAML()  # round-trip: keys stay in the policy model's order
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(value, out)
    return out.getvalue()


def _when(text: str | None) -> tuple[datetime | None, str | None]:
    """The explain form's time, read as `sqlgate policy explain --at` reads it (no offset means UTC)."""
    if not text:
        return datetime.now(UTC), None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None, f"When: {text!r} is not an ISO 8601 time (e.g. 2026-11-25T09:30:00+01:00)"
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)), None


def _iso_when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
