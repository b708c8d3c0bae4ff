"""Which faults are retried, and that backoff stays within its bounds."""

from __future__ import annotations

import asyncpg
import pytest

from sqlgate.connector.retry import RetryPolicy, describe_fault, is_transient


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        asyncpg.TooManyConnectionsError("too many"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionFailureError("08006"),
        asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"),
        asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ],
)
def test_transient_faults(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InvalidPasswordError("password authentication failed"),
        asyncpg.InvalidCatalogNameError("database does not exist"),
        asyncpg.PostgresSyntaxError("syntax error"),
        PermissionError(13, "denied"),
        ValueError("bad"),
    ],
)
def test_permanent_faults(exc):
    assert not is_transient(exc)


def test_backoff_is_jittered_and_capped():
    """Full jitter: every wait is within [0, min(max_delay, base * 2**(n-1))]."""
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for attempt in range(1, 11):
        cap = min(1.0, 0.1 * 2 ** (attempt - 1))
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits)
        assert max(waits) > cap / 2, "waits spread over the range"


def test_describe_fault_names_type_and_sqlstate():
    text = describe_fault(asyncpg.AdminShutdownError("terminating connection"))
    assert text == "AdminShutdownError [57P01]: terminating connection"
    assert describe_fault(ConnectionRefusedError()) == "ConnectionRefusedError"
