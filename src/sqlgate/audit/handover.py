"""How events are handed to an audit log, shared by :class:`.log.AuditLog` and :class:`.process.AuditProcess`.

Security events are never bounded. Statement records count against
``queue_size`` until the log settles them; when the queue is full, ``submit``
waits for room (``on_full: block``) or drops (``drop``), and ``enqueue``, which
cannot wait, drops or raises :class:`~sqlgate.errors.AuditQueueFull`. A drop is
counted by the log (it reaches the next checkpoint) and logged at most every 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import Any, Literal

from sqlgate.audit.events import AuditEvent, is_security_type
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
    _room: asyncio.Event
    _drop_logged_at: float

    @abstractmethod
    def _check_open(self) -> None:
        """Raise AuditError when the log no longer takes events."""

    @abstractmethod
    def _hand_over(self, event: AuditEvent | Record, *, counted: bool) -> None:
        """Queue ``event`` for writing; ``counted``: it holds a place in ``queue_size`` until settled."""

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
            return
        while self._queued >= self.queue_size:
            self._check_open()
            if self.on_full == "drop":
                self._drop()
                return
            self._room.clear()
            await self._room.wait()
        self._check_open()
        self._hand_over(event, counted=True)

    def enqueue(self, event: AuditEvent | Record) -> None:
        """Queue ``event`` (or a record dict, as for :meth:`submit`) without waiting.

        When the queue is full: drop (``drop``) or raise AuditQueueFull (``block``).
        """
        self._check_open()
        if is_security(event):
            self._hand_over(event, counted=False)
            return
        if self._queued >= self.queue_size:
            if self.on_full == "drop":
                self._drop()
                return
            raise AuditQueueFull(
                f"audit queue full ({self.queue_size} records waiting)",
                hint="the state database is slow or down; callers that can wait should use submit()",
            )
        self._hand_over(event, counted=True)

    def _drop(self) -> None:
        self._count_dropped()
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_EVERY or self.dropped == 1:
            self._drop_logged_at = now
            log.warning(
                "audit queue full (%d waiting): dropped statement records, %d so far", self._queued, self.dropped
            )
