"""OpenTelemetry log export of audit records, when ``audit.otlp_endpoint`` is set.

``opentelemetry-sdk`` is not a dependency of sqlgate: it is imported only when
the export is configured, and configuring it without the package is a
:class:`~sqlgate.errors.ConfigError` that says what to install. Records are
emitted through the SDK's Logs API (``opentelemetry-sdk`` 1.35 or newer), one
log record per audit record, with the record's JSON line as the body and its
index fields as attributes.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Sequence
from typing import Any

from sqlgate.audit.chain import ChainedRecord
from sqlgate.errors import ConfigError

INSTALL_HINT = "pip install opentelemetry-sdk opentelemetry-exporter-otlp"


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"audit.otlp_endpoint is set but OpenTelemetry is not installed: {INSTALL_HINT}") from exc


class OtelSink:
    """Emits each record as an OpenTelemetry log record (batched and exported by the SDK)."""

    def __init__(self, endpoint: str | None = None, *, exporter: Any = None) -> None:
        logs = _import("opentelemetry.sdk._logs")
        export = _import("opentelemetry.sdk._logs.export")
        resources = _import("opentelemetry.sdk.resources")
        if exporter is None:
            exporter = _import("opentelemetry.exporter.otlp.proto.http._log_exporter").OTLPLogExporter(
                endpoint=endpoint
            )
        self._provider = logs.LoggerProvider(resource=resources.Resource.create({"service.name": "sqlgate"}))
        self._provider.add_log_record_processor(export.BatchLogRecordProcessor(exporter))
        api = _import("opentelemetry._logs")
        self._record = api.LogRecord
        self._info = api.SeverityNumber.INFO
        self._logger = self._provider.get_logger("sqlgate.audit")

    async def write(self, records: Sequence[ChainedRecord]) -> None:
        """Hand ``records`` to the SDK, which exports them in the background."""
        now = time.time_ns()
        for record in records:
            self._logger.emit(
                self._record(
                    timestamp=now,
                    severity_text="INFO",
                    severity_number=self._info,
                    body=record.line(),
                    attributes=_attributes(record),
                )
            )

    async def close(self) -> None:
        """Export what is pending and stop the SDK's worker."""
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
