"""Which faults are worth another try, and how long to wait between tries.

Transient: the server refused or reset the connection (it is restarting, a load
balancer moved), too many connections (53300), the backend was terminated by an
administrator or a failover (57P01), the server is starting or stopping (57P03),
and every connection exception (class 08). Anything else — a wrong password, a
missing database, a syntax error — fails at once: retrying cannot fix it.

Waits grow exponentially with full jitter (AWS architecture blog, "Exponential
Backoff and Jitter"), and the number of attempts is bounded.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

__all__ = ["TRANSIENT_SQLSTATES", "RetryPolicy", "describe_fault", "is_transient", "sqlstate_of"]

TRANSIENT_SQLSTATES = frozenset({"53300", "57P01", "57P02", "57P03"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter: ``attempts`` tries, waits up to ``max_delay`` each.

    The defaults wait about 5.6 s in all on average (at most 11.3 s): enough for a
    database restart or a failover, short enough to answer a request.
    """

    attempts: int = 8
    base_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based): uniform in [0, cap]."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, cap)  # noqa: S311 - jitter, not crypto

    async def sleep(self, attempt: int) -> None:
        """Wait before the next try."""
        await asyncio.sleep(self.delay(attempt))


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error (asyncpg's ``sqlstate``), else None."""
    value = getattr(exc, "sqlstate", None)
    return value if isinstance(value, str) else None


def is_transient(exc: BaseException) -> bool:
    """True when trying again may succeed (see the module docstring for the list)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, PermissionError | FileNotFoundError):
        return True  # unreachable host or network, connection aborted
    state = sqlstate_of(exc)
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state.startswith("08")
    # asyncpg's InternalClientError "another operation is in progress": the server's FATAL
    # (shutdown, termination) arrived while the connection was idle and is being consumed.
    return type(exc).__name__ in {"ConnectionDoesNotExistError", "ConnectionFailureError", "InternalClientError"}


def describe_fault(exc: BaseException) -> str:
    """A one-line description of a fault for error messages (type, SQLSTATE, message)."""
    state = sqlstate_of(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    prefix = f"{type(exc).__name__} [{state}]" if state else type(exc).__name__
    return f"{prefix}: {text}" if text != type(exc).__name__ else prefix
