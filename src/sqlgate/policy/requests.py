"""Just-in-time access requests: file, approve or deny, use while active, expire.

A caller whose decision is ``needs_approval`` files a request (database, role,
duration, reason). The rule may require a reason (``approval.require_reason``, the
default) and caps the duration (``approval.max_duration``, else ``max_ttl``): a
request asking for more is refused, naming the rule. Members of the rule's
approver groups — never the requester — approve or deny it; ``min_approvals``
counts distinct approvers, and :meth:`RequestService.preview` shows an approver
what approving now would grant. The access window starts when the last needed
approval lands: an approved request is a :class:`~sqlgate.policy.decide.Grant`
until ``expires_at`` (approval time + duration); then
:meth:`RequestService.expire_due` marks it expired. A pending request nobody
decides within ``requests.pending_ttl`` expires too, and its requester is told.
The policy in force when a step happens is the one that counts (the checks are in
:mod:`sqlgate.policy.approvals`). Every step is recorded through the auditor inside
the transaction that makes it, so a step whose audit record fails does not
happen; once it is committed, the notifier hears of it (webhooks), never blocking.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import insert, select, update

from sqlgate.audit.events import AuditEvent, Auditor, PrincipalRef
from sqlgate.config import format_duration
from sqlgate.errors import AccessDenied, AccessRequestError, RequestConflict
from sqlgate.identity.principal import Principal
from sqlgate.policy.approvals import (
    MAX_REASON,
    RequestPreview,
    check_approvable,
    check_filing,
    find_rule,
    granted_duration,
    needed_approvals,
    preview_of,
)
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

DEFAULT_PENDING_TTL = timedelta(hours=24)  # `requests.pending_ttl`: a request nobody decides expires after this
RequestEvent = Literal["filed", "approved", "denied", "expired"]
log = logging.getLogger(__name__)


class RequestListener(Protocol):
    """Told of each committed step (webhooks); must return at once and never raise."""

    def request_event(self, event: RequestEvent, request: AccessRequest, actor: Principal | None) -> None:
        """``request`` was filed, approved, denied or expired (``actor``: who did it, None for the gateway)."""
        ...


class RequestService:
    """Access requests in the state database, checked against the policy in force."""

    def __init__(
        self,
        store: StateStore,
        auditor: Auditor,
        policy_holder: PolicyHolder,
        *,
        pending_ttl: timedelta = DEFAULT_PENDING_TTL,
        listener: RequestListener | None = None,
    ) -> None:
        self._store = store
        self._auditor = auditor
        self._holder = policy_holder
        self.pending_ttl = pending_ttl
        self.listener = listener

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
        """File a request; refused unless policy says ``needs_approval`` for exactly this role.

        The rule that needs the approval must accept the reason (``approval.require_reason``) and
        the duration (at most its cap); ``duration`` None asks for the cap.
        """
        now = utc_or_now(at)
        decision = decide(self._holder.policy, principal, database, role, now, token_expires_at=None)
        if decision.outcome == "allow":
            raise RequestConflict(f"role {role} on {database} is already granted; no request is needed")
        if decision.outcome == "deny" or decision.approval is None:
            raise AccessDenied(decision.reason or f"role {role} on {database} cannot be requested")
        rule = find_rule(self._holder.policy, decision.matched_rules[0])
        if rule is None:  # the decision came from this very policy; kept for the type checker
            raise AccessDenied(f"role {role} on {database} cannot be requested")
        reason, granted = check_filing(rule, reason, duration)
        row = {
            "id": uuid.uuid4().hex,
            "principal_key": principal.key,
            "subject": principal.subject,
            "issuer": principal.issuer,
            "requester_name": principal.name,
            "database": database,
            "role": role,
            "rule": rule.name,
            "duration_seconds": int(granted.total_seconds()),
            "reason": reason,
            "status": "pending",
            "min_approvals": decision.approval.min_approvals,
            "created_at": now,
        }
        async with self._store.begin() as conn:
            await conn.execute(insert(access_requests).values(**row))
            request = await load_request(conn, str(row["id"]))
            await self._audit("request.create", request, principal, outcome="info", reason=reason or None)
        self._tell("filed", request, principal)
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

    async def approve(
        self, request_id: str, approver: Principal, *, comment: str = "", at: datetime | None = None
    ) -> AccessRequest:
        """Record ``approver``'s approval; once enough distinct approvers agree, the window starts now.

        ``comment`` (optional) is kept as the step's reason in the audit log and, on the approval that
        completes the request, as the decision's reason the requester sees.
        """
        now = utc_or_now(at)
        comment = _clean_reason(comment) if comment.strip() else ""
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
            needed = needed_approvals(request, rule)
            if count >= needed:
                await conn.execute(
                    update(access_requests)
                    .where(access_requests.c.id == request.id, access_requests.c.status == "pending")
                    .values(
                        status="approved",
                        decided_at=now,
                        expires_at=now + granted_duration(request, rule),
                        decided_by=approver.name,
                        decision_reason=comment or None,
                    )
                )
            request = await load_request(conn, request.id)
            await self._audit(
                "request.approve",
                request,
                approver,
                outcome="allowed",
                reason=comment or None,
                extra={"approvals": count, "needed": needed},
            )
        if request.status == "approved":
            self._tell("approved", request, approver)
        return request

    async def preview(self, request_id: str, approver: Principal, *, at: datetime | None = None) -> RequestPreview:
        """What approving ``request_id`` now would grant under the policy in force, and whether ``approver`` may.

        Changes nothing and records nothing. ``may_approve`` is False (with ``why_not``) for the
        requester, a non-approver, an approver who already approved, or a request no longer pending.
        """
        now = utc_or_now(at)
        async with self._store.begin() as conn:
            request = await load_request(conn, request_id)
            already = await has_approved(conn, request.id, approver.key)
        return preview_of(request, self._holder.policy, approver, now, self.pending_ttl, already_approved=already)

    async def previews(
        self, requests: builtins.list[AccessRequest], approver: Principal, *, at: datetime | None = None
    ) -> dict[str, RequestPreview]:
        """:meth:`preview` of each of ``requests`` (already read) for ``approver``, by request id, in one query."""
        now = utc_or_now(at)
        ids = [request.id for request in requests]
        done: set[str] = set()
        if ids:
            query = select(request_approvals.c.request_id).where(
                request_approvals.c.request_id.in_(ids), request_approvals.c.approver_key == approver.key
            )
            async with self._store.begin() as conn:
                done = {str(row[0]) for row in (await conn.execute(query)).all()}
        policy, ttl = self._holder.policy, self.pending_ttl
        return {r.id: preview_of(r, policy, approver, now, ttl, already_approved=r.id in done) for r in requests}

    def preview_of(self, request: AccessRequest, approver: Principal, *, at: datetime | None = None) -> RequestPreview:
        """:meth:`preview` of a request already read (no I/O; does not know about earlier approvals)."""
        return preview_of(request, self._holder.policy, approver, utc_or_now(at), self.pending_ttl)

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
        self._tell("denied", request, approver)
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
        """Expire approved requests past ``expires_at`` and pending ones older than ``pending_ttl``; audit each.

        A pending request's requester is told (webhook event ``expired``; the request shows as
        expired, ``decision_reason`` saying nobody decided in time). Returns how many this call expired
        (several replicas may run it at once: each request is expired, audited and told once).
        """
        now = utc_or_now(at)
        due = ((access_requests.c.status == "approved") & (access_requests.c.expires_at <= now)) | (
            (access_requests.c.status == "pending") & (access_requests.c.created_at <= now - self.pending_ttl)
        )
        expired: builtins.list[AccessRequest] = []
        async with self._store.begin() as conn:
            rows = (await conn.execute(select(access_requests).where(due))).mappings().all()
            for row in rows:
                was = str(row["status"])
                values: dict[str, Any] = {"status": "expired", "decided_at": row["decided_at"] or now}
                if was == "pending":
                    values["decision_reason"] = (
                        f"nobody approved or denied it within {format_duration(self.pending_ttl)}"
                    )
                result = await conn.execute(
                    update(access_requests)
                    .where(access_requests.c.id == row["id"], access_requests.c.status == was)
                    .values(**values)
                )
                if result.rowcount:
                    request = await load_request(conn, str(row["id"]))
                    await self._audit(
                        "request.expire", request, None, outcome="info", reason=f"was {was}", extra={"was": was}
                    )
                    expired.append(request)
        for request in expired:
            self._tell("expired", request, None)
        return len(expired)

    def _approvable(self, request: AccessRequest, approver: Principal, now: datetime) -> CompiledRule:
        rule = find_rule(self._holder.policy, request.rule)
        return check_approvable(request, rule, approver, now, self.pending_ttl)

    def _tell(self, event: RequestEvent, request: AccessRequest, actor: Principal | None) -> None:
        if self.listener is None:
            return
        try:
            self.listener.request_event(event, request, actor)
        except Exception:  # a notification must never undo or fail a committed step
            log.exception("could not queue the %s notification of access request %s", event, request.id)

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
        raise AccessRequestError("give a reason (it is shown to the requester and kept in the audit log)")
    if len(reason) > MAX_REASON:
        raise AccessRequestError(f"the reason is longer than {MAX_REASON} characters")
    return reason
