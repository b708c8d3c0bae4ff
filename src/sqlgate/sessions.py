"""Live sessions of every kind (pgwire and MySQL connections, HTTP queries), so they can be listed and ended.

The proxy and the API register each session here; ``GET /v1/sessions`` lists
them and ``DELETE /v1/sessions/{id}`` ends one. Ending a session calls the
closer its owner registered, which tells the client why (57P01 on pgwire) and
releases its upstream connection.
"""

from __future__ import annotations

import contextvars
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlgate.identity.principal import Principal

Closer = Callable[[str], Awaitable[None]]
Kind = Literal["pgwire", "http", "mysql"]
KINDS: tuple[Kind, ...] = ("pgwire", "http", "mysql")


@dataclass
class LiveSession:
    """One session as an administrator sees it."""

    id: str
    kind: Kind
    principal: Principal
    database: str
    role: str
    db_login: str | None
    source: str | None
    lease_id: str | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    statements: int = 0

    def summary(self) -> dict[str, Any]:
        """The session as JSON-ready data (no secrets)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "principal": self.principal.summary(),
            "database": self.database,
            "role": self.role,
            "db_login": self.db_login,
            "source": self.source,
            "lease_id": self.lease_id,
            "started_at": self.started_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "statements": self.statements,
        }


current_session: contextvars.ContextVar[LiveSession | None] = contextvars.ContextVar(
    "sqlgate_current_session", default=None
)
"""The session the running task serves (set by :meth:`SessionRegistry.add`), for traces and JSON logs."""

_SESSION_PREFIX = secrets.token_hex(4)
_session_numbers = itertools.count(1)


def new_session_id() -> str:
    """A unique, URL-safe session id: this process's random prefix and a counter (no system call per query)."""
    return f"{_SESSION_PREFIX}{next(_session_numbers):08x}"


class SessionRegistry:
    """The sessions of this replica."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[LiveSession, Closer]] = {}
        self._ended_statements: dict[str, int] = dict.fromkeys(KINDS, 0)

    def add(self, session: LiveSession, closer: Closer) -> None:
        """Track ``session``; ``closer(reason)`` ends it. The calling task's current session becomes it."""
        self._sessions[session.id] = (session, closer)
        current_session.set(session)

    def remove(self, session_id: str) -> None:
        """Forget a session that ended (idempotent)."""
        entry = self._sessions.pop(session_id, None)
        if entry is not None:
            self._ended_statements[entry[0].kind] += entry[0].statements

    def statement_totals(self) -> dict[str, int]:
        """Statements run in every session so far (ended and live), by kind."""
        totals = dict(self._ended_statements)
        for session, _closer in self._sessions.values():
            totals[session.kind] += session.statements
        return totals

    def get(self, session_id: str) -> LiveSession | None:
        """The live session with this id, if any."""
        entry = self._sessions.get(session_id)
        return entry[0] if entry else None

    def list(self) -> list[LiveSession]:
        """Every live session, oldest first."""
        return sorted((entry[0] for entry in self._sessions.values()), key=lambda s: s.started_at)

    async def end(self, session_id: str, reason: str) -> bool:
        """End one session; False when no such session is live."""
        entry = self._sessions.get(session_id)
        if entry is None:
            return False
        await entry[1](reason)
        return True

    async def end_where(self, predicate: Callable[[LiveSession], bool], reason: str) -> int:
        """End every session ``predicate`` selects (e.g. all on a revoked lease); returns how many."""
        chosen = [entry for entry in self._sessions.values() if predicate(entry[0])]
        for _session, closer in chosen:
            await closer(reason)
        return len(chosen)

    def __len__(self) -> int:
        return len(self._sessions)
