"""AuditLog on SQLite and PostgreSQL: durability, one chain order, backpressure, drops, replicas."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import new_record
from sqlgate.audit.sqlite_writer import SqliteBatchWriter
from sqlgate.audit.storage import chain_ids, entries, read_heads
from sqlgate.audit.tables import audit_records
from sqlgate.audit.verify import Verifier
from sqlgate.errors import AuditError, AuditQueueFull
from tests.audit.conftest import security, statement


async def stored(store, chain="replica-a"):
    """The records of ``chain`` as dicts, in stored order."""
    return [json.loads(entry.body) async for entry in entries(store, chain)]


async def verify_store(store, signer):
    verifier = Verifier(signer.public_key, partial=False)
    for chain in await chain_ids(store):
        async for entry in entries(store, chain):
            verifier.add(entry)
    return verifier.finish(await read_heads(store))


async def count_rows(store):
    async with store.begin() as conn:
        return (await conn.execute(select(func.count()).select_from(audit_records))).scalar_one()


async def test_record_is_committed_when_it_returns(store, make_log):
    log = make_log(store)
    await log.start()
    try:
        event = security(1)
        await log.record(event)
        async with store.begin() as conn:
            ids = (await conn.execute(select(audit_records.c.body))).scalars().all()
        assert any(event.id in body for body in ids)
    finally:
        await log.aclose()


async def test_one_chain_in_hand_over_order(store, make_log, signer):
    """Awaited and queued events share one sequencer: the chain order is the order they were handed over."""
    log = make_log(store)
    await log.start()
    sent = []
    for n in range(7):
        event = statement(n)
        await log.submit(event)
        sent.append(event.id)
        if n % 3 == 0:
            event = security(n)
            await log.record(event)
            sent.append(event.id)
    log.enqueue(statement(99))
    await log.aclose()
    records = await stored(store)
    ids = [r["id"] for r in records if r["type"] != "audit.checkpoint"]
    assert ids[:-1] == sent
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[-1]["type"] == "audit.checkpoint"  # closing signs the tail
    report = await verify_store(store, signer)
    assert report.ok, report.findings


async def test_concurrent_writers_make_one_gapless_chain(store, make_log, signer):
    log = make_log(store, batch_size=16)
    await log.start()

    async def worker(n):
        for i in range(10):
            if i % 4 == 0:
                await log.record(security(n * 100 + i))
            else:
                await log.submit(statement(n * 100 + i))

    await asyncio.gather(*(worker(n) for n in range(30)))
    await log.aclose()
    records = await stored(store)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert sum(r["type"] != "audit.checkpoint" for r in records) == 300
    assert (await verify_store(store, signer)).ok


async def test_restart_continues_the_chain(store, make_log, signer):
    log = make_log(store)
    async with log:
        await log.record(security(1))
    async with make_log(store) as log:
        await log.record(security(2))
    records = await stored(store)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert (await verify_store(store, signer)).ok


async def test_replicas_write_their_own_chains(store, make_log, signer):
    a, b = make_log(store, "replica-a"), make_log(store, "replica-b")
    await a.start()
    await b.start()
    await asyncio.gather(*(log.record(security(n)) for n in range(5) for log in (a, b)))
    await a.aclose()
    await b.aclose()
    assert await chain_ids(store) == ["replica-a", "replica-b"]
    report = await verify_store(store, signer)
    assert report.ok
    assert {c: r.records for c, r in report.chains.items()} == {"replica-a": 6, "replica-b": 6}


async def test_full_queue_applies_backpressure(sqlite_store, make_log):
    """submit() waits for room and enqueue() refuses (block mode); nothing is lost."""
    log = make_log(sqlite_store, queue_size=3)
    for n in range(3):
        await log.submit(statement(n))
    waiting = asyncio.create_task(log.submit(statement(3)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    with pytest.raises(AuditQueueFull):
        log.enqueue(statement(4))
    await log.start()
    await waiting
    await log.aclose()
    assert log.dropped == 0
    assert sum(r["type"] == "statement" for r in await stored(sqlite_store)) == 4


async def test_drop_mode_counts_logs_and_records_the_loss(sqlite_store, make_log, caplog, signer):
    log = make_log(sqlite_store, queue_size=2, on_full="drop")
    with caplog.at_level(logging.WARNING, logger="sqlgate.audit.log"):
        for n in range(5):
            log.enqueue(statement(n))
        await log.submit(statement(5))
    log.enqueue(security(1))  # security events are never dropped
    assert log.dropped == 4
    assert "dropped statement records" in caplog.text
    await log.start()
    await log.aclose()
    records = await stored(sqlite_store)
    assert sum(r["type"] == "statement" for r in records) == 2
    assert sum(r["type"] == "lease.mint" for r in records) == 1
    checkpoints = [r for r in records if r["type"] == "audit.checkpoint"]
    assert sum(c["data"].get("dropped", 0) for c in checkpoints) == 4
    assert (await verify_store(sqlite_store, signer)).ok


async def test_failed_write_fails_the_caller_and_keeps_the_chain(sqlite_store, make_log, signer):
    """When the store refuses a batch, record() raises and no gap is left in the chain."""
    log = make_log(sqlite_store)
    await log.start()
    await log.record(security(1))
    async with sqlite_store.begin() as conn:
        await conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'no'); END")
        )
    with pytest.raises(AuditError, match="not stored"):
        await log.record(security(2))
    async with sqlite_store.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse"))
    await log.record(security(3))
    await log.aclose()
    records = await stored(sqlite_store)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert (await verify_store(sqlite_store, signer)).ok


async def test_start_refuses_when_head_and_records_disagree(sqlite_store, make_log):
    async with make_log(sqlite_store) as log:
        await log.record(security(1))
    async with sqlite_store.begin() as conn:
        await conn.execute(text("DELETE FROM audit_records WHERE seq = (SELECT max(seq) FROM audit_records)"))
    with pytest.raises(AuditError, match="disagree"):
        await make_log(sqlite_store).start()


async def test_closed_log_refuses(sqlite_store, make_log):
    log = make_log(sqlite_store)
    await log.start()
    await log.aclose()
    with pytest.raises(AuditError, match="closed"):
        await log.record(security(1))
    with pytest.raises(AuditError, match="closed"):
        log.enqueue(statement(1))
    await log.aclose()


async def test_time_based_checkpoint(sqlite_store, make_log):
    from datetime import timedelta  # noqa: PLC0415

    log = make_log(sqlite_store, checkpoint_every=1000, checkpoint_interval=timedelta(milliseconds=50))
    await log.start()
    await log.record(security(1))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if await count_rows(sqlite_store) >= 2:
            break
    records = await stored(sqlite_store)
    await log.aclose()
    assert [r["type"] for r in records] == ["lease.mint", "audit.checkpoint"]


def nested(depth):
    value = {}
    for _ in range(depth):
        value = {"x": value}
    return value


async def test_record_that_cannot_be_encoded_fails_alone(sqlite_store, make_log, signer):
    """A pathological event (nested past the recursion limit) fails its caller; the writer goes on."""
    from sqlgate.audit.events import AuditEvent  # noqa: PLC0415

    log = make_log(sqlite_store)
    await log.start()
    deep = AuditEvent.model_construct(type="config.reload", data={"deep": "ok"})
    deep = deep.model_copy(update={"data": nested(5000)})
    with pytest.raises(AuditError, match="could not be prepared"):
        await log.record(deep)
    await log.submit(deep.model_copy(update={"type": "statement"}))
    await log.record(security(2))
    await log.aclose()
    assert log.dropped == 1
    assert (await verify_store(sqlite_store, signer)).ok


async def test_close_without_start_writes_what_was_queued(sqlite_store, make_log):
    log = make_log(sqlite_store)
    log.enqueue(statement(1))
    await log.aclose()
    assert [r["type"] for r in await stored(sqlite_store)] == ["statement", "audit.checkpoint"]


async def test_record_before_start_is_refused(sqlite_store, make_log):
    with pytest.raises(AuditError, match="not started"):
        await make_log(sqlite_store).record(security(1))


async def test_a_dead_writer_fails_waiters_instead_of_hanging(sqlite_store, make_log):
    log = make_log(sqlite_store)
    await log.start()

    async def broken(batch, *, final):
        raise RuntimeError("bug")

    log._chain_batch = broken
    with pytest.raises(AuditError, match="writer stopped"):
        await log.record(security(1))
    with pytest.raises(AuditError, match="closed"):
        log.enqueue(statement(1))
    await log.aclose()


async def test_a_large_batch_lets_the_event_loop_run_while_it_is_chained(store, make_log):
    """Sessions share the writer's loop: a batch of 1,000 records is chained a slice at a time, not in one go."""
    log = make_log(store, batch_size=1000, checkpoint_every=10_000)
    await log.start()
    turns = 0
    seen: list[int] = []  # how many turns other tasks had, at each record chained

    class Watched:
        def __init__(self, chain):
            self.chain = chain

        def __call__(self, record):
            seen.append(turns)
            return self.chain(record)

        def __getattr__(self, name):
            return getattr(self.chain, name)

    async def other_task():
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    try:
        log.chain = Watched(log.chain)
        for n in range(1000):
            log.enqueue(statement(n))
        await log.flush()
    finally:
        ticker.cancel()
        await log.aclose()
    assert len(seen) == 1000
    slices = sum(1 for before, after in itertools.pairwise(seen) if after > before)
    assert slices >= 1000 // 32 - 1, f"other tasks ran only {slices} times while 1,000 records were chained"
    assert await count_rows(store) == 1000 + 1  # every record, and the final checkpoint


