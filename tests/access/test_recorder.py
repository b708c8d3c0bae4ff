"""A wire session's audit: events and statements with the session's fields, and backpressure without loss."""

from __future__ import annotations

import asyncio

from sqlgate.access.recorder import SessionRecorder
from sqlgate.audit.log import AuditLog
from sqlgate.identity.principal import Principal
from sqlgate.sessions import LiveSession
from sqlgate.store import StateStore
from tests.audit.test_process import settings_for, stored

ALICE = Principal(subject="alice", issuer="https://idp", name="alice", groups=("dev",))


def session() -> LiveSession:
    return LiveSession(
        id="s-1",
        kind="pgwire",
        principal=ALICE,
        database="orders",
        role="read",
        db_login="sg_alice_1",
        source="10.0.0.7",
        lease_id="l-1",
    )


def statement(recorder: SessionRecorder, sql: str) -> None:
    recorder.statement(
        protocol="simple",
        sql=sql,
        params=None,
        result="success",
        rows=1,
        duration_ms=0.5,
        sqlstate=None,
        error=None,
        would_deny=None,
    )


class Reading:
    """The client's socket as the recorder sees it: paused or not."""

    def __init__(self) -> None:
        self.paused = False
        self.tasks: list[asyncio.Task[None]] = []

    def recorder(self, audit: AuditLog) -> SessionRecorder:
        return SessionRecorder(
            audit,
            "10.0.0.7",
            pause_reading=lambda: setattr(self, "paused", True),
            resume_reading=lambda: setattr(self, "paused", False),
            spawn=lambda coroutine: self.tasks.append(asyncio.ensure_future(coroutine)),
        )


async def test_statements_carry_the_sessions_fields_once_it_started(tmp_path):
    settings = settings_for(tmp_path)
    store = await StateStore.open(settings.state_url())
    audit = AuditLog.from_settings(settings, store)
    await audit.start()
    recorder = Reading().recorder(audit)
    statement(recorder, "SELECT 0")  # before login: no session fields
    live = session()
    recorder.started(live)
    audit.enqueue(recorder.event("session.start", "success", data={}))
    statement(recorder, "SELECT 1")
    recorder.ended()
    await audit.aclose()
    await store.close()
    records = [r for r in await stored(settings) if r["type"] in ("statement", "session.start")]
    assert [(r["type"], r["data"].get("sql"), r["session_id"]) for r in records] == [
        ("statement", "SELECT 0", None),
        ("session.start", None, "s-1"),
        ("statement", "SELECT 1", "s-1"),
    ]
    assert records[2]["principal"]["subject"] == "alice"
    assert records[2]["db_login"] == "sg_alice_1"
    assert live.statements == 1


async def test_a_full_queue_pauses_the_client_and_the_statement_keeps_its_session(tmp_path):
    settings = settings_for(tmp_path, queue_size=1)
    store = await StateStore.open(settings.state_url())
    audit = AuditLog.from_settings(settings, store)  # not started yet: nothing settles, the queue stays full
    reading = Reading()
    recorder = reading.recorder(audit)
    recorder.started(session())
    statement(recorder, "SELECT 1")
    statement(recorder, "SELECT 2")  # no room: the client is paused until the log takes it
    assert reading.paused
    await asyncio.sleep(0.05)  # the statement now waits inside the log for room
    recorder.ended()  # the session ends while its statement waits: its context must outlive the wait
    await audit.start()
    await asyncio.wait_for(asyncio.gather(*reading.tasks), 30)
    assert not reading.paused
    await audit.aclose()
    await store.close()
    records = [r for r in await stored(settings) if r["type"] == "statement"]
    assert [(r["data"]["sql"], r["session_id"]) for r in records] == [("SELECT 1", "s-1"), ("SELECT 2", "s-1")]
