"""Audit: every decision and statement, hash-chained, signed, durable and searchable.

The pipeline, each step its own module: events (:mod:`.events`, the schema) ->
redaction (:mod:`.redact`) -> enrichment (:mod:`.pipeline`) -> the hash chain
and signed checkpoints (:mod:`.chain`, :mod:`.keys`, canonical JSON in
:mod:`.canonical`) -> sinks: the state database (:mod:`.storage`,
:mod:`.tables`) always, a rotating JSONL file and stdout (:mod:`.sinks`),
OpenTelemetry (:mod:`.otel`). :class:`AuditLog` (:mod:`.log`) runs it, taking
events by the rules of :mod:`.handover`, in the gateway's process or
(``audit.writer: process``) in a writer process of its own (:mod:`.process`,
:mod:`.process_main`), its storage thread at a lower CPU priority (:mod:`.priority`);
:func:`verify` (:mod:`.verify`) proves
it, against pinned keys (:mod:`.trust`) and heads exported earlier; :func:`search`
(:mod:`.search`) reads it.
"""

from sqlgate.audit.events import AuditEvent, Auditor, BackpressureAuditor, EventType, PrincipalRef
from sqlgate.audit.log import AuditLog
from sqlgate.audit.search import Page, search
from sqlgate.audit.verify import EXIT_CODES, VerifyReport, verify, verify_lines

__all__ = [
    "EXIT_CODES",
    "AuditEvent",
    "AuditLog",
    "Auditor",
    "BackpressureAuditor",
    "EventType",
    "Page",
    "PrincipalRef",
    "VerifyReport",
    "search",
    "verify",
    "verify_lines",
]
