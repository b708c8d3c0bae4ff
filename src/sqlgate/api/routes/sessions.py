"""Live sessions (pgwire connections and running API queries): list them, end one. Admin groups only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sqlgate.api.deps import AdminPrincipal, ServicesDep
from sqlgate.api.errors import SessionNotFound
from sqlgate.api.models import SessionEnded, SessionList, SessionOut

router = APIRouter(tags=["sessions"])


@router.get("/v1/sessions", response_model=SessionList)
async def list_sessions(_admin: AdminPrincipal, services: ServicesDep) -> SessionList:
    """Every live session of this replica, oldest first."""
    return SessionList(sessions=[SessionOut(**session.summary()) for session in services.sessions.list()])


@router.delete("/v1/sessions/{session_id}", response_model=SessionEnded)
async def end_session(
    session_id: Annotated[str, Path(min_length=1, max_length=64, description="The session's id.")],
    admin: AdminPrincipal,
    services: ServicesDep,
    reason: Annotated[str | None, Query(max_length=500, description="Why, shown to the session's user.")] = None,
) -> SessionEnded:
    """End a session now: a pgwire client gets 57P01 with the reason, a running query is cancelled."""
    why = reason or f"ended by {admin.name}"
    if not await services.sessions.end(session_id, why):
        raise SessionNotFound(f"no live session {session_id!r} on this replica")
    return SessionEnded(id=session_id, ended=True)
