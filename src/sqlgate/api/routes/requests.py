"""Access requests: file one, list yours (and those you may approve), see one with its preview, approve or deny.

Approvers (and administrators) get a ``preview`` with each request they may see
but did not file: what approving it now would grant under the policy in force
(:meth:`~sqlgate.policy.requests.RequestService.preview`), and whether they may.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sqlgate.api.deps import ApiDep, CurrentPrincipal
from sqlgate.api.errors import BadRequest
from sqlgate.api.models import (
    AccessRequestCreate,
    AccessRequestList,
    AccessRequestOut,
    ApproveBody,
    DenyBody,
    RequestPreviewOut,
)
from sqlgate.api.state import ApiState
from sqlgate.config import parse_duration
from sqlgate.errors import RequestNotFound
from sqlgate.identity.principal import Principal
from sqlgate.policy.approvals import RequestPreview
from sqlgate.policy.request_rows import AccessRequest

router = APIRouter(tags=["access requests"])

RequestId = Annotated[str, Path(min_length=1, max_length=64, description="The request's id.")]


def _out(request: AccessRequest, preview: RequestPreview | None = None) -> AccessRequestOut:
    shown = RequestPreviewOut(**preview.to_dict()) if preview is not None else None
    return AccessRequestOut(**request.to_dict(), preview=shown)


@router.post("/v1/requests", response_model=AccessRequestOut, status_code=201)
async def create_request(body: AccessRequestCreate, principal: CurrentPrincipal, api: ApiDep) -> AccessRequestOut:
    """Ask for a role that policy grants only after approval."""
    api.engine.database(body.database)
    duration = None
    if body.duration is not None:
        try:
            duration = parse_duration(body.duration)
        except ValueError as exc:
            raise BadRequest(f"duration: {exc}") from None
    created = await api.requests.create(principal, body.database, body.role, duration, body.reason)
    await api.services.audit.flush()  # the step's audit record is durable before we answer
    return _out(created)


@router.get("/v1/requests", response_model=AccessRequestList)
async def list_requests(
    principal: CurrentPrincipal,
    api: ApiDep,
    status: Annotated[
        str | None, Query(pattern="^(pending|approved|denied|expired)$", description="Only this status.")
    ] = None,
    database: Annotated[str | None, Query(max_length=63, description="Only this database.")] = None,
) -> AccessRequestList:
    """Your own requests and those you may approve (administrators see all), newest first."""
    found = await api.requests.list(database=database, status=status, limit=500)
    visible = [request for request in found if _may_see(api, principal, request)]
    deciding = [r for r in visible if r.status == "pending" and r.principal_key != principal.key]
    previews = await api.requests.previews(deciding, principal)
    return AccessRequestList(requests=[_out(request, previews.get(request.id)) for request in visible])


@router.get("/v1/requests/{request_id}", response_model=AccessRequestOut)
async def get_request(request_id: RequestId, principal: CurrentPrincipal, api: ApiDep) -> AccessRequestOut:
    """One request you filed or may decide; approvers also get what approving it now would grant (`preview`)."""
    request = await api.requests.get(request_id)
    if not _may_see(api, principal, request):
        raise RequestNotFound(f"no access request {request_id!r}")
    if request.principal_key == principal.key:
        return _out(request)
    return _out(request, await api.requests.preview(request.id, principal))


def _may_see(api: ApiState, principal: Principal, request: AccessRequest) -> bool:
    if request.principal_key == principal.key or set(principal.groups) & set(api.services.settings.api.admin_groups):
        return True
    for rule in api.services.policy.policy.rules:
        if rule.name == request.rule and rule.approval is not None and rule.approval.approvers is not None:
            return bool(set(principal.groups) & set(rule.approval.approvers.groups))
    return False


@router.post("/v1/requests/{request_id}/approve", response_model=AccessRequestOut)
async def approve(
    request_id: RequestId, principal: CurrentPrincipal, api: ApiDep, body: ApproveBody | None = None
) -> AccessRequestOut:
    """Approve a pending request (an approver of its rule, never the requester), with an optional comment."""
    approved = await api.requests.approve(request_id, principal, comment=body.comment if body else "")
    await api.services.audit.flush()  # the step's audit record is durable before we answer
    api.services.grants.forget()
    return _out(approved)


@router.post("/v1/requests/{request_id}/deny", response_model=AccessRequestOut)
async def deny(request_id: RequestId, body: DenyBody, principal: CurrentPrincipal, api: ApiDep) -> AccessRequestOut:
    """Deny a pending request, with a reason."""
    denied = await api.requests.deny(request_id, principal, body.reason)
    await api.services.audit.flush()  # the step's audit record is durable before we answer
    return _out(denied)
