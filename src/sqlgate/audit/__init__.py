"""Audit: every decision and statement, hash-chained, signed, durable and searchable."""

from sqlgate.audit.events import AuditEvent, Auditor, EventType, PrincipalRef

__all__ = ["AuditEvent", "Auditor", "EventType", "PrincipalRef"]
