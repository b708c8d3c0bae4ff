"""Auditing the policy decisions of API callers without a record per request.

The proxy records a decision when a session starts; every API request is its own
short session, so the same allowing decision would be recorded once per statement.
An allowing decision is recorded the first time and again once a minute (or when
anything about it changes: rules, role, source, purpose); every refusal is
recorded. The statements themselves are always recorded, each one.
"""

from __future__ import annotations

import time

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Decision

REPEAT_SECONDS = 60.0
_MAX_ENTRIES = 10_000


class DecisionLog:
    """Records ``policy.decision`` events for the API and MCP."""

    def __init__(self, audit: AuditLog | AuditProcess) -> None:
        self._audit = audit
        self._recent: dict[tuple[object, ...], float] = {}

    async def record(self, principal: Principal, decision: Decision, purpose: str) -> None:
        """Record ``decision`` unless the same allow was recorded within the last minute."""
        if decision.allowed:
            key = (principal.key, decision.database, decision.role, decision.matched_rules, principal.source, purpose)
            now = time.monotonic()
            last = self._recent.get(key)
            if last is not None and now - last < REPEAT_SECONDS:
                return
            if len(self._recent) >= _MAX_ENTRIES:
                self._recent.clear()
            self._recent[key] = now
        await self._audit.submit(
            AuditEvent(
                type="policy.decision",
                principal=PrincipalRef.of(principal),
                source=principal.source,
                database=decision.database,
                outcome="allowed" if decision.allowed else "denied",
                reason=decision.reason,
                data={
                    "protocol": "http",
                    "purpose": purpose,
                    "role": decision.role,
                    "rules": list(decision.matched_rules),
                    "outcome": decision.outcome,
                },
            )
        )