async def test_statement_records_gather_for_the_commit_delay_but_security_records_do_not(sqlite_store, make_log):
    """Group commit: queued statements wait up to commit_delay for company; a record someone awaits goes at once."""
    log = make_log(sqlite_store, commit_delay=timedelta(seconds=30))
    await log.start()
    try:
        await log.submit(statement(1))
        await asyncio.sleep(0.05)
        await log.submit(statement(2))  # the first write is immediate; after it, statements gather
        await asyncio.sleep(0.2)
        before = await count_rows(sqlite_store)
        await asyncio.wait_for(log.record(security(3)), timeout=5)  # not held back by the 30 s delay
        after = await count_rows(sqlite_store)
    finally:
        await log.aclose()
    assert before == 1  # statement 2 was still gathering
    assert after == 3  # the awaited record took the queued statement with it, in order


async def test_a_full_batch_does_not_wait_for_the_commit_delay(sqlite_store, make_log):
    log = make_log(sqlite_store, commit_delay=timedelta(seconds=30), batch_size=10, checkpoint_every=1000)
    await log.start()
    try:
        await log.submit(statement(0))
        await asyncio.sleep(0.05)
        for n in range(1, 11):
            await log.submit(statement(n))
        for _ in range(100):
            if await count_rows(sqlite_store) >= 11:
                break
            await asyncio.sleep(0.05)
        assert await count_rows(sqlite_store) >= 11
    finally:
        await log.aclose()


