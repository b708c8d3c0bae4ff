"""The broker: hands each identity a short-lived database login, and takes it back.

``await broker.lease(principal, database, privilege, ttl)`` answers from an
in-memory index while the caller's current lease has at least a quarter of its
life left (no I/O on that path), and otherwise mints one; callers asking for the
same (principal, database, privilege) at once share one mint. Every lease is
written to the state database as ``minting`` before the login exists and
flipped to ``active`` after, so a crash in between leaves a trace the reaper
follows.

Leases belong to the identity, not the replica: with PostgreSQL state and a
``server.lease_key_file`` shared by every replica, a lease's password is kept in
the state database sealed with that key (:mod:`sqlgate.broker.sealing`), and a
replica without a live lease of its own first looks for one another replica
minted. The look-up and any mint run under a PostgreSQL advisory lock per
(principal, database, privilege), so two replicas never mint for one key at
once. Without a shared key, passwords live only in the minting process's
memory and each replica mints its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from time import perf_counter  # a test replaces the module `time` to move the clock
from typing import Any

from sqlalchemy import text

from sqlgate.audit.events import Auditor, EventType
from sqlgate.broker.backends import Backend, MintSpec, create_backend
from sqlgate.broker.events import lease_event
from sqlgate.broker.lease import Credential, Lease, utcnow
from sqlgate.broker.names import marker
from sqlgate.broker.repository import LeaseRepository
from sqlgate.broker.sealing import LeaseSealer
from sqlgate.config import DatabaseConfig, Settings
from sqlgate.errors import AuditError, BrokerError, ConfigError, LeaseEnded, SqlgateError
from sqlgate.identity.principal import Principal
from sqlgate.metrics import LEASES, MINT_SECONDS
from sqlgate.replicas.names import replica_name
from sqlgate.store import StateStore
from sqlgate.tracing import span

log = logging.getLogger(__name__)

LeaseKey = tuple[str, str, str]
REVOKE_ATTEMPTS = 6
REVOKE_BACKOFF = 0.05  # seconds, doubled per attempt (with jitter), capped at 2 s
CLUSTER_MINTS = 4  # mints under the cross-replica lock at once: each holds a state connection while it runs


@dataclass(slots=True)
class _Live:
    """A lease this process minted, with the secret only it knows."""

    lease: Lease
    password: str | None
    reuse_until: float  # epoch seconds, compared on the fast path


class Broker:
    """Short-lived logins per (principal, database, privilege) for every configured database."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        auditor: Auditor,
        *,
        backends: dict[str, Backend] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.auditor = auditor
        self.leases = LeaseRepository(store)
        self._backends: dict[str, Backend] = dict(backends or {})
        self._live: dict[LeaseKey, _Live] = {}
        self._by_id: dict[str, _Live] = {}
        self._minting: dict[LeaseKey, asyncio.Task[Lease]] = {}
        self._revoking: dict[str, asyncio.Task[None]] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self.replica = replica_name(settings)
        key = None if store.is_sqlite else settings.server.lease_key_value()
        self._sealer = LeaseSealer(key) if key is not None else None
        self._lock_slots = asyncio.Semaphore(CLUSTER_MINTS)
        if not store.is_sqlite and key is None:
            log.info("no server.lease_key_file: this replica mints its own logins (leases are not shared)")

    # -- handing out ---------------------------------------------------------

    async def lease(self, principal: Principal, database: str, role: str, ttl: timedelta) -> Lease:
        """A live lease for ``principal`` on ``database`` with privilege level ``role`` (a key of ``roles``)."""
        key = (principal.key, database, role)
        live = self._live.get(key)
        if live is not None and time.time() < live.reuse_until:
            self.auditor.enqueue(lease_event("lease.reuse", live.lease, "success", principal=principal))
            LEASES.labels("reused").inc()
            return live.lease
        task = self._minting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._obtain(principal, database, role, ttl))
            self._minting[key] = task
            task.add_done_callback(lambda done: self._minted(key, done))
        return await asyncio.shield(task)

    def credentials(self, lease: Lease) -> Credential:
        """Host, port, database, user and password for logging in with ``lease`` directly."""
        live = self._by_id.get(lease.id)
        if live is None or not live.lease.is_live():
            raise LeaseEnded(f"lease {lease.id} is not live in this gateway; ask for a new one")
        config = self.settings.database(lease.database)
        if live.password is None:
            raise BrokerError(
                f"database {lease.database!r} uses Cloud SQL IAM authentication: there is no password to hand out",
                hint="connect through the gateway or the Cloud SQL connector with IAM authentication",
            )
        return Credential(
            host=config.host,
            port=config.port,
            dbname=config.dbname,
            user=live.lease.db_login,
            password=live.password,
            expires_at=live.lease.expires_at,
            scheme="mysql" if config.engine == "mysql" else "postgresql",
        )

    async def connect(self, lease: Lease, dbname: str | None = None) -> Any:
        """A driver connection logged in with ``lease`` (asyncpg; asyncmy for MySQL)."""
        live = self._by_id.get(lease.id)
        if live is None or not live.lease.is_live():
            raise LeaseEnded(f"lease {lease.id} is not live in this gateway; ask for a new one")
        return await self.backend(lease.database).connect(lease.db_login, live.password, dbname)

    def password(self, lease: Lease) -> str | None:
        """The secret of a lease minted here (for the proxy's upstream login); None when unknown."""
        live = self._by_id.get(lease.id)
        return None if live is None else live.password

    def ended(self, lease_id: str) -> asyncio.Event:
        """An event set when the lease ends (revoked, reaped); already set for a lease not live here."""
        event = self._ended.get(lease_id)
        if event is None:
            event = asyncio.Event()
            if lease_id in self._by_id:
                self._ended[lease_id] = event
            else:
                event.set()
        return event

    def on_end(self, lease_id: str, callback: Callable[[str], Any]) -> asyncio.Task[None]:
        """Call ``callback(lease_id)`` when the lease ends; cancel the returned task to unsubscribe."""
        event = self.ended(lease_id)

        async def wait() -> None:
            await event.wait()
            callback(lease_id)

        return asyncio.ensure_future(wait())

    # -- renewal and revocation ----------------------------------------------

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        """Extend a live lease to ``now + ttl`` (on the server and in the store)."""
        _check_ttl(ttl)
        current = await self.leases.get(lease.id)
        if current is None or not current.is_live():
            raise LeaseEnded(f"lease {lease.id} has ended and cannot be renewed")
        expires_at = utcnow() + ttl
        try:
            await self.backend(lease.database).renew(lease.db_login, expires_at)
        except SqlgateError:
            raise
        except Exception as exc:
            raise BrokerError(f"could not renew login {lease.db_login} on {lease.database}: {exc}") from exc
        await self.leases.set_state(lease.id, "active", expires_at=expires_at)
        renewed = replace(current, expires_at=expires_at)
        live = self._by_id.get(lease.id)
        if live is not None:
            live.lease = renewed
            live.reuse_until = renewed.reuse_until.timestamp()
        await self.auditor.record(lease_event("lease.renew", renewed, "success"))
        return renewed

    async def revoke(self, lease: Lease, reason: str) -> None:
        """End ``lease`` now: its sessions are terminated and its login dropped."""
        await self._end(lease, reason, "lease.revoke")

    async def revoke_for(
        self, *, principal: Principal | str | None = None, database: str | None = None, reason: str = "revoked"
    ) -> int:
        """Revoke every active lease of a principal (object or key) and/or database; returns how many."""
        if principal is None and database is None:
            raise ValueError("revoke_for needs a principal, a database or both")
        key = principal.key if isinstance(principal, Principal) else principal
        found = await self.leases.active(principal_key=key, database=database)
        await asyncio.gather(*(self.revoke(lease, reason) for lease in found))
        return len(found)

    async def reap(self, lease: Lease, reason: str) -> None:
        """End a lease found by the reaper (expired, interrupted, orphaned); audited as ``lease.reap``."""
        await self._end(lease, reason, "lease.reap")

    async def sync(self) -> list[str]:
        """Forget leases another replica ended (their sessions here are told); returns their ids."""
        ids = list(self._by_id)
        if not ids:
            return []
        stored = await self.leases.states(ids)
        ended = [lease_id for lease_id in ids if lease_id not in stored or stored[lease_id].state != "active"]
        for lease_id in ended:
            self._forget(lease_id)
        return ended

    # -- backends ------------------------------------------------------------

    def backend(self, alias: str) -> Backend:
        """The backend of database ``alias`` (created on first use)."""
        backend = self._backends.get(alias)
        if backend is None:
            backend = self._backends[alias] = create_backend(self.settings.database(alias))
        return backend

    async def rotate_admin(self, alias: str) -> datetime:
        """Rotate the admin secret of ``alias`` (see :mod:`sqlgate.broker.rotation`); returns when."""
        from sqlgate.broker.rotation import rotate_admin  # noqa: PLC0415 - rotation imports this module's types

        return await rotate_admin(alias, self.settings.database(alias), self.backend(alias), self.auditor)

    async def close(self) -> None:
        """Wait for mints and revocations in flight, then close admin connections."""
        pending = [*self._minting.values(), *self._revoking.values()]
        await asyncio.gather(*pending, return_exceptions=True)
        for backend in self._backends.values():
            await backend.close()

    # -- internals -----------------------------------------------------------

    async def _obtain(self, principal: Principal, alias: str, privilege: str, ttl: timedelta) -> Lease:
        """A live lease another replica minted, else a new one; one replica at a time per key."""
        if self._sealer is None:
            return await self._mint(principal, alias, privilege, ttl)
        async with self._lock_slots, self._cluster_lock((principal.key, alias, privilege)):
            reused = await self._reuse_shared(principal, alias, privilege)
            return reused if reused is not None else await self._mint(principal, alias, privilege, ttl)

    async def _reuse_shared(self, principal: Principal, alias: str, privilege: str) -> Lease | None:
        assert self._sealer is not None
        now = time.time()
        for lease, sealed in await self.leases.shared(principal.key, alias, privilege):
            if now >= lease.reuse_until.timestamp():
                continue
            self._remember(lease, self._sealer.open(lease.id, sealed))
            self.auditor.enqueue(lease_event("lease.reuse", lease, "success", principal=principal))
            LEASES.labels("reused").inc()
            return lease
        return None

    @contextlib.asynccontextmanager
    async def _cluster_lock(self, key: LeaseKey) -> AsyncIterator[None]:
        """A PostgreSQL advisory lock for ``key``, held by a transaction for as long as the block runs."""
        lock_id = int.from_bytes(hashlib.blake2b("\0".join(key).encode(), digest_size=8).digest(), "big", signed=True)
        async with self.store.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
            yield

    async def _mint(self, principal: Principal, alias: str, privilege: str, ttl: timedelta) -> Lease:
        attributes = {"sqlgate.principal": principal.key, "sqlgate.database": alias, "sqlgate.role": privilege}
        started = perf_counter()
        with span("sqlgate.mint", attributes) as current:
            lease = await self._mint_now(principal, alias, privilege, ttl)
            if current is not None:
                current.set_attribute("sqlgate.lease_id", lease.id)
        MINT_SECONDS.labels(self.settings.database(alias).engine).observe(perf_counter() - started)
        LEASES.labels("minted").inc()
        return lease

    async def _mint_now(self, principal: Principal, alias: str, privilege: str, ttl: timedelta) -> Lease:
        _check_ttl(ttl)
        config = self.settings.database(alias)
        backend = self.backend(alias)
        group_role = _group_role(config, alias, privilege) if backend.mints_logins else config.roles.get(privilege)
        now = utcnow()
        lease = Lease(
            id=uuid.uuid4().hex,
            principal_key=principal.key,
            subject=principal.subject,
            issuer=principal.issuer,
            database=alias,
            db_login=backend.login_for(principal, privilege),
            db_role=group_role,
            privilege=privilege,
            issued_at=now,
            expires_at=now + ttl,
            state="minting",
        )
        password = secrets.token_urlsafe(24) if backend.mints_logins else None
        spec = MintSpec(
            lease.id,
            lease.db_login,
            password,
            lease.expires_at,
            group_role,
            config.connection_limit,
            marker(lease.id, principal.key),
        )
        sealed = self._sealer.seal(lease.id, password) if self._sealer is not None and password else None
        recorded = asyncio.ensure_future(  # the row exists before the login does
            self.leases.insert(lease, sealed_secret=sealed, minted_by=self.replica)
        )
        try:
            spec = await backend.prepare(spec)
        finally:
            await recorded
        try:
            await backend.mint(spec)
        except Exception as exc:
            await self._abandon(lease, backend, "failed")
            if isinstance(exc, SqlgateError):
                raise
            raise BrokerError(f"could not mint a login on {alias}: {exc}") from exc
        lease = replace(lease, state="active")
        await self.leases.set_state(lease.id, "active")
        try:
            await self.auditor.record(lease_event("lease.mint", lease, "success", principal=principal))
        except Exception as exc:
            await self._abandon(lease, backend, "revoked")
            raise AuditError(f"lease {lease.id} withdrawn: its audit record could not be written") from exc
        self._remember(lease, password)
        return lease

    def _minted(self, key: LeaseKey, task: asyncio.Task[Lease]) -> None:
        if self._minting.get(key) is task:
            del self._minting[key]
        if not task.cancelled() and task.exception() is not None:
            log.debug("mint for %s failed: %s", key[1], task.exception())

    def _remember(self, lease: Lease, password: str | None) -> None:
        live = _Live(lease, password, lease.reuse_until.timestamp())
        key = (lease.principal_key, lease.database, lease.privilege)
        self._live[key] = live
        self._by_id[lease.id] = live

    def _forget(self, lease_id: str) -> None:
        live = self._by_id.pop(lease_id, None)
        if live is not None:
            key = (live.lease.principal_key, live.lease.database, live.lease.privilege)
            if self._live.get(key) is live:
                del self._live[key]
        event = self._ended.pop(lease_id, None)
        if event is not None:
            event.set()

    async def _end(self, lease: Lease, reason: str, event_type: EventType) -> None:
        task = self._revoking.get(lease.id)
        if task is None:
            task = asyncio.ensure_future(self._revoke(lease, reason, event_type))
            self._revoking[lease.id] = task
            task.add_done_callback(lambda _: self._revoking.pop(lease.id, None))
        await asyncio.shield(task)

    async def _revoke(self, lease: Lease, reason: str, event_type: EventType) -> None:
        self._forget(lease.id)
        await self.leases.set_state(lease.id, "revoking", reason=reason)
        backend = self.backend(lease.database)
        try:
            await _with_backoff(lambda: backend.revoke(lease.db_login))
        except Exception as exc:
            await self.auditor.record(lease_event(event_type, lease, "error", reason=f"{reason}; failed: {exc}"))
            raise BrokerError(f"could not revoke {lease.db_login} on {lease.database} (will retry): {exc}") from exc
        await self.leases.set_state(lease.id, "revoked")
        await self.auditor.record(lease_event(event_type, replace(lease, state="revoked"), "success", reason=reason))

    async def _abandon(self, lease: Lease, backend: Backend, state: str) -> None:
        """Undo a login that must not be handed out; the reaper finishes what fails here."""
        try:
            await backend.revoke(lease.db_login)
        except Exception:
            log.warning("could not drop login %s of an abandoned lease; the reaper will", lease.db_login)
            await self.leases.set_state(lease.id, "revoking", reason="mint abandoned")
            return
        await self.leases.set_state(lease.id, "failed" if state == "failed" else "revoked", reason="mint abandoned")


async def _with_backoff(action: Callable[[], Any]) -> None:
    delay = REVOKE_BACKOFF
    for attempt in range(REVOKE_ATTEMPTS):
        try:
            await action()
        except Exception:
            if attempt == REVOKE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            delay = min(delay * 2, 2.0)
        else:
            return


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise BrokerError(f"a lease needs a positive ttl, not {ttl}")


def _group_role(config: DatabaseConfig, alias: str, privilege: str) -> str:
    try:
        return config.roles[privilege]
    except KeyError:
        known = ", ".join(sorted(config.roles)) or "none"
        raise ConfigError(
            f"database {alias!r} maps no group role to privilege {privilege!r} (roles: {known})"
        ) from None
