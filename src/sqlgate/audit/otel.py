"""OpenTelemetry log export of audit records, when ``audit.otlp_endpoint`` is set.

``opentelemetry-sdk`` is not a dependency of sqlgate: it is imported only when
the export is configured, and configuring it without the package is a
:class:`~sqlgate.errors.ConfigError` that says what to install. Records are
emitted through the SDK's logging bridge, one log record per audit record,
with the record's JSON line as the body and its index fields as attributes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlgate.audit.chain import ChainedRecord
from sqlgate.errors import ConfigError

INSTALL_HINT = "pip install opentelemetry-sdk opentelemetry-exporter-otlp"


def _import_sdk() -> tuple[Any, Any, Any, Any, Any]:
    try:
        logs = importlib.import_module("opentelemetry.sdk._logs")
        export = importlib.import_module("opentelemetry.sdk._logs.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http._log_exporter")
    except ImportError as exc:
        raise ConfigError(f"audit.otlp_endpoint is set but OpenTelemetry is not installed: {INSTALL_HINT}") from exc
    return (
        logs.LoggerProvider,
        logs.LoggingHandler,
        export.BatchLogRecordProcessor,
        otlp.OTLPLogExporter,
        resources.Resource,
    )


class OtelSink:
    """Emits each record as an OpenTelemetry log record (batched and exported by the SDK)."""

    def __init__(self, endpoint: str | None = None, *, exporter: Any = None) -> None:
        provider_cls, handler_cls, processor_cls, exporter_cls, resource_cls = _import_sdk()
        self._provider = provider_cls(resource=resource_cls.create({"service.name": "sqlgate"}))
        self._provider.add_log_record_processor(processor_cls(exporter or exporter_cls(endpoint=endpoint)))
        self._logger = logging.getLogger(f"sqlgate.audit.otel.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(handler_cls(level=logging.INFO, logger_provider=self._provider))

    async def write(self, records: Sequence[ChainedRecord]) -> None:
        """Hand ``records`` to the SDK, which exports them in the background."""
        for record in records:
            self._logger.info(record.line(), extra=_attributes(record))

    async def close(self) -> None:
        """Export what is pending and stop the SDK's worker."""
        for handler in list(self._logger.handlers):
            self._logger.removeHandler(handler)
        await asyncio.to_thread(self._provider.shutdown)


def _attributes(record: ChainedRecord) -> dict[str, Any]:
    fields = record.fields
    principal = fields.get("principal") or {}
    attributes = {
        "audit.chain": record.chain,
        "audit.seq": record.seq,
        "audit.hash": record.hash,
        "audit.type": fields["type"],
        "audit.outcome": fields["outcome"],
        "audit.subject": principal.get("subject"),
        "audit.database": fields.get("database"),
        "audit.session_id": fields.get("session_id"),
    }
    return {key: value for key, value in attributes.items() if value is not None}
