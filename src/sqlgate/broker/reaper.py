"""The reaper: ends expired leases, finishes interrupted ones, drops orphaned logins.

Each pass, under a lock so only one replica reaps at a time (a PostgreSQL
advisory lock on the state database; with SQLite, which one machine's processes
share (``server.workers``), an exclusive file lock in ``data_dir``): leases past
their expiry, leases left ``revoking`` and leases left
``minting`` longer than ``mint_grace`` (a crash between recording and creating
the login) are revoked; then every login on each server that carries our prefix
(and, on PostgreSQL, our marker comment) but has no live or in-flight lease is
dropped. Each one is audited as ``lease.reap``. A database with
``rotate_admin_every`` has its admin secret rotated when the secret file is older.
Every replica also forgets, each period, the leases another replica ended
(:meth:`Broker.sync`), so its sessions on them close and it mints anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.broker.backends import Backend, FoundLogin
from sqlgate.broker.broker import Broker
from sqlgate.broker.lease import Lease, utcnow

log = logging.getLogger(__name__)

REAPER_LOCK_KEY = 0x5167_6174_6552_6170  # "SqgateRap": one advisory lock id for every replica
DEFAULT_PERIOD = timedelta(seconds=10)
DEFAULT_MINT_GRACE = timedelta(seconds=60)


@dataclass
class ReapReport:
    """What one pass did."""

    leases: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: bool = False  # another replica held the lock


class Reaper:
    """Runs :meth:`run_once` every ``period`` until stopped."""

    def __init__(
        self,
        broker: Broker,
        *,
        period: timedelta = DEFAULT_PERIOD,
        mint_grace: timedelta = DEFAULT_MINT_GRACE,
    ) -> None:
        self.broker = broker
        self.period = period
        self.mint_grace = mint_grace
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start reaping in the background (the first pass runs at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sqlgate-reaper")

    async def stop(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> ReapReport:
        """One pass over every database; skipped when another replica holds the lock."""
        report = ReapReport()
        async with self._lock() as held:
            if not held:
                report.skipped = True
                return report
            await self._reap_leases(report)
            for alias in self.broker.settings.databases:
                await self._reap_orphans(alias, report)
                await self._rotate_if_due(alias, report)
        return report

    async def _loop(self) -> None:
        while True:
            try:
                await self.broker.sync()
                report = await self.run_once()
                for error in report.errors:
                    log.warning("reaper: %s", error)
            except Exception:
                log.exception("reaper pass failed; trying again in %s", self.period)
            await asyncio.sleep(self.period.total_seconds())

    async def _reap_leases(self, report: ReapReport) -> None:
        now = utcnow()
        for lease in await self.broker.leases.reapable(now, now - self.mint_grace):
            reason = {"active": "expired", "revoking": "revocation resumed"}.get(lease.state, "mint interrupted")
            try:
                await self.broker.reap(lease, reason)
                report.leases.append(lease.id)
            except Exception as exc:
                report.errors.append(f"lease {lease.id} ({lease.db_login}): {exc}")

    async def _reap_orphans(self, alias: str, report: ReapReport) -> None:
        backend = self.broker.backend(alias)
        if not backend.mints_logins:
            return
        try:
            found = await backend.logins()
        except Exception as exc:
            report.errors.append(f"cannot list logins on {alias}: {exc}")
            return
        by_id = await self.broker.leases.states(f.lease_id for f in found if f.lease_id)
        by_login = await self.broker.leases.by_login(alias, (f.login for f in found if not f.lease_id))
        for login in found:
            lease = by_id.get(login.lease_id) if login.lease_id else by_login.get(login.login)
            if lease is not None and self._keep(lease):
                continue
            await self._drop_orphan(alias, backend, login, lease, report)

    def _keep(self, lease: Lease) -> bool:
        """Live leases and mints still within their grace belong to someone."""
        if lease.state == "active":
            return True
        return lease.state == "minting" and lease.issued_at > utcnow() - self.mint_grace

    async def _drop_orphan(
        self, alias: str, backend: Backend, login: FoundLogin, lease: Lease | None, report: ReapReport
    ) -> None:
        try:
            await backend.revoke(login.login)
        except Exception as exc:
            report.errors.append(f"orphan {login.login} on {alias}: {exc}")
            return
        report.orphans.append(login.login)
        await self.broker.auditor.record(
            AuditEvent(
                type="lease.reap",
                principal=PrincipalRef(subject=lease.subject, issuer=lease.issuer) if lease else None,
                database=alias,
                db_login=login.login,
                outcome="success",
                reason="orphaned login dropped",
                data={"lease_id": login.lease_id, "orphan": True},
            )
        )

    async def _rotate_if_due(self, alias: str, report: ReapReport) -> None:
        config = self.broker.settings.database(alias)
        path = config.admin_password_file
        if config.rotate_admin_every is None:
            return
        if path is None:
            report.errors.append(
                f"{alias}: rotate_admin_every needs admin_password_file (an env var cannot be rewritten)"
            )
            return
        try:
            changed = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            if utcnow() - changed < config.rotate_admin_every:
                return
            await self.broker.rotate_admin(alias)
            report.rotated.append(alias)
        except Exception as exc:
            report.errors.append(f"admin rotation of {alias} failed: {exc}")

    @contextlib.asynccontextmanager
    async def _lock(self) -> AsyncIterator[bool]:
        """True while this replica may reap: an advisory lock on PostgreSQL, a file lock with SQLite."""
        store = self.broker.store
        if store.is_sqlite:
            with _file_lock(self.broker.settings.data_dir / "reaper.lock") as held:
                yield held
            return
        async with store.engine.connect() as conn:
            held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": REAPER_LOCK_KEY})).scalar())
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": REAPER_LOCK_KEY})
                    await conn.commit()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """True while this process holds an exclusive lock on ``path`` (False at once when another does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
