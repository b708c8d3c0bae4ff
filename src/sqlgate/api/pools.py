"""asyncpg pools per lease (asyncmy ones for MySQL: :mod:`.mysqlpool`): the API's connections to target databases.

One pool per (database, lease): every connection in it logs in with that lease's
login, so a pool never outlives the grant behind it. The broker hands out the
same lease while it is fresh (and renewal extends it in place), so requests
share a pool; a new lease gets a new pool, and the old pool is terminated when
its lease ends (``broker.on_end``: revoked, reaped or expired).

Connections keep the deployment's default ``statement_timeout`` as a session
setting: it is set when a connection opens and again by the reset that runs
when a connection goes back to the pool, so a request with its own timeout
changes it for that request only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.api.mysqlpool import MysqlPool
from sqlgate.broker.broker import Broker
from sqlgate.broker.lease import Lease
from sqlgate.identity.principal import Principal

log = logging.getLogger(__name__)

_MAX_LEASES = 10_000
_RESET = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; SET statement_timeout = {ms}"


class LeasePools:
    """The pools of one gateway replica, keyed by lease id."""

    def __init__(self, broker: Broker, *, max_size: int, default_timeout_ms: int) -> None:
        self._broker = broker
        self._max_size = max_size
        self._timeout_ms = default_timeout_ms
        self._pools: dict[str, Any] = {}
        self._opening: dict[str, asyncio.Task[Any]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._leases: dict[tuple[str, str, str], Lease] = {}
        self.on_lease_end: list[Callable[[str], None]] = []
        """Called with a lease id when its pool is closed (others keep per-lease state too)."""

    @property
    def default_timeout_ms(self) -> int:
        """The statement timeout every pooled connection has between requests."""
        return self._timeout_ms

    def __len__(self) -> int:
        return len(self._pools)

    async def lease(self, principal: Principal, database: str, role: str, ttl: timedelta) -> Lease:
        """The broker's lease for this caller, remembered while the broker would hand out the same one.

        The broker itself reuses a lease until a quarter of its life remains; asking
        it once per API request would only add a ``lease.reuse`` record per statement.
        """
        key = (principal.key, database, role)
        lease = self._leases.get(key)
        if lease is not None and time.time() < lease.reuse_until.timestamp() and lease.id in self._pools:
            return lease
        lease = await self._broker.lease(principal, database, role, ttl)
        if len(self._leases) >= _MAX_LEASES:
            self._leases.clear()
        self._leases[key] = lease
        return lease

    async def get(self, lease: Lease) -> Any:
        """The pool of ``lease`` (opened on first use; concurrent callers share one opening)."""
        pool = self._pools.get(lease.id)
        if pool is not None:
            return pool
        task = self._opening.get(lease.id)
        if task is None:
            task = asyncio.ensure_future(self._open(lease))
            self._opening[lease.id] = task
            task.add_done_callback(lambda _done: self._opening.pop(lease.id, None))
        return await asyncio.shield(task)

    async def _open(self, lease: Lease) -> Any:
        broker, timeout = self._broker, self._timeout_ms
        if broker.settings.database(lease.database).engine == "mysql":
            return self._opened(
                lease, MysqlPool(lambda: broker.connect(lease), max_size=self._max_size, timeout_ms=timeout)
            )

        async def connect(*_args: Any, **_kwargs: Any) -> Any:
            return await broker.connect(lease)

        async def init(connection: Any) -> None:
            await connection.execute(f"SET statement_timeout = {timeout}")

        async def reset(connection: Any) -> None:
            await connection.execute(_RESET.format(ms=timeout))

        pool = await asyncpg.create_pool(
            min_size=1,
            max_size=self._max_size,
            connect=connect,
            init=init,
            reset=reset,
            max_inactive_connection_lifetime=60.0,
        )
        return self._opened(lease, pool)

    def _opened(self, lease: Lease, pool: Any) -> Any:
        self._pools[lease.id] = pool
        self._watchers[lease.id] = self._broker.on_end(lease.id, self._lease_ended)
        return pool

    def _lease_ended(self, lease_id: str) -> None:
        self._watchers.pop(lease_id, None)
        self._leases = {key: lease for key, lease in self._leases.items() if lease.id != lease_id}
        for callback in self.on_lease_end:
            callback(lease_id)
        pool = self._pools.pop(lease_id, None)
        if pool is not None:
            log.debug("lease %s ended: closing its API pool", lease_id)
            pool.terminate()

    async def close(self) -> None:
        """Close every pool (the gateway is stopping)."""
        for task in list(self._opening.values()):
            with contextlib.suppress(Exception):
                await task
        for watcher in self._watchers.values():
            watcher.cancel()
        self._watchers.clear()
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            try:
                async with asyncio.timeout(5):
                    await pool.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
