"""An in-memory :class:`~sqlgate.audit.events.Auditor` for tests of code that emits events."""

from __future__ import annotations

from sqlgate.audit.events import AuditEvent


class MemoryAuditor:
    """Keeps every event in ``events``, in order; ``types()`` lists their types."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        """Keep ``event``."""
        self.events.append(event)

    def enqueue(self, event: AuditEvent) -> None:
        """Keep ``event``."""
        self.events.append(event)

    async def submit(self, event: AuditEvent) -> None:
        """Keep ``event``."""
        self.events.append(event)

    def types(self) -> list[str]:
        """The types of the events seen so far."""
        return [event.type for event in self.events]
