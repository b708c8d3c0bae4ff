"""The audit log's storage thread yields the CPUs to sessions: it runs at a lower priority, in either writer mode."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from sqlgate.audit.priority import BACKGROUND_NICE, lower_thread_priority
from sqlgate.audit.process import AuditProcess
from sqlgate.audit.sqlite_writer import SqliteBatchWriter
from sqlgate.config import Settings
from sqlgate.store import StateStore
from tests.audit.conftest import security

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def expected_nice() -> int:
    return min(19, own_nice() + BACKGROUND_NICE)


def in_new_thread(work):
    result = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join()
    return result[0]


def nice_of_threads(pid: int) -> dict[int, int]:
    """The nice value of every thread of process ``pid`` by thread id, from /proc."""
    values = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values[int(task.name)] = int(fields[16])  # field 19 of stat; this list starts at field 3
    return values


def test_a_writer_thread_lowers_itself_and_nothing_else():
    before = own_nice()
    assert in_new_thread(lambda: (lower_thread_priority(), own_nice())) == (expected_nice(), expected_nice())
    assert own_nice() == before  # the caller's priority is untouched


async def test_the_sqlite_writer_thread_runs_lowered(tmp_path):
    store = await StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    writer = SqliteBatchWriter.for_store(store)
    assert writer is not None
    try:
        nice = await asyncio.get_running_loop().run_in_executor(writer._executor, own_nice)
        assert nice == expected_nice()
    finally:
        await writer.close()
        await store.close()


async def test_the_writer_process_lowers_its_storage_thread_only(tmp_path):
    """Lowering the whole writer process lengthened the latency tail under load; only its storage thread yields."""
    settings = Settings(data_dir=tmp_path, audit={"chain_id": "replica-n", "writer": "process"})
    async with AuditProcess(settings) as audit:
        await audit.record(security(1))  # committed: the child's SQLite writer thread has written it
        pid = audit.pid
        assert pid is not None
        threads = nice_of_threads(pid)
        assert threads[pid] == own_nice()
        lowered = [tid for tid, nice in threads.items() if nice == expected_nice()]
        assert len(lowered) == 1, f"exactly one thread (the storage thread) should run lowered: {threads}"
