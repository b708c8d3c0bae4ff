"""The audit events the broker emits: one shape for every lease event, never a secret in it."""

from __future__ import annotations

from sqlgate.audit.events import AuditEvent, EventType, Outcome, PrincipalRef
from sqlgate.broker.lease import Lease
from sqlgate.identity.principal import Principal


def lease_event(
    event_type: EventType,
    lease: Lease,
    outcome: Outcome,
    *,
    principal: Principal | None = None,
    reason: str | None = None,
) -> AuditEvent:
    """``lease.mint``/``reuse``/``renew``/``revoke``/``reap`` for ``lease`` (the principal's groups when known)."""
    ref = PrincipalRef.of(principal) or PrincipalRef(subject=lease.subject, issuer=lease.issuer)
    return AuditEvent(
        type=event_type,
        principal=ref,
        source=principal.source if principal else None,
        database=lease.database,
        db_login=lease.db_login,
        outcome=outcome,
        reason=reason,
        data={
            "lease_id": lease.id,
            "privilege": lease.privilege,
            "db_role": lease.db_role,
            "state": lease.state,
            "expires_at": lease.expires_at.isoformat(),
        },
    )
