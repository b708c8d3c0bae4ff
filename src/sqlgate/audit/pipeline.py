"""The processor pipeline: event -> record dict -> redact -> enrich -> chain -> sinks.

A processor is a plain callable that takes a record dict and returns it (or a
new one); each is small and tested alone. :func:`to_record` turns an
:class:`~sqlgate.audit.events.AuditEvent` into the record dict the processors
share. Redaction and enrichment run when an event is handed over, so no secret
waits in a queue; the chain step (:class:`~sqlgate.audit.chain.Chainer`) runs
in the log's single writer, which hands chained records to the sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import new_record, principal_record
from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.redact import redact

Processor = Callable[[dict[str, Any]], dict[str, Any]]

# The trace id of the request being served; code that knows it (the API, the proxy) sets it.
current_trace_id: ContextVar[str | None] = ContextVar("sqlgate_trace_id", default=None)


def to_record(event: AuditEvent) -> dict[str, Any]:
    """The record dict of ``event`` (chain fields still empty), keys in canonical order."""
    principal = event.principal
    if principal is not None and type(principal) is not PrincipalRef and isinstance(principal, Mapping):
        principal = PrincipalRef.model_validate(principal)  # an event built with model_construct(principal={...})
    return new_record(
        event.type,
        format_time(event.time),
        data=event.data,  # redaction makes the copy
        database=event.database,
        db_login=event.db_login,
        id=event.id,
        outcome=event.outcome,
        principal=None if principal is None else principal_record(principal),
        reason=event.reason,
        session_id=event.session_id,
        source=event.source,
        trace_id=event.trace_id,
    )


def enrich(record: dict[str, Any]) -> dict[str, Any]:
    """Processor: fill ``trace_id`` from :data:`current_trace_id` when the event named none."""
    if record.get("trace_id") is None:
        record["trace_id"] = current_trace_id.get()
    return record


DEFAULT_PROCESSORS: tuple[Processor, ...] = (redact, enrich)


class Pipeline:
    """The processors every event goes through before it is queued for the chain.

    ``prepare`` runs in the caller's context (so :data:`current_trace_id` is the
    caller's); the chain step runs later, in the one writer task, in queue order.
    """

    def __init__(self, processors: Sequence[Processor] = DEFAULT_PROCESSORS) -> None:
        self.processors = tuple(processors)

    def prepare(self, event: AuditEvent) -> dict[str, Any]:
        """``event`` as a record dict, through every processor."""
        return self.process(to_record(event))

    def process(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record dict (from :func:`to_record` or :func:`~sqlgate.audit.chain.new_record`) through every processor."""
        for processor in self.processors:
            record = processor(record)
        return record
