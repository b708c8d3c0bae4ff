"""How events are handed to an audit log, shared by :class:`.log.AuditLog` and :class:`.process.AuditProcess`.

Security events are never bounded. Statement records count against
``queue_size`` until the log settles them; when the queue is full, ``submit``
waits for room (``on_full: block``) or drops (``drop``), and ``enqueue``, which
cannot wait, drops or raises :class:`~sqlgate.errors.AuditQueueFull`. A drop is
counted by the log (it reaches the next checkpoint) and logged at most every 10 s.

Statement records may also come as rows (:mod:`sqlgate.audit.rows`): a session
registers its fixed fields once (:meth:`BoundedHandOver.open_context`), hands
each statement over as a tuple (:meth:`BoundedHandOver.enqueue_statement`,
bounded like ``enqueue``) and closes the context when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import Any, Literal

from sqlgate.audit.events import AuditEvent, is_security_type
from sqlgate.audit.rows import StatementRow, new_context_key
from sqlgate.errors import AuditQueueFull

log = logging.getLogger("sqlgate.audit.log")

Record = dict[str, Any]
_DROP_LOG_EVERY = 10.0


def is_security(event: AuditEvent | Record) -> bool:
    """True when ``event`` (an AuditEvent or a record dict) is a security event."""
    if isinstance(event, AuditEvent):
        return event.is_security
    return is_security_type(str(event["type"]))


class BoundedHandOver(ABC):
    """``submit`` and ``enqueue`` over a log's own ``_hand_over``, ``_count_dropped`` and ``_check_open``."""

    queue_size: int
    on_full: Literal["block", "drop"]
    dropped: int
    _queued: int  # statement records handed over and not yet settled
    _contexts: dict[int, Record]  # open contexts of statement rows, by key
    _room: asyncio.Event
    _drop_logged_at: float

    @abstractmethod
    def _check_open(self) -> None:
        """Raise AuditError when the log no longer takes events."""

    @abstractmethod
    def _hand_over(self, event: AuditEvent | Record, *, counted: bool) -> None:
        """Queue ``event`` for writing; ``counted``: it holds a place in ``queue_size`` until settled."""

    @abstractmethod
    def _hand_over_row(self, row: StatementRow) -> None:
        """Queue a statement row (it holds a place in ``queue_size`` until settled)."""

    @abstractmethod
    def _count_dropped(self) -> None:
        """Count one dropped statement record (the next checkpoint reports it)."""

    async def submit(self, event: AuditEvent | Record) -> None:
        """Queue ``event`` for a batched write; waits only while the queue is full (``block`` mode).

        ``event`` may also be a record dict made by :func:`~sqlgate.audit.chain.new_record`:
        the hot path's shortcut past building an :class:`AuditEvent` per statement.
        """
        if is_security(event):
            self._hand_over(event, counted=False)
        elif await self._room_for_one():
            self._hand_over(event, counted=True)

    def enqueue(self, event: AuditEvent | Record) -> None:
        """Queue ``event`` (or a record dict, as for :meth:`submit`) without waiting.

        When the queue is full: drop (``drop``) or raise AuditQueueFull (``block``).
        """
        self._check_open()
        if is_security(event):
            self._hand_over(event, counted=False)
        elif self._room_now():
            self._hand_over(event, counted=True)

    # -- statement rows ---------------------------------------------------------

    def open_context(self, fields: Record, key: int | None = None) -> int:
        """Register a session's fixed record fields (:func:`~sqlgate.audit.rows.session_context`); its key.

        ``key``: the key another process gave it (the writer process adopts its gateway's contexts).
        """
        key = new_context_key() if key is None else key
        self._contexts[key] = fields
        self._context_opened(key, fields)
        return key

    def close_context(self, key: int) -> None:
        """The session ended: rows handed over before this keep their context; none may follow."""
        fields = self._contexts.pop(key, None)
        if fields is not None:
            self._context_closed(key, fields)

    def enqueue_statement(self, row: StatementRow) -> None:
        """Queue a statement row (:func:`~sqlgate.audit.rows.statement_row`) as :meth:`enqueue` queues a record."""
        self._check_open()
        if self._room_now():
            self._hand_over_row(row)

    async def submit_statement(self, row: StatementRow) -> None:
        """Queue a statement row as :meth:`submit` queues a record: waiting for room in ``block`` mode."""
        if await self._room_for_one():
            self._hand_over_row(row)

    @abstractmethod
    def _context_opened(self, key: int, fields: Record) -> None:
        """A context was opened (the writer process's handle tells its child)."""

    @abstractmethod
    def _context_closed(self, key: int, fields: Record) -> None:
        """A context was closed."""

    # -- room -------------------------------------------------------------------

    def _room_now(self) -> bool:
        """True when a statement record may be queued now; False when it was dropped; AuditQueueFull in block mode."""
        if self._queued < self.queue_size:
            return True
        if self.on_full == "drop":
            self._drop()
            return False
        raise AuditQueueFull(
            f"audit queue full ({self.queue_size} records waiting)",
            hint="the state database is slow or down; callers that can wait should use submit()",
        )

    async def _room_for_one(self) -> bool:
        """Wait for room for one statement record (``block``); False when it was dropped instead."""
        while self._queued >= self.queue_size:
            self._check_open()
            if self.on_full == "drop":
                self._drop()
                return False
            self._room.clear()
            await self._room.wait()
        self._check_open()
        return True

    def _drop(self) -> None:
        self._count_dropped()
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_EVERY or self.dropped == 1:
            self._drop_logged_at = now
            log.warning(
                "audit queue full (%d waiting): dropped statement records, %d so far", self._queued, self.dropped
            )
