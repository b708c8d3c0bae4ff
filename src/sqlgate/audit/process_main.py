"""The audit writer process, ``python -m sqlgate.audit.process_main``, started by :class:`.process.AuditProcess`.

Reads the settings (one message), opens the state database, starts an
:class:`~sqlgate.audit.log.AuditLog` (which resumes the chain) and answers
``("ready", chain_id)`` or ``("failed", message, hint)``. Then, for each message
on stdin: ``events`` are handed to the log in order (a waited-for one answered
with ``done`` once committed, or with why not; statement rows expanded in the
contexts the gateway opened and closed among them), ``lost`` is counted into the
next checkpoint, ``close`` (or the end of stdin, when the gateway died) closes
the log: everything queued is written with a final checkpoint. Each committed
batch is reported as ``("settled", statement records)``, which frees room in
the gateway's queue. After a small read the child naps (2 ms, or
``audit.commit_delay_ms`` if less) so a quiet gateway's records arrive in batches.

SIGINT and SIGTERM, which a terminal or service manager sends to the whole
process group, are ignored: the gateway decides when its audit log closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from functools import partial
from typing import Any

from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import CONTEXT, FORGET, frame, read_frame, take_frames
from sqlgate.config import Settings
from sqlgate.errors import AuditError, SqlgateError
from sqlgate.store import StateStore

log = logging.getLogger("sqlgate.audit.log")
READ_SIZE = 1 << 20
SMALL_READ = 1 << 16  # a read smaller than this means a quiet gateway: nap before the next
MAX_NAP_MS = 2  # at most; audit.commit_delay_ms 0 means no nap


class Child:
    """The child's side of the pipe: messages in, the log's answers out."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.WriteTransport, pipe: asyncio.ReadTransport | None = None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.pipe = pipe  # stdin's transport: not read while the child naps, so writes into it wake nobody

    def send(self, *message: Any) -> None:
        """One message to the gateway."""
        if not self.writer.is_closing():
            self.writer.write(frame(message))

    async def run(self) -> int:
        """Serve until told to close or the gateway goes; the exit status."""
        raw = await read_frame(self.reader)
        if raw is None:
            return 1
        settings = Settings.model_validate_json(raw)
        logging.basicConfig(
            level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s [audit writer] %(message)s"
        )
        logging.getLogger("alembic").setLevel(logging.WARNING)  # the gateway has migrated the store already
        try:
            store = await StateStore.open(settings.state_url())
        except SqlgateError as exc:
            self.send("failed", exc.message, exc.hint)
            return 1
        try:
            return await self._serve(settings, store)
        finally:
            await store.close()

    async def _serve(self, settings: Settings, store: StateStore) -> int:
        audit = AuditLog.from_settings(settings, store)
        audit.on_settled = partial(self.send, "settled")
        try:
            await audit.start()
        except SqlgateError as exc:
            self.send("failed", exc.message, exc.hint)
            return 1
        self.send("ready", audit.chain_id)
        try:
            await self._relay(audit, min(settings.audit.commit_delay_ms, MAX_NAP_MS) / 1000)
        except AuditError as exc:  # the log's writer stopped: the gateway restarts us
            log.critical("audit writer process stopping: %s", exc)
            return 1
        finally:
            await audit.aclose()
        return 0

    async def _relay(self, audit: AuditLog, nap: float) -> None:
        """Hand every message to the log until ``close`` or the end of input.

        After a small read the child waits ``nap`` seconds before it reads again, so a
        quiet gateway's records come in batches rather than waking this process (and
        taking a CPU from the relay) once per statement; the records wait in the pipe,
        which outlives the gateway. Under load every read is large and there is no nap.
        """
        pending = bytearray()
        while chunk := await self.reader.read(READ_SIZE):
            pending += chunk
            for message in take_frames(pending):
                if message[0] == "close":
                    return
                self._handle(audit, message)
            if nap and len(chunk) < SMALL_READ:
                await self._nap(nap)

    async def _nap(self, seconds: float) -> None:
        if self.pipe is not None:
            self.pipe.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if self.pipe is not None:
                self.pipe.resume_reading()

    def _handle(self, audit: AuditLog, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "lost":
            audit.count_lost(message[1])
            return
        for wait_id, record in message[1]:
            if wait_id == 0:
                if type(record) is tuple:
                    audit.enqueue_statement(record)
                else:
                    audit.enqueue(record)
                continue
            if wait_id == CONTEXT:
                audit.open_context(record[1], key=record[0])
                continue
            if wait_id == FORGET:
                audit.close_context(record)
                continue
            try:
                done = audit.flush_nowait() if record is None else audit.record_nowait(record)
            except AuditError as exc:
                self.send("done", wait_id, exc.message)
                continue
            done.add_done_callback(partial(self._answer, wait_id))

    def _answer(self, wait_id: int, done: asyncio.Future[None]) -> None:
        error = AuditError("cancelled") if done.cancelled() else done.exception()
        reason = None if error is None else getattr(error, "message", None) or str(error) or type(error).__name__
        self.send("done", wait_id, reason)


async def main() -> int:
    """Connect stdin and stdout to the loop and serve."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31)
    pipe, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    try:
        return await Child(reader, writer, pipe).run()
    finally:
        for _ in range(100):  # let the last answers reach the gateway
            if not writer.get_write_buffer_size():
                break
            await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            writer.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import uvloop  # optional speed-up (absent on Windows), as for the gateway
    except ImportError:
        sys.exit(asyncio.run(main()))
    sys.exit(uvloop.run(main()))
