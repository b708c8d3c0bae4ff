"""OpenTelemetry traces: spans for login, decide, mint and each statement (optional extra ``sqlgate[otel]``).

Off unless ``tracing.otlp_endpoint`` is set (or a test calls :func:`configure`
with its own exporter): then every span carries what identifies it, never a
secret: ``sqlgate.principal`` (issuer-qualified subject), ``sqlgate.database``,
``sqlgate.lease_id``, ``sqlgate.session_id`` and ``sqlgate.replica``. A span is
named ``sqlgate.login``, ``sqlgate.decide``, ``sqlgate.mint`` or
``sqlgate.statement``; statement spans are recorded when the statement's
audit fields are made, with the statement's measured start and end. When off,
each hook costs one ``is None`` test. ``opentelemetry-sdk`` is imported only when
tracing is configured.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sqlgate.errors import ConfigError
from sqlgate.sessions import LiveSession, current_session

INSTALL_HINT = "pip install 'sqlgate[otel]'"

_tracer: Any = None
_provider: Any = None
_replica = ""


def configure(
    replica: str, *, endpoint: str | None = None, exporter: Any = None, service_name: str = "sqlgate"
) -> None:
    """Start tracing to ``endpoint`` (OTLP over HTTP) or ``exporter`` (spans exported as they end)."""
    global _tracer, _provider, _replica  # one tracer per process, like the SDK's own
    sdk = _import("opentelemetry.sdk.trace")
    export = _import("opentelemetry.sdk.trace.export")
    resources = _import("opentelemetry.sdk.resources")
    resource = resources.Resource.create({"service.name": service_name, "service.instance.id": replica})
    provider = sdk.TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    else:
        otlp = _import("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=endpoint)))
    _provider, _tracer, _replica = provider, provider.get_tracer("sqlgate"), replica


def shutdown() -> None:
    """Flush and stop tracing (spans after this are not recorded)."""
    global _tracer, _provider  # noqa: PLW0603
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    """True while spans are recorded."""
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int | None] | None = None) -> Iterator[Any]:
    """A span around the block (nothing when tracing is off); an exception marks it failed."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=_attributes(attributes or {})) as current:
        yield current


def record_statement(
    protocol: str, outcome: str, duration_ms: float, sqlstate: str | None, session: LiveSession | None = None
) -> None:
    """A ``sqlgate.statement`` span that ended now and lasted ``duration_ms``, in ``session`` (else the current)."""
    if _tracer is None:
        return
    end = time.time_ns()
    given = {"sqlgate.protocol": protocol, "sqlgate.outcome": outcome, "db.sqlstate": sqlstate}
    attributes = _attributes(given, session)
    started = _tracer.start_span("sqlgate.statement", start_time=end - int(duration_ms * 1e6), attributes=attributes)
    started.end(end_time=end)


def _attributes(given: Mapping[str, str | int | None], session: LiveSession | None = None) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {"sqlgate.replica": _replica}
    session = session or current_session.get()
    if session is not None:
        attributes["sqlgate.session_id"] = session.id
        attributes["sqlgate.principal"] = session.principal.key
        attributes["sqlgate.database"] = session.database
        if session.lease_id:
            attributes["sqlgate.lease_id"] = session.lease_id
    attributes.update({key: value for key, value in given.items() if value is not None})
    return attributes


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"tracing is configured but OpenTelemetry is not installed: {INSTALL_HINT}") from exc
