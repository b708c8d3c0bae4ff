"""Access requests as rows: the :class:`AccessRequest` record and the queries that read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from sqlgate.config import format_duration
from sqlgate.errors import RequestNotFound
from sqlgate.policy.decide import Grant
from sqlgate.policy.tables import access_requests, request_approvals


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """One access request as stored."""

    id: str
    principal_key: str
    subject: str
    issuer: str
    requester_name: str
    database: str
    role: str
    rule: str
    duration: timedelta
    reason: str
    status: str
    min_approvals: int
    approvals: int
    created_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None
    decided_by: str | None
    decision_reason: str | None

    def grant(self) -> Grant:
        """The grant an approved request gives (``expires_at`` must be set)."""
        assert self.expires_at is not None
        return Grant(self.principal_key, self.database, self.role, self.expires_at, self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.id,
            "requester": {"subject": self.subject, "issuer": self.issuer, "name": self.requester_name},
            "database": self.database,
            "role": self.role,
            "rule": self.rule,
            "duration": format_duration(self.duration),
            "reason": self.reason,
            "status": self.status,
            "approvals": self.approvals,
            "min_approvals": self.min_approvals,
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
        }


async def load_request(conn: AsyncConnection, request_id: str, *, lock: bool = False) -> AccessRequest:
    """The request ``request_id`` (locked for update when ``lock``), or RequestNotFound."""
    query = select(access_requests).where(access_requests.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise RequestNotFound(f"no access request {request_id!r}")
    count = (await approval_counts(conn, [request_id])).get(request_id, 0)
    return request_of(row, count)


async def has_approved(conn: AsyncConnection, request_id: str, approver_key: str) -> bool:
    """True when ``approver_key`` already approved ``request_id``."""
    query = select(request_approvals.c.request_id).where(
        request_approvals.c.request_id == request_id, request_approvals.c.approver_key == approver_key
    )
    return (await conn.execute(query)).first() is not None


async def approval_counts(conn: AsyncConnection, ids: list[str]) -> dict[str, int]:
    """Distinct approvals per request id."""
    if not ids:
        return {}
    query = (
        select(request_approvals.c.request_id, func.count())
        .where(request_approvals.c.request_id.in_(ids))
        .group_by(request_approvals.c.request_id)
    )
    return {str(request_id): int(count) for request_id, count in (await conn.execute(query)).all()}


def utc_or_now(at: datetime | None) -> datetime:
    """``at`` (or now) in UTC; naive times are refused."""
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def request_of(row: RowMapping, approvals: int) -> AccessRequest:
    """The record of one row."""
    return AccessRequest(
        id=row["id"],
        principal_key=row["principal_key"],
        subject=row["subject"],
        issuer=row["issuer"],
        requester_name=row["requester_name"],
        database=row["database"],
        role=row["role"],
        rule=row["rule"],
        duration=timedelta(seconds=row["duration_seconds"]),
        reason=row["reason"],
        status=row["status"],
        min_approvals=row["min_approvals"],
        approvals=approvals,
        created_at=aware(row["created_at"]),
        decided_at=_maybe(row["decided_at"]),
        expires_at=_maybe(row["expires_at"]),
        decided_by=row["decided_by"],
        decision_reason=row["decision_reason"],
    )
