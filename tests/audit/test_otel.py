"""OpenTelemetry export: optional; a clear ConfigError without the package, log records with it."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from sqlgate.audit.chain import Chainer
from sqlgate.audit.otel import INSTALL_HINT, OtelSink
from sqlgate.audit.pipeline import Pipeline
from sqlgate.errors import ConfigError
from tests.audit.conftest import statement

HAVE_SDK = importlib.util.find_spec("opentelemetry") is not None and (
    importlib.util.find_spec("opentelemetry.sdk") is not None
)


def test_configured_without_the_package_says_what_to_install(monkeypatch):
    for name in ("opentelemetry", "opentelemetry.sdk", "opentelemetry.sdk._logs"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail as if not installed
    with pytest.raises(ConfigError, match="pip install opentelemetry-sdk opentelemetry-exporter-otlp"):
        OtelSink("http://127.0.0.1:4318/v1/logs")
    assert "opentelemetry-exporter-otlp" in INSTALL_HINT


@pytest.mark.skipif(not HAVE_SDK, reason="needs opentelemetry-sdk (pip install opentelemetry-sdk), not a dependency")
async def test_records_become_log_records():
    export = importlib.import_module("opentelemetry.sdk._logs.export")
    exporter_class = getattr(export, "InMemoryLogRecordExporter", None) or export.InMemoryLogExporter
    exporter = exporter_class()
    sink = OtelSink(exporter=exporter)
    chainer = Chainer("r1")
    records = [chainer(Pipeline().prepare(statement(n))) for n in range(3)]
    await sink.write(records)
    await sink.close()
    exported = exporter.get_finished_logs()
    assert len(exported) == 3
    first = exported[0].log_record
    assert first.body == records[0].line()
    assert first.attributes["audit.seq"] == 1
    assert first.attributes["audit.subject"] == "alice"
