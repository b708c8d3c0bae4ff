"""The single writer of an audit log: queue -> chain -> checkpoints -> one transaction -> sinks.

:class:`BatchWriter` is the half of :class:`~sqlgate.audit.log.AuditLog` that
runs in its writer task: it takes up to ``batch_size`` queued records, chains
them in queue order, adds a signed checkpoint every ``checkpoint_every``
records or ``checkpoint_interval`` (and at close, and after a loss), commits
the batch with the chain's newly signed head in one transaction (the head, and
every checkpoint, also sign the chain ids known to the state database: those
stored with the previous batch's head, and for the head those found in its own
transaction), answers the
callers waiting for it, then hands the batch to the extra sinks. It chains
``YIELD_EVERY`` records at a time and lets the event loop run in between, so
sessions sharing the loop wait a fraction of a millisecond for a batch, not the
whole batch (a thousand records take a few milliseconds). A batch the
store refuses is rolled back out of the chain (no gap), its waiting callers
get :class:`~sqlgate.errors.AuditError`, and its queued records go back to
the front of the queue for a retry with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import ChainedRecord, Chainer, known_chains
from sqlgate.audit.keys import Signer
from sqlgate.audit.sinks import Sink
from sqlgate.audit.sqlite_writer import SqliteBatchWriter
from sqlgate.audit.storage import Head, MakeHead, StoreBatchWriter, last_record, read_heads
from sqlgate.errors import AuditError
from sqlgate.store import StateStore

log = logging.getLogger("sqlgate.audit.log")  # one logger for the whole audit log, writer included

RECORDS_WRITTEN = Counter("sqlgate_audit_records", "Audit records committed to the state database.")
RECORDS_DROPPED = Counter("sqlgate_audit_dropped", "Statement audit records dropped because the queue was full.")
QUEUE_DEPTH = Gauge("sqlgate_audit_queue_depth", "Audit records waiting for the writer.")
SINK_ERRORS = Counter("sqlgate_audit_sink_errors", "Batches an extra sink (file, stdout, OTel) failed to write.")
_RETRY_MAX = 5.0
YIELD_EVERY = 32
"""Records chained between two turns of the event loop (the SQLite writer also yields per INSERT it builds)."""


@dataclass(slots=True)
class Item:
    """A prepared record in the queue; ``done`` is set when a caller waits for its commit."""

    record: dict[str, Any]
    done: asyncio.Future[None] | None = None


class BatchWriter:
    """The writer half of :class:`~sqlgate.audit.log.AuditLog` (which sets up these attributes)."""

    store: StateStore
    database: SqliteBatchWriter | StoreBatchWriter
    signer: Signer
    chain: Chainer
    sinks: list[Sink]
    batch_size: int
    commit_delay: float
    checkpoint_every: int
    checkpoint_interval: float
    dropped: int
    written: int
    known_chains: tuple[str, ...]  # every chain id this replica has seen in the state database (and its own)
    _queue: deque[Item]
    _queued: int
    _wakeup: asyncio.Event
    _hurry: asyncio.Event
    _urgent: int
    _written_at: float
    _room: asyncio.Event
    _since_checkpoint: int
    _checkpoint_at: float
    _drops_unreported: int
    _closing: bool
    _failures: int
    _in_flight: list[Item]
    on_settled: Callable[[int], None] | None

    @property
    def chain_id(self) -> str:
        """The chain id of this replica."""
        return self.chain.chain_id

    async def _resume(self) -> None:
        heads = await read_heads(self.store)
        self.known_chains = tuple(known_chains(self.chain_id, [*self.known_chains, *heads]))
        head = heads.get(self.chain_id)
        last = await last_record(self.store, self.chain_id)
        if head is None and last is None:
            return
        if head is None or last is None or (head.seq, head.hash) != last:
            raise AuditError(
                f"audit chain {self.chain_id}: the stored records and the signed head disagree",
                hint="run `sqlgate audit verify`; to continue on a new chain, set audit.chain_id "
                "or remove data_dir/audit/chain_id",
            )
        self.chain.seq, self.chain.head_hash = head.seq, head.hash

    def _count_lost(self) -> None:
        self.dropped += 1
        self._drops_unreported += 1
        RECORDS_DROPPED.inc()
        self._wakeup.set()  # the next checkpoint records the loss

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    break
                await self._idle()
                if not self._queue and not self._checkpoint_due():
                    continue
            await self._gather()
            QUEUE_DEPTH.set(len(self._queue))
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            self._urgent -= sum(1 for item in batch if item.done is not None)
            if not self._urgent and len(self._queue) < self.batch_size:
                self._hurry.clear()
            self._in_flight = batch
            await self._write(batch)
            self._in_flight = []
        if self._since_checkpoint:
            await self._write([], final=True)

    async def _gather(self) -> None:
        """Let statement records gather for up to ``commit_delay`` since the last write (group commit)."""
        wait = self._written_at + self.commit_delay - time.monotonic()
        if wait <= 0 or self._closing or self._hurry.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), wait)

    async def _idle(self) -> None:
        self._wakeup.clear()
        timeout = None
        if self._since_checkpoint or self._drops_unreported:
            timeout = max(0.0, self._checkpoint_at + self.checkpoint_interval - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout)

    def _checkpoint_due(self) -> bool:
        if self._drops_unreported:
            return True
        return bool(self._since_checkpoint) and time.monotonic() >= self._checkpoint_at + self.checkpoint_interval

    async def _chain_batch(self, batch: list[Item], *, final: bool) -> list[ChainedRecord]:
        records = []
        for position, item in enumerate(batch, 1):
            if position % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # the writer task alone touches the chain: nothing moves under it
            if not item.record:
                continue
            try:
                records.append(self.chain(item.record))
            except Exception as exc:  # a record the encoder cannot take must not stop the writer
                self._unchainable(item, exc)
                continue
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                records.append(self._checkpoint())
        if self._since_checkpoint and (final or self._checkpoint_due()):
            records.append(self._checkpoint())
        return records

    def _unchainable(self, item: Item, exc: Exception) -> None:
        log.error("audit record of type %s could not be encoded and is not stored: %s", item.record.get("type"), exc)
        if item.done is None:
            self._count_lost()
        elif not item.done.done():
            item.done.set_exception(AuditError(f"audit record could not be encoded: {exc}"))

    def _checkpoint(self) -> ChainedRecord:
        record = self.chain.checkpoint(self.signer, dropped=self._drops_unreported, chains=self.known_chains)
        self._since_checkpoint = 0
        self._drops_unreported = 0
        self._checkpoint_at = time.monotonic()
        return record

    async def _write(self, batch: list[Item], *, final: bool = False) -> None:
        mark = self.chain.mark()
        state = (self._since_checkpoint, self._drops_unreported, self._checkpoint_at)
        records = await self._chain_batch(batch, final=final)
        try:
            if records:
                head = await self.database.write(records, self._head_maker())
                self.known_chains = head.chains or self.known_chains
        except Exception as exc:
            self.chain.rollback(mark)
            self._since_checkpoint, self._drops_unreported, self._checkpoint_at = state
            await self._failed(batch, exc)
            return
        self._failures = 0
        self._written_at = time.monotonic()
        self._committed(batch, len(records))
        await self._fan_out(records)

    def _head_maker(self) -> MakeHead:
        """Signs the head as it is now, over the chains known so far and those stored (run in the transaction)."""
        chain_id, signer, known = self.chain_id, self.signer, self.known_chains
        seq, digest = self.chain.mark()

        def make_head(stored: Sequence[str]) -> Head:
            chains = known_chains(chain_id, [*known, *stored])
            signature = signer.sign(chain_id, seq, digest, chains)
            return Head(chain_id, seq, digest, format_time(datetime.now(UTC)), signer.key_id, signature, tuple(chains))

        return make_head

    def _committed(self, batch: list[Item], count: int) -> None:
        self.written += count
        RECORDS_WRITTEN.inc(count)
        settled = 0
        for item in batch:
            if item.done is None:
                settled += 1
            elif not item.done.done():
                item.done.set_result(None)
        QUEUE_DEPTH.set(len(self._queue))
        self._settled(settled)

    def _settled(self, count: int) -> None:
        """``count`` queued statement records are done with (written, or lost): room for as many."""
        self._queued -= count
        self._room.set()
        if self.on_settled is not None and count:
            self.on_settled(count)

    async def _failed(self, batch: list[Item], exc: Exception) -> None:
        """Fail waiting callers (their action must not go on); put queued records back; back off."""
        self._failures += 1
        log.error("audit batch of %d records not stored: %s", len(batch), exc)
        error = AuditError(f"audit record not stored: {exc}")
        for item in reversed(batch):
            if item.done is None:
                self._queue.appendleft(item)
            elif not item.done.done():
                item.done.set_exception(error)
        if self._closing and self._failures >= 3:
            lost = sum(1 for item in self._queue if item.done is None)
            log.error("audit log closing with the state database failing: %d queued records lost", lost)
            self._queue.clear()
            return
        await asyncio.sleep(min(_RETRY_MAX, 0.05 * 2**self._failures))
        with contextlib.suppress(Exception):
            await self._resume()

    async def _fan_out(self, records: list[ChainedRecord]) -> None:
        for sink in self.sinks:
            try:
                await sink.write(records)
            except Exception as exc:
                SINK_ERRORS.inc()
                log.error("audit sink %s failed on %d records: %s", type(sink).__name__, len(records), exc)  # noqa: TRY400 - one line, no traceback
