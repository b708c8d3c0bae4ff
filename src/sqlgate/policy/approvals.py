"""The rules of an access request's life, pure: what may be filed, who may decide, what an approval grants.

:class:`~sqlgate.policy.requests.RequestService` stores and audits the steps; the
checks live here, once, so the API, CLI, console and MCP (which all call the
service) and the approver preview give the same answers:

- :func:`check_filing`: the reason and duration a rule asks for (``approval.require_reason``,
  and a duration no longer than the rule's cap: ``approval.max_duration``, else ``max_ttl``).
- :func:`check_approvable`: the request is pending and not past ``requests.pending_ttl``, the
  approver is not the requester and belongs to an approver group of the rule *in force*.
- :func:`granted_duration`: what an approval gives: the duration filed, capped again by the
  rule in force; the window starts when the last needed approval lands.
- :func:`preview_of`: all of the above for one approver at one moment, before they approve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlgate.config import format_duration
from sqlgate.errors import AccessDenied, AccessRequestError, RequestConflict, SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.policy.compiled import CompiledPolicy, CompiledRule
from sqlgate.policy.request_rows import AccessRequest

MAX_REASON = 2000


def find_rule(policy: CompiledPolicy, name: str) -> CompiledRule | None:
    """The rule named ``name`` in ``policy``, or None."""
    return next((rule for rule in policy.rules if rule.name == name), None)


def duration_cap(rule: CompiledRule) -> timedelta:
    """The longest grant an approval under ``rule`` gives: ``approval.max_duration``, within ``max_ttl``."""
    cap = rule.max_ttl
    if rule.approval is not None and rule.approval.max_duration is not None:
        cap = min(cap, rule.approval.max_duration)
    return cap


def check_filing(rule: CompiledRule, reason: str, duration: timedelta | None) -> tuple[str, timedelta]:
    """The cleaned reason and the duration to file under ``rule``; AccessRequestError naming the rule otherwise."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise AccessRequestError(f"the reason is longer than {MAX_REASON} characters")
    if not reason and (rule.approval is None or rule.approval.require_reason):
        raise AccessRequestError(
            f"rule {rule.name} requires a reason: give a reason (it is shown to approvers and kept in the audit log)"
        )
    cap = duration_cap(rule)
    if duration is None:
        return reason, cap
    if duration <= timedelta(0):
        raise AccessRequestError("duration must be longer than zero")
    if duration > cap:
        raise AccessRequestError(
            f"rule {rule.name} grants role {rule.role} for at most {format_duration(cap)}; "
            f"ask for {format_duration(cap)} or less (asked: {format_duration(duration)})"
        )
    return reason, duration


def check_approvable(
    request: AccessRequest, rule: CompiledRule | None, approver: Principal, now: datetime, pending_ttl: timedelta
) -> CompiledRule:
    """``rule`` when ``approver`` may approve or deny ``request`` at ``now``; else RequestConflict or AccessDenied."""
    if request.status != "pending":
        raise RequestConflict(f"request {request.id} is {request.status}, not pending")
    if request.created_at + pending_ttl <= now:
        raise RequestConflict(f"request {request.id} waited too long and has expired; file a new one")
    if approver.key == request.principal_key:
        raise AccessDenied("you cannot approve or deny your own access request")
    if rule is None or not rule.needs_approval or rule.approval is None or rule.approval.approvers is None:
        raise RequestConflict(f"rule {request.rule} no longer grants role {request.role} with approval")
    groups = rule.approval.approvers.groups
    if not set(groups) & set(approver.groups):
        raise AccessDenied(f"only members of group {', '.join(groups)} may decide this request")
    return rule


def needed_approvals(request: AccessRequest, rule: CompiledRule | None) -> int:
    """Distinct approvals the request needs under the rule in force (as filed when the rule is gone)."""
    return rule.approval.min_approvals if rule is not None and rule.approval else request.min_approvals


def granted_duration(request: AccessRequest, rule: CompiledRule) -> timedelta:
    """How long an approval now grants: the duration filed, capped by the rule in force."""
    return min(request.duration, duration_cap(rule))


@dataclass(frozen=True, slots=True)
class RequestPreview:
    """What approving ``request_id`` now would grant, and whether this approver may approve it."""

    request_id: str
    database: str
    role: str
    rule: str
    requested: timedelta
    duration: timedelta
    starts_at: datetime
    expires_at: datetime
    approvals: int
    min_approvals: int
    completes: bool
    may_approve: bool
    why_not: str | None
    pending_until: datetime | None
    guardrails: dict[str, Any] | None = None
    mask: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (durations spelled ``1h30m``, times ISO 8601)."""
        return {
            "request_id": self.request_id,
            "database": self.database,
            "role": self.role,
            "rule": self.rule,
            "requested": format_duration(self.requested),
            "duration": format_duration(self.duration),
            "duration_seconds": int(self.duration.total_seconds()),
            "starts_at": self.starts_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "approvals": self.approvals,
            "min_approvals": self.min_approvals,
            "completes": self.completes,
            "may_approve": self.may_approve,
            "why_not": self.why_not,
            "pending_until": self.pending_until.isoformat() if self.pending_until else None,
            "guardrails": self.guardrails,
            "mask": dict(self.mask),
        }


def preview_of(  # noqa: PLR0913 - the request, the policy, who, when, and what they did already
    request: AccessRequest,
    policy: CompiledPolicy,
    approver: Principal,
    now: datetime,
    pending_ttl: timedelta,
    *,
    already_approved: bool = False,
) -> RequestPreview:
    """What approving ``request`` at ``now`` would grant under ``policy``, as ``approver`` would see it."""
    rule = find_rule(policy, request.rule)
    why_not: str | None = None
    try:
        check_approvable(request, rule, approver, now, pending_ttl)
    except SqlgateError as exc:
        why_not = str(exc)
    if why_not is None and already_approved:
        why_not = f"you have already approved request {request.id}"
    duration = granted_duration(request, rule) if rule is not None else request.duration
    needed = needed_approvals(request, rule)
    may = why_not is None
    return RequestPreview(
        request_id=request.id,
        database=request.database,
        role=request.role,
        rule=request.rule,
        requested=request.duration,
        duration=duration,
        starts_at=now,
        expires_at=now + duration,
        approvals=request.approvals,
        min_approvals=needed,
        completes=may and request.approvals + 1 >= needed,
        may_approve=may,
        why_not=why_not,
        pending_until=request.created_at + pending_ttl if request.status == "pending" else None,
        guardrails=rule.guardrails.model_dump(mode="json") if rule is not None and rule.guardrails else None,
        mask=dict(rule.mask) if rule is not None else {},
    )
