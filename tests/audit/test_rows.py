"""Statement rows: the same records as whole ones, on both writers, across contexts, restarts and full queues."""

from __future__ import annotations

import asyncio
import marshal
import os
import signal

import pytest

from sqlgate.access.statements import statement_fields
from sqlgate.audit.log import AuditLog
from sqlgate.audit.process import AuditProcess
from sqlgate.audit.rows import expand, session_context, statement_row
from sqlgate.errors import AuditQueueFull
from sqlgate.store import StateStore
from tests.audit.test_process import settings_for, stored, verified

PRINCIPAL = {"groups": ["dev"], "issuer": "https://idp", "subject": "alice"}


def context(session_id: str = "s1") -> dict[str, object]:
    return session_context(PRINCIPAL, "10.0.0.7", "orders", "sg_alice_1", session_id)


def row(key: int, n: int, **fields: object) -> tuple[object, ...]:
    values: dict[str, object] = {
        "protocol": "simple",
        "sql": f"SELECT {n}",
        "params": None,
        "result": "success",
        "rows": 1,
        "duration_ms": 0.25,
        "sqlstate": None,
        "error": None,
        "would_deny": None,
        "tags": None,
    }
    return statement_row(key, **{**values, **fields})  # type: ignore[arg-type]


def test_a_row_expands_to_the_record_a_whole_statement_makes():
    outcome, reason, data = statement_fields(
        protocol="extended",
        sql="SELECT $1",
        params=["7"],
        result="error",
        rows=None,
        duration_ms=1.5,
        sqlstate="22012",
        error="division by zero",
        would_deny="writes are not allowed",
        tags=["select"],
        params_bounded=True,
    )
    record = expand(
        context(),
        row(
            3,
            0,
            protocol="extended",
            sql="SELECT $1",
            params=("7",),
            result="error",
            rows=None,
            duration_ms=1.5,
            sqlstate="22012",
            error="division by zero",
            would_deny="writes are not allowed",
            tags=["select"],
        ),
    )
    assert (record["outcome"], record["reason"], record["data"]) == (outcome, reason, data)
    assert record["type"] == "statement"
    assert record["principal"] == PRINCIPAL
    assert (record["source"], record["database"], record["db_login"], record["session_id"]) == (
        "10.0.0.7",
        "orders",
        "sg_alice_1",
        "s1",
    )
    assert record["time"].endswith("Z")
    assert record["id"]


def test_a_row_is_small_beside_its_record():
    compact = marshal.dumps(row(3, 1))
    whole = marshal.dumps(expand(context(), row(3, 1)))
    assert len(compact) < len(whole) / 2


@pytest.mark.parametrize("writer", ["process", "inline"])
async def test_rows_of_several_sessions_are_stored_as_records_in_their_contexts(tmp_path, writer):
    settings = settings_for(tmp_path)
    async with await _log(settings, writer) as audit:
        first = audit.open_context(context("s1"))
        second = audit.open_context(context("s2"))
        for n in range(30):
            audit.enqueue_statement(row(first if n % 2 else second, n))
        audit.close_context(first)
        audit.enqueue_statement(row(second, 100, sql="ALTER ROLE x PASSWORD 'hunter2'"))
        await audit.flush()
    records = [r for r in await stored(settings) if r["type"] == "statement"]
    assert [r["data"]["sql"] for r in records[:30]] == [f"SELECT {n}" for n in range(30)]
    assert [r["session_id"] for r in records[:30]] == ["s2" if n % 2 == 0 else "s1" for n in range(30)]
    assert "hunter2" not in str(records[30])  # rows are redacted like any record
    assert (await verified(settings)).ok


async def test_a_full_queue_refuses_or_drops_rows_as_it_does_records(tmp_path):
    async with AuditProcess(settings_for(tmp_path / "block", queue_size=2)) as audit:
        key = audit.open_context(context())
        audit.enqueue_statement(row(key, 1))
        audit.enqueue_statement(row(key, 2))
        with pytest.raises(AuditQueueFull):
            audit.enqueue_statement(row(key, 3))
        await asyncio.wait_for(audit.submit_statement(row(key, 4)), 30)  # waits for the child to settle some
        await audit.flush()
    assert [r["data"]["sql"] for r in await stored(settings_for(tmp_path / "block")) if r["type"] == "statement"] == [
        "SELECT 1",
        "SELECT 2",
        "SELECT 4",
    ]
    drop = settings_for(tmp_path / "drop", queue_size=1, on_full="drop")
    async with AuditProcess(drop) as audit:
        key = audit.open_context(context())
        audit.enqueue_statement(row(key, 1))
        audit.enqueue_statement(row(key, 2))
        assert audit.dropped == 1
        await audit.flush()
    checkpoints = [r for r in await stored(drop) if r["type"] == "audit.checkpoint"]
    assert sum(c["data"].get("dropped", 0) for c in checkpoints) == 1


async def test_a_new_writer_process_learns_the_open_contexts_again(tmp_path):
    settings = settings_for(tmp_path)
    async with AuditProcess(settings) as audit:
        key = audit.open_context(context("s9"))
        audit.enqueue_statement(row(key, 1))
        await audit.flush()
        first = audit.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(200):  # restarted with backoff
            if audit.pid not in (None, first):
                break
            await asyncio.sleep(0.05)
        assert audit.pid not in (None, first)
        audit.enqueue_statement(row(key, 2))
        await audit.flush()
    records = [r for r in await stored(settings) if r["type"] == "statement"]
    assert [(r["data"]["sql"], r["session_id"]) for r in records] == [("SELECT 1", "s9"), ("SELECT 2", "s9")]


async def _log(settings, writer: str) -> AuditLog | AuditProcess:
    if writer == "process":
        return AuditProcess(settings)
    store = await StateStore.open(settings.state_url())
    log = AuditLog.from_settings(settings, store)
    closing = log.aclose

    async def aclose() -> None:
        await closing()
        await store.close()

    log.aclose = aclose  # type: ignore[method-assign]
    return log
