"""Who am I, what may I reach, and a short-lived login for direct use.

A login for direct use bypasses everything the gateway does per statement, so
``POST /v1/credentials`` issues one only when every rule granting the role allows
it (``direct_login``): a grant that carries masks or guardrails is refused with a
403 naming the rule, unless the rule says ``direct_login: true``.
"""

from __future__ import annotations

import shlex

from fastapi import APIRouter, Request, Response

from sqlgate.api import metrics
from sqlgate.api.deps import ApiDep, CurrentPrincipal
from sqlgate.api.errors import BadRequest, DirectLoginRefused
from sqlgate.api.models import ConnectInfo, Credentials, CredentialsRequest, DatabaseAccess, DatabaseList, WhoAmI
from sqlgate.api.state import ApiState
from sqlgate.config import Settings, parse_duration, split_host_port
from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Decision

router = APIRouter(tags=["access"])


@router.get("/v1/whoami", response_model=WhoAmI)
async def whoami(principal: CurrentPrincipal) -> WhoAmI:
    """The identity your token proves, as policy sees it."""
    return WhoAmI(
        **principal.summary(),
        source=principal.source,
        expires_at=principal.expires_at.isoformat() if principal.expires_at else None,
    )


@router.get("/v1/databases", response_model=DatabaseList)
async def databases(principal: CurrentPrincipal, api: ApiDep, request: Request) -> DatabaseList:
    """Each database you may use now (or after an approval), with the role, time limit and how to connect."""
    return DatabaseList(databases=await reachable_databases(api, principal, request.url.hostname))


async def reachable_databases(api: ApiState, principal: Principal, request_host: str | None) -> list[DatabaseAccess]:
    """Databases policy grants ``principal`` now or after approval; ``request_host``: the host the caller used."""
    settings = api.services.settings
    found = []
    for alias in sorted(settings.databases):
        decision = await api.engine.decide(principal, alias, None)
        if decision.outcome != "deny":
            found.append(_access(settings, alias, decision, principal.name, _pgwire_address(api, request_host)))
    return found


def _pgwire_address(api: ApiState, request_host: str | None) -> tuple[str, int]:
    """Where clients reach the pgwire listener: its host (the one this request used when it listens on all)."""
    host, port = split_host_port(api.services.settings.listen.postgres)
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - naming the address, not binding it
        host = request_host or "127.0.0.1"
    return host, api.pgwire_port or port


def _access(settings: Settings, alias: str, decision: Decision, user: str, address: tuple[str, int]) -> DatabaseAccess:
    config = settings.databases[alias]
    ttl = decision.to_dict()
    connect = None
    if config.engine == "postgres":
        host, port = address
        line = f"psql {shlex.quote(f'host={host} port={port} dbname={alias} user={user}')}"
        connect = ConnectInfo(host=host, port=port, dbname=alias, psql=line + "  # password: your token")
    return DatabaseAccess(
        name=alias,
        engine=config.engine,
        access="allow" if decision.allowed else "needs_approval",
        role=decision.role,
        ttl=ttl["ttl"],
        ttl_seconds=ttl["ttl_seconds"],
        rules=list(decision.matched_rules),
        reason=None if decision.allowed else decision.reason,
        connect=connect,
    )


@router.post("/v1/credentials", response_model=Credentials)
async def credentials(
    body: CredentialsRequest, principal: CurrentPrincipal, api: ApiDep, response: Response
) -> Credentials:
    """A short-lived login of the database itself (policy decides first; the lifetime is capped by it)."""
    wanted = None
    if body.ttl is not None:
        try:
            wanted = parse_duration(body.ttl)
        except ValueError as exc:
            raise BadRequest(f"ttl: {exc}") from None
    decision = await api.engine.authorize(principal, body.database, body.role, purpose="credentials")
    assert decision.role is not None
    assert decision.ttl is not None
    if not decision.direct_login:
        error = _direct_login_refused(decision)
        refused = decision._replace(outcome="deny", reason=str(error))
        await api.engine.decisions.record(principal, refused, protocol="http", purpose="credentials")
        metrics.DENIALS.labels("policy").inc()
        raise error
    ttl = min(wanted, decision.ttl) if wanted is not None and wanted.total_seconds() > 0 else decision.ttl
    lease = await api.services.broker.lease(principal, body.database, decision.role, ttl)
    issued = api.services.broker.credentials(lease)
    response.headers["Cache-Control"] = "no-store"
    return Credentials(**issued.as_dict())


def _direct_login_refused(decision: Decision) -> DirectLoginRefused:
    rule = decision.direct_login_refused_by
    return DirectLoginRefused(
        f"role {decision.role} on {decision.database} is not issued as a plain database login: rule {rule} does not"
        " allow direct_login (its masking and guardrails apply only to statements that pass through sqlgate)",
        rule=rule,
        hint=(
            f"connect through the gateway instead (psql to its PostgreSQL port with your token as the password,"
            f" `sqlgate connect {decision.database}`, or POST /v1/query), or ask the policy's owners to set"
            f" direct_login: true on rule {rule}"
        ),
    )
