"""asyncmy connections per lease: the API's pool for a MySQL/MariaDB database.

The same contract as the asyncpg pools of :mod:`sqlgate.api.pools` (one pool per
lease, every connection logged in with that lease's login, the pool terminated when
its lease ends): ``acquire``, ``release``, ``terminate`` and ``close``.

A connection runs in autocommit and keeps the deployment's default statement
timeout as a session setting (MariaDB ``max_statement_time``, MySQL
``max_execution_time``). When it goes back to the pool it is reset with
``COM_RESET_CONNECTION`` (transactions rolled back, locks, temporary tables, user
variables, prepared statements and session settings gone) and the two settings are
made again (with the driver's character set, which MySQL may not restore), so
nothing one request did reaches the next. A connection that is
closed, broken, or still has result rows or result sets owed (a truncated result)
is closed instead of reused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asyncmy.errors import Error as MysqlError

from sqlgate.errors import SqlgateError, UpstreamError

log = logging.getLogger(__name__)

COM_RESET_CONNECTION = 0x1F
_RESET_SECONDS = 5.0


def timeout_setting(connection: Any, timeout_ms: int) -> str:
    """The session setting that ends statements after ``timeout_ms`` on this server (0: no limit)."""
    if "mariadb" in str(connection.get_server_info()).lower():
        return f"max_statement_time = {max(0, int(timeout_ms)) / 1000:.3f}"
    return f"max_execution_time = {max(0, int(timeout_ms))}"


async def set_session(connection: Any, timeout_ms: int) -> None:
    """The driver's character set, autocommit on, and the statement timeout, in one round trip."""
    charset = connection.character_set_name()  # the driver's own (utf8mb4): what it decodes rows with
    settings = f"SESSION autocommit = 1, SESSION {timeout_setting(connection, timeout_ms)}"
    async with connection.cursor() as cursor:
        await cursor.execute(f"SET NAMES {charset}, {settings}")


def reusable(connection: Any) -> bool:
    """True when the connection is open and owes no rows or result sets."""
    if not connection.connected or connection._stream_broken:  # noqa: SLF001 - asyncmy keeps no public flag
        return False
    result = connection._result  # noqa: SLF001
    return result is None or not (result.unbuffered_active or result.has_next)


class MysqlPool:
    """At most ``max_size`` asyncmy connections of one lease, reset between requests."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], *, max_size: int, timeout_ms: int) -> None:
        self._connect = connect
        self._timeout_ms = timeout_ms
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[Any] = []
        self._busy: set[Any] = set()
        self._closed = False

    async def acquire(self) -> Any:
        """An idle connection, or a new one (UpstreamError when the server cannot be reached)."""
        if self._closed:
            raise UpstreamError("the database login of this pool has ended; ask again")
        await self._slots.acquire()
        try:
            connection = await self._take()
        except BaseException:
            self._slots.release()
            raise
        self._busy.add(connection)
        return connection

    async def _take(self) -> Any:
        while self._idle:
            connection = self._idle.pop()
            if reusable(connection):
                return connection
            connection.close()
        connection = await self._connect()
        try:
            await set_session(connection, self._timeout_ms)
        except (MysqlError, OSError) as exc:
            connection.close()
            raise UpstreamError(f"cannot prepare a connection: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        return connection

    async def release(self, connection: Any) -> None:
        """Reset ``connection`` and keep it, or close it when it cannot be reused."""
        self._busy.discard(connection)
        try:
            if self._closed or not reusable(connection):
                connection.close()
                return
            async with asyncio.timeout(_RESET_SECONDS):
                await connection._execute_command(COM_RESET_CONNECTION, b"")  # noqa: SLF001 - asyncmy has no reset()
                await connection._read_ok_packet()  # noqa: SLF001
                await set_session(connection, self._timeout_ms)
            self._idle.append(connection)
        except (MysqlError, OSError, TimeoutError) as exc:
            log.debug("closing an API connection that did not reset: %s", exc)
            connection.close()
        except BaseException:
            connection.close()
            raise
        finally:
            self._slots.release()

    async def end(self, connection: Any) -> None:
        """End ``connection``'s statement on the server (KILL QUERY, as the same login) and close it.

        A closed socket does not stop a statement, and MySQL's ``max_execution_time`` ends
        SELECT only: a statement the gateway gives up on (its backstop timeout, an
        administrator ending the session) is killed. Best effort: a login may kill its own threads.
        """
        thread_id = connection.thread_id()
        connection.close()
        try:
            async with asyncio.timeout(_RESET_SECONDS):
                killer = await self._connect()
                try:
                    async with killer.cursor() as cursor:
                        await cursor.execute(f"KILL QUERY {int(thread_id)}")
                finally:
                    killer.close()
        except (MysqlError, OSError, TimeoutError, SqlgateError) as exc:
            log.warning("could not end a statement on its server (thread %s): %s", thread_id, exc)

    def terminate(self) -> None:
        """Close every connection now, idle or in use (the lease ended)."""
        self._closed = True
        for connection in [*self._idle, *self._busy]:
            connection.close()
        self._idle.clear()
        self._busy.clear()

    async def close(self) -> None:
        """Close every connection (the gateway is stopping)."""
        self.terminate()
