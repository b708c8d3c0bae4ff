"""JSON log lines carry the replica and the current session's ids."""

from __future__ import annotations

import contextvars
import json
import logging

from sqlgate.identity.principal import Principal
from sqlgate.logs import JsonFormatter
from sqlgate.sessions import LiveSession, SessionRegistry, current_session


def _record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("sqlgate.proxy", logging.WARNING, __file__, 1, message, (), info)


def test_a_line_outside_a_session_has_the_replica_only() -> None:
    """No session: time, level, logger, message and replica."""
    line = json.loads(JsonFormatter("r1").format(_record("started")))
    assert line["replica"] == "r1"
    assert line["message"] == "started"
    assert line["level"] == "warning"
    assert "session_id" not in line


def test_a_line_inside_a_session_has_its_ids() -> None:
    """Registering a session makes it the task's current one; its ids appear on each line."""
    principal = Principal(subject="alice", issuer="https://idp.example", name="alice")
    session = LiveSession("s1", "pgwire", principal, "demo", "read", "g_alice_1", None, "a" * 32)

    def inside() -> dict[str, object]:
        async def closer(_reason: str) -> None:
            return None

        SessionRegistry().add(session, closer)
        try:
            int("boom")
        except ValueError as exc:
            return dict(json.loads(JsonFormatter("r2").format(_record("failed", exc))))
        raise AssertionError("int('boom') parsed")

    line = contextvars.copy_context().run(inside)
    assert line["session_id"] == "s1"
    assert line["database"] == "demo"
    assert line["lease_id"] == "a" * 32
    assert line["principal"] == principal.key
    assert "ValueError: invalid literal" in str(line["exception"])
    assert current_session.get() is None  # the session belonged to that context only
