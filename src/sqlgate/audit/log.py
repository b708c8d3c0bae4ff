"""AuditLog: the :class:`~sqlgate.audit.events.Auditor` that chains, signs and stores records.

One writer task owns the chain. Every event — awaited or queued — goes into
one FIFO queue, already redacted; the writer takes up to ``batch_size`` items
(statement records wait up to ``commit_delay`` for company, so a busy gateway
writes a few large transactions rather than many small ones; a record someone
waits for is written at once, together with everything queued before it),
chains them in queue order, adds signed checkpoints when due, and commits the
batch and the chain's signed head in one transaction (group commit). So there
is one sequencer, and the chain order is the order events were handed over.

How callers hand events over:

- ``await log.record(event)`` — for security events (auth, lease, admin,
  request, config). Returns once the batch holding the event is committed;
  raises :class:`~sqlgate.errors.AuditError` if it could not be, so the action
  must not go on. Never dropped, never bounded by the queue.
- ``await log.submit(event)`` — **the hot path** for statement, session and
  decision events. When the queue has room it returns without suspending (no
  disk wait); when it is full it waits for room (``on_full: block``, the
  default: backpressure reaches the client through the relay) or drops the
  event (``on_full: drop``).
- ``log.enqueue(event)`` — the same for code that cannot await. When full:
  ``drop`` mode drops; ``block`` mode raises
  :class:`~sqlgate.errors.AuditQueueFull` (it cannot wait, and an unaudited
  statement must not run), so prefer ``submit``.

A security record waits behind the statement records queued before it (at
most ``queue_size``, written ``batch_size`` per transaction): that is the price
of one order for both paths.

All methods are called from the event loop's thread.

A dropped event is never silent: it is counted (``dropped``, the
``sqlgate_audit_dropped_total`` metric), logged (at most every 10 s, with the
running total), and the next checkpoint written into the chain carries the
number lost since the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Literal, Self

from sqlgate.audit.chain import Chainer
from sqlgate.audit.events import AuditEvent
from sqlgate.audit.handover import BoundedHandOver
from sqlgate.audit.keys import Signer, signing_key_path
from sqlgate.audit.otel import OtelSink
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.rows import StatementRow, expand
from sqlgate.audit.sinks import JsonlSink, Sink, StdoutSink
from sqlgate.audit.sqlite_writer import SqliteBatchWriter
from sqlgate.audit.storage import StoreBatchWriter, chain_id_for
from sqlgate.audit.trust import check_signer_trusted
from sqlgate.audit.writer import BatchWriter, Item
from sqlgate.config import Settings
from sqlgate.errors import AuditError
from sqlgate.store import StateStore

log = logging.getLogger(__name__)

Record = dict[str, Any]


class AuditLog(BoundedHandOver, BatchWriter):
    """The audit log of one replica: its own chain, written into the shared state database."""

    def __init__(  # noqa: PLR0913 - every option has a sensible default
        self,
        store: StateStore,
        signer: Signer,
        chain_id: str,
        *,
        sinks: Sequence[Sink] = (),
        queue_size: int = 10_000,
        on_full: Literal["block", "drop"] = "block",
        batch_size: int = 1000,
        commit_delay: timedelta = timedelta(0),
        checkpoint_every: int = 1000,
        checkpoint_interval: timedelta = timedelta(seconds=60),
        pipeline: Pipeline | None = None,
        on_settled: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.database = SqliteBatchWriter.for_store(store) or StoreBatchWriter(store)
        self.signer = signer
        self.chain = Chainer(chain_id)
        self.sinks = list(sinks)
        self.queue_size = queue_size
        self.on_full = on_full
        self.batch_size = batch_size
        self.commit_delay = commit_delay.total_seconds()
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval.total_seconds()
        self.pipeline = pipeline or Pipeline()
        self.on_settled = on_settled
        self.dropped = 0
        self.written = 0
        self.known_chains = (chain_id,)
        self._queue: deque[Item] = deque()
        self._contexts: dict[int, Record] = {}
        self._queued = 0  # items in the queue that count against queue_size
        self._wakeup = asyncio.Event()
        self._hurry = asyncio.Event()  # a caller waits for a commit, or a full batch is queued
        self._urgent = 0  # queued items a caller waits for
        self._written_at = 0.0
        self._room = asyncio.Event()
        self._room.set()
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()
        self._drops_unreported = 0
        self._drop_logged_at = 0.0
        self._writer: asyncio.Task[None] | None = None
        self._in_flight: list[Item] = []
        self._closing = False
        self._failures = 0

    @classmethod
    def from_settings(cls, settings: Settings, store: StateStore) -> AuditLog:
        """The log ``settings`` describe: key, chain id, extra sinks, queue and checkpoint options."""
        audit = settings.audit
        key_path = signing_key_path(settings.data_dir, audit.signing_key_file)
        signer = Signer.load_or_create(key_path)
        check_signer_trusted(signer, audit.trusted_keys, key_path)
        sinks: list[Sink] = []
        if audit.otlp_endpoint:
            sinks.append(OtelSink(audit.otlp_endpoint))
        if audit.jsonl_file is not None:
            sinks.append(JsonlSink(audit.jsonl_file, max_bytes=audit.jsonl_max_bytes, backups=audit.jsonl_backups))
        if audit.stdout:
            sinks.append(StdoutSink())
        return cls(
            store,
            signer,
            chain_id_for(settings.data_dir, audit.chain_id),
            sinks=sinks,
            queue_size=audit.queue_size,
            on_full=audit.on_full,
            batch_size=audit.batch_size,
            commit_delay=timedelta(milliseconds=audit.commit_delay_ms),
            checkpoint_every=audit.checkpoint_every,
            checkpoint_interval=audit.checkpoint_interval,
        )

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Resume the chain from the store and start the writer."""
        if self._writer is not None:
            return
        await self._resume()
        self._writer = asyncio.create_task(self._run(), name=f"audit-writer-{self.chain_id}")
        self._writer.add_done_callback(self._writer_ended)

    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """If the writer ever dies, nobody may wait for it: fail every waiter and refuse new events."""
        if task.cancelled() or task.exception() is None:
            return
        log.critical("the audit writer stopped: %r; the audit log is closed", task.exception())
        self._closing = True
        self._room.set()
        error = AuditError("the audit writer stopped; see the log")
        for item in [*self._in_flight, *self._queue]:
            if item.done is not None and not item.done.done():
                item.done.set_exception(error)
        self._queue.clear()

    async def aclose(self) -> None:
        """Write everything queued, sign a final checkpoint, stop the writer, close the sinks."""
        if self._closing:
            return
        if self._writer is None and self._queue:
            await self.start()  # write what was handed over before the log was started
        self._closing = True
        self._room.set()  # waiters in submit() see the log closing
        self._wakeup.set()
        self._hurry.set()
        if self._writer is not None:
            with contextlib.suppress(Exception):  # a dead writer was already logged and failed its waiters
                await self._writer
        with contextlib.suppress(Exception):
            await self.database.close()
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- handing events over ----------------------------------------------

    async def record(self, event: AuditEvent | Record) -> None:
        """Record ``event`` and return once it is committed (raises AuditError if it cannot be)."""
        await asyncio.shield(self.record_nowait(event))

    def record_nowait(self, event: AuditEvent | Record) -> asyncio.Future[None]:
        """Queue ``event`` as :meth:`record` does, now; the future its commit resolves (or fails)."""
        self._check_open()
        if self._writer is None:
            raise AuditError("the audit log is not started (await AuditLog.start() first)")
        kind = event.type if isinstance(event, AuditEvent) else event.get("type")
        record = self._prepare(event)
        if record is None:
            raise AuditError(f"audit event {kind} could not be prepared; see the log")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(Item(record, done), counted=False)
        return done

    async def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        await asyncio.shield(self.flush_nowait())

    def flush_nowait(self) -> asyncio.Future[None]:
        """A barrier behind everything handed over so far: the future their commit resolves."""
        self._check_open()
        if self._writer is None:
            raise AuditError("the audit log is not started (await AuditLog.start() first)")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(Item({}, done), counted=False)  # an empty record is a barrier, not written
        return done

    def count_lost(self, count: int) -> None:
        """``count`` statement records were lost before they reached this log (reported by the next checkpoint)."""
        for _ in range(count):
            self._count_lost()

    def _prepare(self, event: AuditEvent | Record) -> Record | None:
        """``event`` through the processors; None (logged) when it cannot be made a record."""
        try:
            if isinstance(event, AuditEvent):
                return self.pipeline.prepare(event)
            return self.pipeline.process(event)
        except Exception as exc:  # e.g. data nested past the recursion limit
            kind = event.type if isinstance(event, AuditEvent) else event.get("type")
            log.error("audit event %s could not be prepared: %s", kind, type(exc).__name__)  # noqa: TRY400 - the traceback could show the unredacted event
            return None

    def _hand_over(self, event: AuditEvent | Record, *, counted: bool) -> None:
        record = self._prepare(event)
        if record is None:
            self._count_lost()
            if counted and self.on_settled is not None:
                self.on_settled(1)  # never queued, but the one who handed it over counts it until told
            return
        self._push(Item(record), counted=counted)

    def _hand_over_row(self, row: StatementRow) -> None:
        self._hand_over(expand(self._contexts.get(row[0]), row), counted=True)

    def _context_opened(self, key: int, fields: Record) -> None:
        """Nothing to do: rows are expanded at hand-over, in this process."""

    def _context_closed(self, key: int, fields: Record) -> None:
        """Nothing to do: rows are expanded at hand-over, in this process."""

    def _check_open(self) -> None:
        if self._closing:
            raise AuditError("the audit log is closed")

    def _push(self, item: Item, *, counted: bool) -> None:
        self._queue.append(item)
        if counted:
            self._queued += 1
        if item.done is not None:
            self._urgent += 1
            self._hurry.set()
        elif len(self._queue) >= self.batch_size:
            self._hurry.set()
        self._wakeup.set()

    def _count_dropped(self) -> None:
        self._count_lost()  # also wakes the writer: the next checkpoint records the loss
