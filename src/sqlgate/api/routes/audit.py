"""``GET /v1/audit``: search the audit log (auditor groups only), newest first, with a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sqlgate.api.deps import AuditorPrincipal, ServicesDep
from sqlgate.api.errors import BadRequest
from sqlgate.api.models import AuditPage
from sqlgate.audit.search import MAX_LIMIT, search

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", response_model=AuditPage)
async def audit(  # noqa: PLR0913, PLR0917 - one query parameter per filter
    _auditor: AuditorPrincipal,
    services: ServicesDep,
    who: Annotated[str | None, Query(max_length=500, description="A subject, or `issuer#subject`.")] = None,
    db: Annotated[str | None, Query(max_length=63, description="Database alias.")] = None,
    since: Annotated[str | None, Query(max_length=40, description="ISO 8601 time (inclusive).")] = None,
    until: Annotated[str | None, Query(max_length=40, description="ISO 8601 time (exclusive).")] = None,
    type: Annotated[str | None, Query(max_length=64, description="Event type, or a prefix like `lease.*`.")] = None,  # noqa: A002
    grep: Annotated[str | None, Query(max_length=200, description="Text anywhere in the record.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Records per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=40, description="`next_cursor` of the previous page.")] = None,
) -> AuditPage:
    """Audit records matching every filter, newest first; follow `next_cursor` for older ones."""
    try:
        page = await search(
            services.store, who=who, db=db, since=since, until=until, type=type, grep=grep, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return AuditPage(records=page.records, next_cursor=page.next_cursor)
