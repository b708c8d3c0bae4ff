"""Just-in-time access requests: file, approve or deny, use while active, expire.

A caller whose decision is ``needs_approval`` files a request (database, role,
duration, reason). Members of the rule's approver groups — never the requester —
approve or deny it; ``min_approvals`` counts distinct approvers. An approved
request is a :class:`~sqlgate.policy.decide.Grant` until ``expires_at``; then
:meth:`RequestService.expire_due` marks it expired. The policy in force when a
step happens is the one that counts: an approval checks the rule as it is now.
Every step is recorded through the auditor inside the transaction that makes it,
so a step whose audit record fails does not happen.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from sqlgate.audit.events import AuditEvent, Auditor, PrincipalRef
from sqlgate.config import format_duration
from sqlgate.errors import AccessDenied, AccessRequestError, RequestConflict
from sqlgate.identity.principal import Principal
from sqlgate.policy.compiled import CompiledRule
from sqlgate.policy.decide import Grant, decide
from sqlgate.policy.holder import PolicyHolder
from sqlgate.policy.request_rows import (
    AccessRequest,
    approval_counts,
    aware,
    has_approved,
    load_request,
    request_of,
    utc_or_now,
)
from sqlgate.policy.tables import access_requests, request_approvals
from sqlgate.store.engine import StateStore

MAX_REASON = 2000
PENDING_LIFETIME = timedelta(days=1)  # a request nobody decides expires after this


class RequestService:
    """Access requests in the state database, checked against the policy in force."""

    def __init__(self, store: StateStore, auditor: Auditor, policy_holder: PolicyHolder) -> None:
        self._store = store
        self._auditor = auditor
        self._holder = policy_holder

    async def create(  # noqa: PLR0913 - the request's own fields
        self,
        principal: Principal,
        database: str,
        role: str,
        duration: timedelta | None,
        reason: str,
        *,
        at: datetime | None = None,
    ) -> AccessRequest:
        """File a request; refused unless policy says ``needs_approval`` for exactly this role."""
        now = utc_or_now(at)
        reason = _clean_reason(reason)
        decision = decide(self._holder.policy, principal, database, role, now, token_expires_at=None)
        if decision.outcome == "allow":
            raise RequestConflict(f"role {role} on {database} is already granted; no request is needed")
        if decision.outcome == "deny" or decision.approval is None:
            raise AccessDenied(decision.reason or f"role {role} on {database} cannot be requested")
        cap = decision.ttl or timedelta(0)
        if duration is not None and duration <= timedelta(0):
            raise AccessRequestError("duration must be longer than zero")
        granted = min(duration, cap) if duration is not None else cap
        row = {
            "id": uuid.uuid4().hex,
            "principal_key": principal.key,
            "subject": principal.subject,
            "issuer": principal.issuer,
            "requester_name": principal.name,
            "database": database,
            "role": role,
            "rule": decision.matched_rules[0],
            "duration_seconds": int(granted.total_seconds()),
            "reason": reason,
            "status": "pending",
            "min_approvals": decision.approval.min_approvals,
            "created_at": now,
        }
        async with self._store.begin() as conn:
            await conn.execute(insert(access_requests).values(**row))
            request = await load_request(conn, str(row["id"]))
            await self._audit(
                "request.create",
                request,
                principal,
                outcome="info",
                reason=reason,
                extra={"capped": granted != duration},
            )
        return request

    async def get(self, request_id: str) -> AccessRequest:
        """The request ``request_id`` (RequestNotFound when there is none)."""
        async with self._store.begin() as conn:
            return await load_request(conn, request_id)

    async def list(
        self,
        *,
        principal_key: str | None = None,
        database: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[AccessRequest]:
        """Requests, newest first, filtered by requester, database and status."""
        query = select(access_requests).order_by(access_requests.c.created_at.desc()).limit(max(1, min(limit, 1000)))
        if principal_key is not None:
            query = query.where(access_requests.c.principal_key == principal_key)
        if database is not None:
            query = query.where(access_requests.c.database == database)
        if status is not None:
            query = query.where(access_requests.c.status == status)
        async with self._store.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
            counts = await approval_counts(conn, [row["id"] for row in rows])
        return [request_of(row, counts.get(row["id"], 0)) for row in rows]

    async def approve(self, request_id: str, approver: Principal, *, at: datetime | None = None) -> AccessRequest:
        """Record ``approver``'s approval; the request is approved once enough distinct approvers agree."""
        now = utc_or_now(at)
        async with self._store.begin() as conn:
            request = await load_request(conn, request_id, lock=True)
            rule = self._approvable(request, approver, now)
            if await has_approved(conn, request.id, approver.key):
                raise RequestConflict(f"you have already approved request {request.id}")
            await conn.execute(
                insert(request_approvals).values(
                    request_id=request.id, approver_key=approver.key, approver_name=approver.name, approved_at=now
                )
            )
            count = request.approvals + 1
            needed = rule.approval.min_approvals if rule.approval else request.min_approvals
            if count >= needed:
                caps = [request.duration, rule.max_ttl]
                if rule.approval and rule.approval.max_duration:
                    caps.append(rule.approval.max_duration)
                duration = min(caps)
                await conn.execute(
                    update(access_requests)
                    .where(access_requests.c.id == request.id, access_requests.c.status == "pending")
                    .values(status="approved", decided_at=now, expires_at=now + duration, decided_by=approver.name)
                )
            request = await load_request(conn, request.id)
            await self._audit(
                "request.approve", request, approver, outcome="allowed", extra={"approvals": count, "needed": needed}
            )
        return request

    async def deny(
        self, request_id: str, approver: Principal, reason: str, *, at: datetime | None = None
    ) -> AccessRequest:
        """Deny a pending request (only an approver may)."""
        now = utc_or_now(at)
        reason = _clean_reason(reason)
        async with self._store.begin() as conn:
            request = await load_request(conn, request_id, lock=True)
            self._approvable(request, approver, now)
            await conn.execute(
                update(access_requests)
                .where(access_requests.c.id == request.id, access_requests.c.status == "pending")
                .values(status="denied", decided_at=now, decided_by=approver.name, decision_reason=reason)
            )
            request = await load_request(conn, request.id)
            await self._audit("request.deny", request, approver, outcome="denied", reason=reason)
        return request

    async def active_grants(
        self, principal: Principal, database: str | None = None, *, at: datetime | None = None
    ) -> builtins.list[Grant]:
        """Approved, unexpired grants of ``principal`` (on ``database`` when given), for decide(grants=...)."""
        now = utc_or_now(at)
        query = select(access_requests).where(
            access_requests.c.principal_key == principal.key,
            access_requests.c.status == "approved",
            access_requests.c.expires_at > now,
        )
        if database is not None:
            query = query.where(access_requests.c.database == database)
        async with self._store.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [request_of(row, 0).grant() for row in rows if aware(row["expires_at"]) > now]

    async def expire_due(self, *, at: datetime | None = None) -> int:
        """Mark approved requests past ``expires_at``, and pending ones older than a day, expired; audit each."""
        now = utc_or_now(at)
        due = ((access_requests.c.status == "approved") & (access_requests.c.expires_at <= now)) | (
            (access_requests.c.status == "pending") & (access_requests.c.created_at <= now - PENDING_LIFETIME)
        )
        async with self._store.begin() as conn:
            rows = (await conn.execute(select(access_requests).where(due))).mappings().all()
            for row in rows:
                result = await conn.execute(
                    update(access_requests)
                    .where(access_requests.c.id == row["id"], access_requests.c.status == row["status"])
                    .values(status="expired", decided_at=row["decided_at"] or now)
                )
                if result.rowcount:
                    request = await load_request(conn, str(row["id"]))
                    await self._audit("request.expire", request, None, outcome="info", reason=f"was {row['status']}")
        return len(rows)

    def _approvable(self, request: AccessRequest, approver: Principal, now: datetime) -> CompiledRule:
        if request.status != "pending":
            raise RequestConflict(f"request {request.id} is {request.status}, not pending")
        if request.created_at <= now - PENDING_LIFETIME:
            raise RequestConflict(f"request {request.id} waited too long and has expired; file a new one")
        if approver.key == request.principal_key:
            raise AccessDenied("you cannot approve or deny your own access request")
        rule = next((r for r in self._holder.policy.rules if r.name == request.rule), None)
        if rule is None or not rule.needs_approval or rule.approval is None or rule.approval.approvers is None:
            raise RequestConflict(f"rule {request.rule} no longer grants role {request.role} with approval")
        groups = rule.approval.approvers.groups
        if not set(groups) & set(approver.groups):
            raise AccessDenied(f"only members of group {', '.join(groups)} may decide this request")
        return rule

    async def _audit(  # noqa: PLR0913 - one audit record's fields
        self,
        kind: Any,
        request: AccessRequest,
        actor: Principal | None,
        *,
        outcome: Any,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        await self._auditor.record(
            AuditEvent(
                type=kind,
                principal=PrincipalRef.of(actor),
                database=request.database,
                outcome=outcome,
                reason=reason,
                data={
                    "request_id": request.id,
                    "requester": {"subject": request.subject, "issuer": request.issuer},
                    "role": request.role,
                    "rule": request.rule,
                    "status": request.status,
                    "duration": format_duration(request.duration),
                    "expires_at": request.expires_at.isoformat() if request.expires_at else None,
                    **(extra or {}),
                },
            )
        )


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AccessRequestError("give a reason (it is shown to approvers and kept in the audit log)")
    if len(reason) > MAX_REASON:
        raise AccessRequestError(f"the reason is longer than {MAX_REASON} characters")
    return reason
