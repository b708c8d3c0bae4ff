"""FastAPI dependencies: the services, the calling principal, role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sqlgate.access.authenticate import bearer
from sqlgate.api.state import ApiState
from sqlgate.errors import AccessDenied
from sqlgate.identity.principal import Principal
from sqlgate.services import Services


async def get_services(request: Request) -> Services:
    """The gateway's services (set on the app at creation)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_api(request: Request) -> ApiState:
    """The API's own state: pools, grant cache, query engine, access requests."""
    state: ApiState = request.app.state.api
    return state


ApiDep = Annotated[ApiState, Depends(get_api)]


def bearer_token(request: Request) -> str:
    """The token of ``Authorization: Bearer <token>``; IdentityError (401) when absent or malformed."""
    return bearer(request.headers.get("authorization", ""))


async def current_principal(request: Request) -> Principal:
    """The verified caller of this request (401 when the token does not verify).

    It reads the services from the app instead of depending on :func:`get_services`:
    every authenticated request solves this dependency, and each sub-dependency costs.
    """
    services: Services = request.app.state.services
    token = bearer_token(request)
    source = request.client.host if request.client else None
    return await services.access.authenticate(token, source, protocol="http")


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_group(principal: Principal, groups: list[str], what: str) -> None:
    """AccessDenied (403) unless ``principal`` is in one of ``groups``."""
    if not set(principal.groups) & set(groups):
        raise AccessDenied(f"{what} needs membership in one of: {', '.join(groups)}")


async def admin_principal(principal: CurrentPrincipal, services: ServicesDep) -> Principal:
    """The caller, who must be in an `api.admin_groups` group."""
    require_group(principal, services.settings.api.admin_groups, "managing sessions")
    return principal


async def auditor_principal(principal: CurrentPrincipal, services: ServicesDep) -> Principal:
    """The caller, who must be in an `api.auditor_groups` group."""
    require_group(principal, services.settings.api.auditor_groups, "reading the audit log")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
AuditorPrincipal = Annotated[Principal, Depends(auditor_principal)]
