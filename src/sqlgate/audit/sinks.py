"""Where chained records go besides the state database: a rotating JSONL file, stdout, OpenTelemetry.

Each sink takes whole batches (``await sink.write(records)``) after the batch
is committed to the state database, which stays the record of truth: a
failing extra sink is logged and counted, never allowed to stop the log.
File and stdout writes run in a worker thread so the event loop never waits
on them.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

from sqlgate.audit.chain import ChainedRecord


class Sink(Protocol):
    """A destination for chained records."""

    async def write(self, records: Sequence[ChainedRecord]) -> None:
        """Write one committed batch."""

    async def close(self) -> None:
        """Flush and release what the sink holds."""


class JsonlSink:
    """Appends records as JSON lines to ``path``, rotating by size (``path.1`` is the newest old file)."""

    def __init__(self, path: Path, *, max_bytes: int = 100 * 1024 * 1024, backups: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self._open()

    def _open(self) -> TextIO:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return io.open(fd, "a", encoding="utf-8", newline="\n")  # noqa: UP020 - opening a file descriptor

    async def write(self, records: Sequence[ChainedRecord]) -> None:
        """Append ``records`` (one line each), rotating first when they would not fit."""
        text = "".join(record.line() + "\n" for record in records)
        await asyncio.to_thread(self._append, text)

    def _append(self, text: str) -> None:
        size = self._file.tell()
        if size and size + len(text.encode("utf-8")) > self.max_bytes:
            self._rotate()
        self._file.write(text)
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()

    async def close(self) -> None:
        """Close the file."""
        self._file.close()


class StdoutSink:
    """Writes records as JSON lines to standard output, for log shippers."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def write(self, records: Sequence[ChainedRecord]) -> None:
        """Print ``records``, one line each."""
        text = "".join(record.line() + "\n" for record in records)
        await asyncio.to_thread(self._print, text)

    def _print(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()

    async def close(self) -> None:
        """Flush standard output."""
        (self._stream or sys.stdout).flush()