async def test_record_dicts_are_redacted_and_chained_like_events(sqlite_store, make_log, signer):
    """The hot path hands over new_record() dicts instead of AuditEvents: same processors, same chain."""
    log = make_log(sqlite_store)
    await log.start()
    try:
        record = new_record(
            "statement",
            format_time(datetime.now(UTC)),
            principal={"groups": ["dev"], "issuer": "https://idp", "subject": "alice"},
            data={"sql": "ALTER ROLE x PASSWORD 'hunter2'", "params": None},
        )
        log.enqueue(record)
        await log.submit(dict(record, id="second"))
        await log.flush()
        rows = await stored(sqlite_store)
    finally:
        await log.aclose()
    statements = [row for row in rows if row["type"] == "statement"]
    assert [row["id"] for row in statements] == [record["id"], "second"]
    assert all("hunter2" not in json.dumps(row) for row in rows)
    assert (await verify_store(sqlite_store, signer)).ok


async def test_a_sqlite_file_is_written_by_the_direct_writer(sqlite_store, make_log, signer):
    """SQLite state files get the one-hand-over writer; its batches verify like any other."""
    log = make_log(sqlite_store)
    assert isinstance(log.database, SqliteBatchWriter)
    async with log:
        for n in range(300):  # more than one multi-row chunk per batch
            log.enqueue(statement(n))
        await log.record(security(1))
    assert await count_rows(sqlite_store) > 300
    assert (await verify_store(sqlite_store, signer)).ok
