"""PolicyHolder: atomic swaps, the old policy kept on a bad file, reloads audited."""

from __future__ import annotations

import asyncio
import os

import pytest

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.errors import ConfigError
from sqlgate.policy import PolicyHolder, decide
from tests.policy.support import person, utc

GOOD = "rules:\n  - {name: r1, who: {groups: [g]}, databases: [d], role: read}\n"
BETTER = "rules:\n  - {name: r2, who: {groups: [g]}, databases: [d], role: write}\n"
BAD = "rules:\n  - {name: r3, who: {groups: [g]}, databases: [d], role: read, max_ttl: forever}\n"


def _role(holder):
    return decide(holder.policy, person("x", "g"), "d", at=utc("2026-11-25 12:00")).role


async def test_load_reload_and_keep_old_policy_on_error(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    auditor = MemoryAuditor()
    holder = PolicyHolder(path, auditor)
    await holder.load()
    assert (_role(holder), holder.generation, holder.last_error) == ("read", 1, None)
    assert await holder.reload()  # unchanged: nothing happens
    assert holder.generation == 1

    path.write_text(BAD)
    assert not await holder.reload()
    assert _role(holder) == "read"
    assert holder.generation == 1
    assert "rules.0.max_ttl: not a duration" in (holder.last_error or "")
    assert not holder.healthy
    status = holder.status()
    assert (status["generation"], status["rules"], status["healthy"]) == (1, 1, False)
    assert "max_ttl" in status["last_error"]

    path.write_text(BETTER)
    assert await holder.reload()
    assert (_role(holder), holder.generation, holder.last_error) == ("write", 2, None)
    assert [(e.type, e.outcome) for e in auditor.events] == [
        ("config.reload", "success"),
        ("config.reload", "failure"),
        ("config.reload", "success"),
    ]
    assert auditor.events[1].reason is not None
    assert "max_ttl" in auditor.events[1].reason


async def test_first_load_of_a_bad_file_fails_fast(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BAD)
    holder = PolicyHolder(path, MemoryAuditor())
    with pytest.raises(ConfigError, match="is invalid"):
        await holder.load()
    assert holder.policy.rules == ()


async def test_a_removed_file_keeps_the_policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    holder = PolicyHolder(path, MemoryAuditor())
    await holder.load()
    path.unlink()
    assert not await holder.reload()
    assert _role(holder) == "read"
    assert "cannot read" in (holder.last_error or "")


async def test_no_file_means_deny_everything():
    holder = PolicyHolder(None, MemoryAuditor())
    await holder.load()
    assert _role(holder) is None
    assert holder.loaded_at is not None


async def test_watch_picks_up_a_change(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    holder = PolicyHolder(path, MemoryAuditor())
    await holder.load()
    task = asyncio.create_task(holder.watch(interval=0.01))
    try:
        path.write_text(BETTER)
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the hash still sees it
        for _ in range(500):
            if holder.generation == 2:
                break
            await asyncio.sleep(0.01)
        assert _role(holder) == "write"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
