"""An asyncpg pool whose connections always log in with a valid, refreshing credential.

:func:`create_pool` returns an ``asyncpg.Pool`` (a :class:`CredentialPool`) in which

- every new connection takes the credential manager's current credential, and
  retries transient faults with bounded exponential backoff and full jitter,
  ending in one :class:`~sqlgate.connector.errors.DatabaseUnavailable` that names
  the last fault;
- every connection retires before its credential expires (less the margin) or
  after ``max_lifetime``, whichever is first: an idle one is closed by a timer, a
  busy one when it is released — so no connection outlives its credential;
- every checkout is pre-pinged (``SELECT 1``) and a dead connection replaced,
  so a database restart costs the pool nothing but reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.connector.credentials import Credential, CredentialSource
from sqlgate.connector.errors import ConnectorError, DatabaseUnavailable, GatewayUnavailable, TokenRefused
from sqlgate.connector.manager import CredentialManager
from sqlgate.connector.retry import RetryPolicy, describe_fault, is_transient

__all__ = ["CredentialConnection", "CredentialPool", "connect_with_retries", "create_pool"]

log = logging.getLogger("sqlgate.connector")

AUTH_FAILED = frozenset({"28P01", "28000"})
DEFAULT_MAX_LIFETIME = 1800.0
Reset = Callable[[Any], Awaitable[None]]


@dataclass
class _Lifetime:
    """When a connection must retire, and whether it is checked out."""

    retire_at: float
    user: str
    timer: asyncio.TimerHandle | None = None
    in_use: bool = False
    due: bool = False


def lifetime_for(credential: Credential, manager: CredentialManager, max_lifetime: float) -> _Lifetime:
    """When a connection made now with ``credential`` must retire (monotonic clock)."""
    life = max_lifetime
    remaining = credential.remaining()
    if remaining is not None:
        life = min(life, remaining - manager.margin_for(credential))
    return _Lifetime(retire_at=time.monotonic() + max(life, 0.0), user=credential.user)


def arm_retirement(con: CredentialConnection, state: _Lifetime) -> None:
    """Give ``con`` its lifetime and a timer that retires it then (closed if idle, marked if in use)."""
    state.timer = asyncio.get_running_loop().call_later(max(state.retire_at - time.monotonic(), 0.0), _retire, con)
    con.sqlgate = state
    con.add_termination_listener(_cancel_timer)


class CredentialConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that knows which login it used and when it must retire."""

    sqlgate: _Lifetime | None = None


async def connect_with_retries(
    manager: CredentialManager, retry: RetryPolicy, **connect_kwargs: Any
) -> tuple[Any, Credential]:
    """One connection with the manager's credential, retrying transient faults; returns it and the credential.

    A refused login (28P01/28000) gets one fresh credential and one more try: the
    old one may have been revoked. Non-transient faults fail at once.
    """
    last: BaseException | None = None
    refreshed = False
    for attempt in range(1, retry.attempts + 1):
        credential = await manager.get()
        try:
            return await manager.source.connect(credential, **connect_kwargs), credential
        except asyncpg.PostgresError as exc:
            if exc.sqlstate in AUTH_FAILED:
                if not refreshed:
                    refreshed = True
                    await manager.refresh()
                    continue
                raise _login_refused(manager.source, credential, exc) from None
            if not is_transient(exc):
                raise _unusable(credential, exc) from None
            last = exc
        except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            if not is_transient(exc):
                raise _unusable(credential, exc) from None
            last = exc
        if attempt < retry.attempts:
            log.info("sqlgate connector: connect attempt %d failed (%s); retrying", attempt, describe_fault(last))
            await retry.sleep(attempt)
    assert last is not None
    raise DatabaseUnavailable(
        f"no connection to the database after {retry.attempts} attempts; last fault: {describe_fault(last)}",
        hint="check that the database is up and reachable from this app",
        attempts=retry.attempts,
    )


