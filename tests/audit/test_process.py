"""The audit log in its writer process: same guarantees as in-process, and a child that dies fails closed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import UTC, datetime

import pytest

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import new_record
from sqlgate.audit.keys import Signer, signing_key_path
from sqlgate.audit.process import AuditProcess
from sqlgate.audit.storage import entries
from sqlgate.config import Settings
from sqlgate.errors import AuditError, AuditQueueFull
from sqlgate.services import Services
from sqlgate.store import StateStore
from tests.audit.conftest import security, statement
from tests.audit.test_log import verify_store


def settings_for(tmp_path, **audit):
    return Settings(data_dir=tmp_path, audit={"chain_id": "replica-p", "checkpoint_every": 50, **audit})


async def stored(settings):
    store = await StateStore.open(settings.state_url())
    try:
        return [json.loads(entry.body) async for entry in entries(store, "replica-p")]
    finally:
        await store.close()


async def verified(settings):
    store = await StateStore.open(settings.state_url())
    try:
        signer = Signer.load(signing_key_path(settings.data_dir, None))
        return await verify_store(store, signer)
    finally:
        await store.close()


def statement_record(n: int, **data):
    return new_record(
        "statement",
        format_time(datetime.now(UTC)),
        principal={"groups": ["dev"], "issuer": "https://idp", "subject": "alice"},
        data={"sql": f"SELECT {n}", "params": None, **data},
    )


async def test_everything_handed_over_is_chained_in_order_and_verifies(tmp_path):
    settings = settings_for(tmp_path)
    async with AuditProcess(settings) as audit:
        assert audit.pid is not None
        for n in range(120):
            audit.enqueue(statement_record(n))
        await audit.record(security(1))
        await audit.submit(statement(200))
        await audit.flush()
        assert audit.written == 121
    records = await stored(settings)
    statements = [r["data"]["sql"] for r in records if r["type"] == "statement" and "sql" in r["data"]]
    assert statements == [f"SELECT {n}" for n in range(120)] + [statement(200).data["sql"]]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert (await verified(settings)).ok


async def test_the_child_redacts_what_the_gateway_hands_over(tmp_path):
    settings = settings_for(tmp_path)
    async with AuditProcess(settings) as audit:
        audit.enqueue(statement_record(1, sql="ALTER ROLE x PASSWORD 'hunter2'"))
        await audit.record(security(2))
    assert all("hunter2" not in json.dumps(record) for record in await stored(settings))


async def test_values_marshal_cannot_carry_are_made_plain_json(tmp_path):
    settings = settings_for(tmp_path)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with AuditProcess(settings) as audit:
        audit.enqueue(statement_record(1, when=when, token="eyJhbGciOiJIUzI1NiJ9.e30.c2ln"))
        await audit.flush()
    (record,) = [r for r in await stored(settings) if r["type"] == "statement"]
    assert record["data"]["when"].startswith("2026-01-02T03:04:05")
    assert record["data"]["token"] == "[REDACTED]"


async def test_a_full_queue_refuses_or_drops_before_the_child_answers(tmp_path):
    async with AuditProcess(settings_for(tmp_path / "block", queue_size=2)) as audit:
        audit.enqueue(statement_record(1))
        audit.enqueue(statement_record(2))
        with pytest.raises(AuditQueueFull):
            audit.enqueue(statement_record(3))
        await audit.record(security(1))  # security events are never bounded by the queue
        await audit.flush()
        audit.enqueue(statement_record(4))  # settled records free their room
    drop = settings_for(tmp_path / "drop", queue_size=1, on_full="drop")
    async with AuditProcess(drop) as audit:
        audit.enqueue(statement_record(1))
        audit.enqueue(statement_record(2))
        assert audit.dropped == 1
        await audit.flush()
    checkpoints = [r for r in await stored(drop) if r["type"] == "audit.checkpoint"]
    assert sum(c["data"].get("dropped", 0) for c in checkpoints) == 1


async def test_a_killed_child_fails_its_waiters_and_a_new_one_resumes_the_chain(tmp_path):
    settings = settings_for(tmp_path)
    async with AuditProcess(settings) as audit:
        await audit.record(security(1))
        first = audit.pid
        assert first is not None
        os.kill(first, signal.SIGSTOP)  # it takes the next record but cannot commit it
        waiting = asyncio.ensure_future(audit.record(security(2)))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(AuditError):
            await waiting
        for _ in range(200):  # restarted with backoff
            if audit.pid not in (None, first):
                break
            await asyncio.sleep(0.05)
        assert audit.pid not in (None, first)
        await audit.record(security(3))  # committed by the new child, after the old chain
    types = [r["type"] for r in await stored(settings)]
    assert types.count("lease.mint") >= 2
    assert (await verified(settings)).ok


async def test_a_child_that_cannot_start_is_an_error_at_start(tmp_path):
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "signing_key.pem").write_text("not a key")
    with pytest.raises(AuditError):
        await AuditProcess(settings_for(tmp_path)).start()


async def test_nothing_is_taken_before_start_or_after_close(tmp_path):
    audit = AuditProcess(settings_for(tmp_path))
    with pytest.raises(AuditError):
        audit.enqueue(statement_record(1))
    await audit.start()
    await audit.aclose()
    assert audit.pid is None
    with pytest.raises(AuditError):
        await audit.record(security(1))


async def test_services_run_the_log_in_a_writer_process_when_configured(tmp_path):
    settings = Settings(data_dir=tmp_path, identity={"dev_issuer": True}, audit={"writer": "process"})
    services = await Services.start(settings, reaper=False)
    try:
        assert isinstance(services.audit, AuditProcess)
        assert services.audit.pid is not None
        await services.audit.record(security(1))
    finally:
        await services.aclose()
    assert services.audit.pid is None
    store = await StateStore.open(settings.state_url())
    try:
        chains = [json.loads(entry.body) async for entry in entries(store, services.audit.chain_id)]
    finally:
        await store.close()
    assert "lease.mint" in [record["type"] for record in chains]


def test_whole_frames_are_taken_and_a_partial_one_waits_for_the_rest():
    from sqlgate.audit.process import frame, take_frames  # noqa: PLC0415

    stream = frame(("events", [(0, {"a": 1})])) + frame(("lost", 2)) + frame(("close",))
    pending = bytearray(stream[:-3])
    assert take_frames(pending) == [("events", [(0, {"a": 1})]), ("lost", 2)]
    assert take_frames(pending) == []  # the last one is not whole yet
    pending += stream[-3:]
    assert take_frames(pending) == [("close",)]
    assert pending == bytearray()
