"""Live sessions (pgwire connections and running API queries) of every replica: list them, end one. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sqlgate.api.deps import AdminPrincipal, ServicesDep
from sqlgate.api.errors import SessionNotFound
from sqlgate.api.models import SessionEnded, SessionList, SessionOut
from sqlgate.replicas.names import replica_name

router = APIRouter(tags=["sessions"])


@router.get("/v1/sessions", response_model=SessionList)
async def list_sessions(_admin: AdminPrincipal, services: ServicesDep) -> SessionList:
    """Every live session of every replica (each with its replica's name), oldest first."""
    if services.replicas is not None:
        return SessionList(sessions=[SessionOut(**summary) for summary in await services.replicas.list_sessions()])
    name = replica_name(services.settings)
    return SessionList(sessions=[SessionOut(**s.summary(), replica=name) for s in services.sessions.list()])


@router.delete("/v1/sessions/{session_id}", response_model=SessionEnded)
async def end_session(
    session_id: Annotated[str, Path(min_length=1, max_length=64, description="The session's id.")],
    admin: AdminPrincipal,
    services: ServicesDep,
    reason: Annotated[str | None, Query(max_length=500, description="Why, shown to the session's user.")] = None,
) -> SessionEnded:
    """End a session on whichever replica holds it: a pgwire client gets 57P01 with the reason, a query is cancelled."""
    why = reason or f"ended by {admin.name}"
    if services.replicas is not None:
        holder = await services.replicas.end_session(session_id, why)
    else:
        holder = replica_name(services.settings) if await services.sessions.end(session_id, why) else None
    if holder is None:
        raise SessionNotFound(f"no live session {session_id!r} on any replica")
    return SessionEnded(id=session_id, ended=True, replica=holder)
