"""The one schema of every audit record, and the interface that records them."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from sqlgate.identity.principal import Principal

EventType = Literal[
    "auth.success",
    "auth.failure",
    "policy.decision",
    "lease.mint",
    "lease.reuse",
    "lease.renew",
    "lease.revoke",
    "lease.reap",
    "admin.rotate",
    "session.start",
    "session.end",
    "statement",
    "request.create",
    "request.approve",
    "request.deny",
    "request.expire",
    "config.reload",
    "audit.checkpoint",
]

# Events that must be durable before the action they record is acknowledged.
SECURITY_PREFIXES = ("auth.", "lease.", "admin.", "request.", "config.")

# `would_deny`: a guardrail in `mode: audit` would have refused the statement; it ran, and this records it.
# `client_gone`: the statement reached the server and its client left before the answer was complete;
# the record holds what is known (rows so far, the server's CommandComplete or error if it came after).
Outcome = Literal["success", "failure", "denied", "allowed", "error", "info", "would_deny", "client_gone"]


_EVENT_PREFIX = secrets.token_hex(8)
_event_numbers = itertools.count()


def next_event_id() -> str:
    """A unique event id: a random per-process prefix and a counter (32 hex digits, no system call)."""
    return f"{_EVENT_PREFIX}{next(_event_numbers):016x}"


class PrincipalRef(BaseModel):
    """Who an event is about: enough to search by, nothing secret."""

    model_config = ConfigDict(frozen=True)

    subject: str
    issuer: str
    groups: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, principal: Principal | None) -> PrincipalRef | None:
        """The reference for ``principal`` (None stays None)."""
        if principal is None:
            return None
        return cls(subject=principal.subject, issuer=principal.issuer, groups=list(principal.groups))


class AuditEvent(BaseModel):
    """One thing that happened. ``chain``, ``seq``, ``prev_hash`` and ``hash`` are set by the log."""

    model_config = ConfigDict(frozen=True)

    type: EventType
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    id: str = Field(default_factory=next_event_id)
    principal: PrincipalRef | None = None
    source: str | None = None
    database: str | None = None
    db_login: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    outcome: Outcome = "info"
    reason: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_security(self) -> bool:
        """True when the event must be committed before the action is acknowledged."""
        return is_security_type(self.type)


def is_security_type(event_type: str) -> bool:
    """True for the types of events that must be committed before the action is acknowledged."""
    return event_type.startswith(SECURITY_PREFIXES)


class Auditor(Protocol):
    """Where packages send events. Implemented by :mod:`sqlgate.audit`."""

    async def record(self, event: AuditEvent) -> None:
        """Record ``event``; security events are durable when this returns."""

    def enqueue(self, event: AuditEvent) -> None:
        """Queue a statement-level event for a batched write; never waits on disk."""


class BackpressureAuditor(Auditor, Protocol):
    """An Auditor whose bounded queue can also be waited on: what hot paths should call.

    ``await submit(event)`` returns at once while the queue has room and waits
    for room when it is full (``audit.on_full: block``), so backpressure
    reaches the client; ``enqueue`` cannot wait and raises
    :class:`~sqlgate.errors.AuditQueueFull` instead. Implemented by
    :class:`sqlgate.audit.log.AuditLog` and :class:`sqlgate.audit.testing.MemoryAuditor`.
    """

    async def submit(self, event: AuditEvent) -> None:
        """Queue a statement-level event; waits only while the queue is full."""