class CredentialPool(asyncpg.Pool):  # type: ignore[misc]
    """An ``asyncpg.Pool`` that connects through a :class:`CredentialManager`; made by :func:`create_pool`."""

    def __init__(  # noqa: PLR0913 - keyword-only options of a public constructor
        self,
        manager: CredentialManager,
        *,
        owns_manager: bool,
        retry: RetryPolicy,
        pre_ping: bool,
        max_lifetime: float,
        reset: Reset | None,
        **pool_kwargs: Any,
    ) -> None:
        self.manager = manager
        self._owns_manager = owns_manager
        self._retry = retry
        self._pre_ping = pre_ping
        self._max_lifetime = max_lifetime
        self._user_reset = reset
        super().__init__(connect=self._new_connection, reset=self._reset_connection, **pool_kwargs)

    async def _new_connection(self, *_args: Any, loop: Any = None, **kwargs: Any) -> Any:  # noqa: ARG002 - asyncpg passes loop
        kwargs.setdefault("timeout", 10.0)
        con, credential = await connect_with_retries(self.manager, self._retry, **kwargs)
        self._arm_retirement(con, credential)
        return con

    def _arm_retirement(self, con: CredentialConnection, credential: Credential) -> None:
        arm_retirement(con, lifetime_for(credential, self.manager, self._max_lifetime))

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 - asyncpg's signature
        for _ in range(self._maxsize + 2):
            proxy = await super()._acquire(timeout)
            state: _Lifetime = proxy.sqlgate
            state.in_use = True
            if state.due or time.monotonic() >= state.retire_at:
                proxy.terminate()
                continue
            if not self._pre_ping or await _ping(proxy):
                return proxy
        raise DatabaseUnavailable(
            "every pooled connection failed its pre-ping and new ones failed too",
            hint="the database may be restarting; try again shortly",
        )

    async def _reset_connection(self, con: CredentialConnection) -> None:
        state = con.sqlgate
        if state is not None:
            state.in_use = False
            if state.due or time.monotonic() >= state.retire_at:
                con.terminate()
                return
        await con.reset()
        if self._user_reset is not None:
            await self._user_reset(con)

    async def close(self) -> None:
        """Close every connection gracefully, then the credential manager if this pool made it."""
        try:
            await super().close()
        finally:
            if self._owns_manager:
                await self.manager.aclose()


async def create_pool(  # noqa: PLR0913 - keyword-only options of a public constructor
    source: CredentialSource | CredentialManager,
    *,
    retry: RetryPolicy | None = None,
    pre_ping: bool = True,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
    margin: float = 30.0,
    reset: Reset | None = None,
    min_size: int = 1,
    max_size: int = 10,
    **pool_kwargs: Any,
) -> CredentialPool:
    """An ``asyncpg.Pool`` whose connections use ``source``'s credentials, refreshed in the background.

    ``max_lifetime`` caps every connection's age (seconds) in addition to its
    credential's expiry; ``margin`` is how long before expiry a credential stops
    being used. Other keyword arguments go to ``asyncpg.Pool`` (``setup``, ``init``,
    ``max_queries``, ``max_inactive_connection_lifetime``, ``command_timeout``...).
    Raises a :class:`~sqlgate.connector.errors.ConnectorError` naming the cause
    when the first credential or the first connections cannot be had.
    """
    owns = not isinstance(source, CredentialManager)
    manager = CredentialManager(source, margin=margin) if not isinstance(source, CredentialManager) else source
    try:
        await manager.start()
        pool = CredentialPool(
            manager,
            owns_manager=owns,
            retry=retry or RetryPolicy(),
            pre_ping=pre_ping,
            max_lifetime=max_lifetime,
            reset=reset,
            min_size=min_size,
            max_size=max_size,
            max_queries=pool_kwargs.pop("max_queries", 50_000),
            max_inactive_connection_lifetime=pool_kwargs.pop("max_inactive_connection_lifetime", 300.0),
            loop=None,
            connection_class=CredentialConnection,
            record_class=pool_kwargs.pop("record_class", asyncpg.Record),
            **pool_kwargs,
        )
        await pool
    except BaseException:
        if owns:
            await manager.aclose()
        raise
    return pool


def _retire(con: CredentialConnection) -> None:
    state = con.sqlgate
    if state is None or con.is_closed():
        return
    if state.in_use:
        state.due = True
    else:
        log.debug("sqlgate connector: retiring an idle connection of %s before its credential expires", state.user)
        con.terminate()


def _cancel_timer(con: Any) -> None:
    state = getattr(con, "sqlgate", None)
    if state is not None and state.timer is not None:
        state.timer.cancel()


async def _ping(proxy: Any) -> bool:
    try:
        await proxy.execute("SELECT 1", timeout=5.0)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError) as exc:
        log.info("sqlgate connector: pre-ping failed (%s); replacing the connection", describe_fault(exc))
        with contextlib.suppress(asyncpg.InterfaceError):  # already released when asyncpg saw it die
            proxy.terminate()
        return False
    return True


def _login_refused(source: Any, credential: Credential, exc: BaseException) -> ConnectorError:
    if getattr(source, "password_is_token", False):
        return TokenRefused(
            f"the database refused the app's token as the password of {credential.user!r}: {describe_fault(exc)}",
            hint="check the token source and that the server trusts its issuer",
        )
    return GatewayUnavailable(
        f"the database refused the login {credential.user!r} the credential source gave, "
        f"even after a fresh one: {describe_fault(exc)}",
        hint="the gateway may have revoked it, or its clock is off",
    )


def _unusable(credential: Credential, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"the database at {credential.host}:{credential.port}/{credential.dbname} refused the connection: "
        f"{describe_fault(exc)}",
        hint="this fault is not transient; check the database name, grants and TLS settings",
    )
