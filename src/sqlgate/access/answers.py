"""Answers held until their statements' records have left the gateway: one mechanism for every wire listener.

With a durable audit hand-over (the writer process), a client must not see the answer
that completes a statement before that statement's record is in the writer's pipe: a
crash in between would acknowledge a statement nobody recorded. :class:`AnswerHold`
sits between a session's relay and its client socket; while a hand-over is pending it
holds what the relay sends (in order) and the audit log releases it once the records are
handed over (one write per loop turn for every session). Without a durable hand-over it
writes straight through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class CountsStatements(Protocol):
    """A relay: how many statements it has finished (each with its record) so far."""

    statement_count: int


class AnswerHold:
    """Bytes for one client, held while the records of the statements they complete are being handed over."""

    __slots__ = ("_audit", "_held", "_pending", "_write", "durable")

    def __init__(self, audit: Any, write: Callable[[bytes], None]) -> None:
        self._audit = audit
        self._write = write
        self.durable: bool = getattr(audit, "durable_handover", False)
        self._held: list[bytes] | None = None
        self._pending = False

    def feed(self, relay: CountsStatements, feed: Callable[[bytes], None], data: bytes) -> None:
        """Give ``data`` to the relay through ``feed``; what it sends the client waits for any record it finished."""
        if not self.durable:
            feed(data)
            return
        if self._held is None:
            self._held = []
        before = relay.statement_count
        feed(data)
        if relay.statement_count != before and not self._pending:
            self._pending = True
            self._audit.after_handover(self._release)
        elif not self._pending:
            self._release()

    def send(self, data: bytes) -> None:
        """The relay's way to the client: straight, or held until a statement's record is handed over."""
        if self._held is not None:
            self._held.append(data)
        else:
            self._write(data)

    def _release(self) -> None:
        self._pending = False
        held, self._held = self._held, None
        if held:
            self._write(held[0] if len(held) == 1 else b"".join(held))
