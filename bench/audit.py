"""Audit log throughput: appending chained statement events, and verifying them.

Run: ``python bench/audit.py [--events N]``. The process is pinned to one CPU
(where the OS allows) so the figures are per core; the log's SQLite writer
thread runs on that same core. Printed next to the targets of issue 7:

- append: statement records handed over as the proxy and the API do
  (``new_record`` dicts, built beforehand as the callers build them, through
  ``AuditLog.enqueue``, waiting in ``submit`` only while the queue is full)
  -> redacted, chained, checkpointed, group-committed to SQLite (WAL) with
  their signed head; target >= 50,000 events/s. (An ``AuditEvent`` costs
  about 2 us more per event to convert; security events take that path.)
  Also printed: the same rows inserted by SQLite alone (prebuilt tuples, one
  ``executemany`` per 1,000, no Python per record): the floor any
  implementation of this log pays per statement on this machine.
- verify: ``verify()`` over the stored records (hash, links, columns,
  checkpoint signatures, head); target >= 200,000 events/s. Reading the rows
  from SQLite is timed separately.

The machine's load average is printed too: on a shared machine, figures move
with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlgate.audit.canonical import format_time
from sqlgate.audit.chain import Chainer, new_record
from sqlgate.audit.events import PrincipalRef
from sqlgate.audit.keys import Signer
from sqlgate.audit.log import AuditLog, Record
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.storage import chain_ids, entries, read_heads
from sqlgate.audit.verify import verify
from sqlgate.errors import AuditQueueFull
from sqlgate.server.run import settle_heap
from sqlgate.store import StateStore

APPEND_TARGET = 50_000
VERIFY_TARGET = 200_000
ALICE = PrincipalRef(subject="alice@example.com", issuer="https://idp.example.com", groups=["dev", "analysts"])


def make_events(count: int) -> list[Record]:
    """Statement records as the proxy hands them over (``new_record`` dicts, the principal converted once)."""
    principal = {"groups": list(ALICE.groups), "issuer": ALICE.issuer, "subject": ALICE.subject}
    return [
        new_record(
            "statement",
            format_time(datetime.now(UTC)),
            principal=principal,
            source="10.1.2.3:51234",
            database="prod",
            db_login="sg_alice_7f3a",
            session_id="9c1e5d2a7b3f4e6d",
            outcome="success",
            data={
                "protocol": "extended",
                "sql": "SELECT id, total, status FROM orders WHERE customer_id = $1 AND created_at > $2",
                "params": [str(n), "2026-01-01"],
                "rows": n % 50,
                "tags": ["SELECT 12"],
                "sqlstate": None,
                "duration_ms": 0.25 + n % 7,
                "result": "success",
            },
        )
        for n in range(count)
    ]


def pin_to_one_core(cpu: int | None) -> str:
    """Pin this process to one CPU (``cpu``, else the last one allowed); returns a note for the report."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = max(os.sched_getaffinity(0)) if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


async def bench_append(store: StateStore, signer: Signer, events: list[Record]) -> float:
    log = AuditLog(store, signer, "bench", queue_size=20_000, batch_size=2000, checkpoint_every=1000)
    await log.start()
    start = time.perf_counter()
    for event in events:
        try:
            log.enqueue(event)
        except AuditQueueFull:
            await log.submit(event)
    await log.flush()
    elapsed = time.perf_counter() - start
    await log.aclose()
    return len(events) / elapsed


def bench_chain_only(events: list[Record]) -> float:
    pipeline, chainer = Pipeline(), Chainer("cpu")
    start = time.perf_counter()
    for event in events:
        chainer(pipeline.process(event))
    return len(events) / (time.perf_counter() - start)


_COLUMNS = "chain, seq, prev_hash, hash, time, type, subject, issuer, database, session_id, outcome, body"


async def bench_storage_floor(stored_in: Path, fresh: Path) -> float:
    """The records of ``stored_in`` inserted again into ``fresh`` (same schema) by SQLite alone: records/s."""
    store = await StateStore.open(f"sqlite:///{fresh}")  # the real schema, migrations and WAL
    await store.close()
    with sqlite3.connect(stored_in) as source:
        rows = source.execute(f"SELECT {_COLUMNS} FROM audit_records ORDER BY id").fetchall()
    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        sql = f"INSERT INTO audit_records ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
        start = time.perf_counter()
        for at in range(0, len(rows), 1000):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[at : at + 1000])
            conn.execute("COMMIT")
        return len(rows) / (time.perf_counter() - start)
    finally:
        conn.close()


async def bench_verify(store: StateStore, signer: Signer) -> tuple[float, float, int]:
    start = time.perf_counter()
    heads = await read_heads(store)
    stored = [entry for chain in await chain_ids(store) async for entry in entries(store, chain, page=20_000)]
    read_rate = len(stored) / (time.perf_counter() - start)
    start = time.perf_counter()
    report = verify(stored, signer.public_key, heads=heads)
    rate = len(stored) / (time.perf_counter() - start)
    if not report.ok:
        raise SystemExit(f"verify failed: {report.findings[0]}")
    return rate, read_rate, len(stored)


def line(name: str, value: float, target: float | None = None) -> str:
    if target is None:
        return f"  {name:<44} {value:>12,.0f} events/s"
    verdict = "ok" if value >= target else "BELOW TARGET"
    return f"  {name:<44} {value:>12,.0f} events/s   target {target:>9,}   {value / target:5.2f}x  {verdict}"


async def main(count: int, cpu: int | None) -> None:
    note = pin_to_one_core(cpu)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    signer = Signer(Ed25519PrivateKey.generate())
    events = make_events(count)
    # The events stand for work arriving from sessions: settle them as `sqlgate serve` settles its
    # start-up heap (frozen, fewer collections), so their number does not slow the log.
    settle_heap()
    with tempfile.TemporaryDirectory() as tmp:
        store = await StateStore.open(f"sqlite:///{Path(tmp) / 'state.db'}")
        try:
            bench_append_warm = await bench_append(store, signer, make_events(2000))  # warm-up, not reported
            del bench_append_warm
            append = await bench_append(store, signer, events)
            verify_rate, read_rate, stored = await bench_verify(store, signer)
        finally:
            await store.close()
        floor = await bench_storage_floor(Path(tmp) / "state.db", Path(tmp) / "floor.db")
    chain_only = bench_chain_only(make_events(count))
    print(f"audit bench: {count:,} statement events, SQLite WAL, {note}, load average {load:.2f}")
    print(line("append (redact+chain+group commit, SQLite)", append, APPEND_TARGET))
    print(line("  of which redact+chain alone (no I/O)", chain_only))
    print(line("  SQLite alone, the same rows prebuilt", floor))
    print(f"  {'  = per record, SQLite alone':<44} {1e6 / floor:>12.1f} µs  (the floor for any writer of this log)")
    print(line(f"verify ({stored:,} stored records)", verify_rate, VERIFY_TARGET))
    print(line("  reading them from SQLite", read_rate))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="statement events to append")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last one allowed)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.cpu))
