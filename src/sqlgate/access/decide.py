"""Step two for every front end: policy's decision for a verified caller, audited, or the refusal to send.

A refusal names the rule that decided (``error.rule``) and says what to do:
ask for approval (ApprovalRequired) or see why (AccessDenied). The decision is
recorded as ``policy.decision`` with the protocol and purpose. A wire session
records its decision once, at login; an HTTP or MCP caller, whose every request
is a short session, gets an allowing decision recorded the first time and again
once a minute (or when anything about it changes); every refusal is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from sqlgate.access.authenticate import WIRE_PROTOCOLS
from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.errors import AccessDenied, ApprovalRequired, IdentityError
from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Decision


def requested_role(principal: Principal, user: str, roles: Mapping[str, str], *, quote: str = "'") -> str | None:
    """The privilege level a wire login's user name asks for: None when it names the caller (policy picks).

    A client's user is the caller's own name (subject, name, email or its local part), a
    privilege level of the database (``read``), or that level's database role; anything
    else is an IdentityError, so one token cannot log in under another person's name.
    """
    names = {principal.subject, principal.name, principal.email or "", ""}
    if principal.email:
        names.add(principal.email.split("@", 1)[0])
    if user in names:
        return None
    if user in roles:
        return user
    for privilege, group in roles.items():
        if user == group:
            return privilege
    raise IdentityError(
        f"user {quote}{user}{quote} does not match the token's identity ({principal.subject})",
        hint="use your own user name, or a role name such as " + (", ".join(sorted(roles)) or "read"),
    )


REPEAT_SECONDS = 60.0
_MAX_ENTRIES = 10_000
DecideWithGrants = Callable[[Principal, str, str | None], Awaitable[Decision]]


class Decisions:
    """Policy decisions for every front end (the caller's approved grants counted), audited."""

    def __init__(self, decide: DecideWithGrants, audit: AuditLog | AuditProcess) -> None:
        self._decide = decide
        self._audit = audit
        self._recent: dict[tuple[object, ...], float] = {}

    async def authorize(
        self, principal: Principal, database: str, role: str | None, *, protocol: str, purpose: str
    ) -> Decision:
        """The allowing decision, or ApprovalRequired / AccessDenied naming the rule (recorded either way)."""
        decision = await self._decide(principal, database, role)
        await self.record(principal, decision, protocol=protocol, purpose=purpose)
        refusal = refusal_of(decision)
        if refusal is not None:
            raise refusal
        return decision

    async def record(self, principal: Principal, decision: Decision, *, protocol: str, purpose: str) -> None:
        """Record ``decision`` (an allow an HTTP caller got within the last minute is not repeated)."""
        wire = protocol in WIRE_PROTOCOLS
        if decision.allowed and not wire and self._recently(principal, decision, protocol, purpose):
            return
        await self._audit.submit(
            AuditEvent(
                type="policy.decision",
                principal=PrincipalRef.of(principal),
                source=principal.source,
                database=decision.database,
                outcome="allowed" if decision.allowed else "denied",
                reason=decision.reason,
                data={
                    "protocol": protocol,
                    "purpose": purpose,
                    "role": decision.role,
                    "rules": list(decision.matched_rules),
                    "outcome": decision.outcome,
                },
            )
        )

    def _recently(self, principal: Principal, decision: Decision, protocol: str, purpose: str) -> bool:
        key: tuple[object, ...] = (principal.key, decision.database, decision.role, decision.matched_rules)
        key += (principal.source, protocol, purpose)
        now = time.monotonic()
        last = self._recent.get(key)
        if last is not None and now - last < REPEAT_SECONDS:
            return True
        if len(self._recent) >= _MAX_ENTRIES:
            self._recent.clear()
        self._recent[key] = now
        return False


def refusal_of(decision: Decision) -> AccessDenied | None:
    """The error a caller gets for a decision that does not allow it now (None when it does)."""
    database = decision.database
    if decision.outcome == "needs_approval":
        error: AccessDenied = ApprovalRequired(
            decision.reason or f"role {decision.role} on {database} needs an approved access request",
            hint=f"ask for it: sqlgate request {database} --role {decision.role} --reason '...'",
        )
    elif not decision.allowed or decision.role is None or decision.ttl is None:
        error = AccessDenied(
            decision.reason or f"no rule grants access to {database}",
            hint=f"see why: sqlgate policy explain --db {database}",
        )
    else:
        return None
    error.rule = decision.matched_rules[0] if decision.matched_rules else None  # type: ignore[attr-defined]
    return error
