"""Cloud SQL IAM authentication against the local Admin API and TLS stand-in (tests/broker/cloudsql_standin.py)."""

from __future__ import annotations

import asyncio

import pytest

from sqlgate.connector import CloudSqlIamCredentials, TokenUnavailable, create_pool
from tests.broker.cloudsql_standin import StaticToken, running_standin

APP_TOKEN = "ya29.fake-token-for-svc-orders"
IAM_USER = "svc-orders@example.iam"


@pytest.fixture
async def standin(pg_server, pg_database):
    """The Cloud SQL stand-in in front of the embedded server, and an IAM database user for the app."""
    async with running_standin(pg_server, token=APP_TOKEN, iam_user=IAM_USER, instance="orders") as server:
        yield server


def source_for(standin, dbname: str) -> CloudSqlIamCredentials:
    return CloudSqlIamCredentials(
        standin.connection_name,
        dbname,
        IAM_USER,
        credentials=StaticToken(APP_TOKEN),
        sqladmin_api_endpoint=standin.endpoint,
        refresh_strategy="lazy",
    )


async def test_pool_logs_in_as_the_iam_user(standin, pg_database):
    """The pool connects through the Google connector with IAM auth; closing the pool closes the connector."""
    source = source_for(standin, pg_database)
    pool = await create_pool(source, min_size=1, max_size=2)
    try:
        users = await asyncio.gather(*(pool.fetchval("SELECT session_user") for _ in range(4)))
        assert source.open_loops == 1
    finally:
        await pool.close()
    assert set(users) == {IAM_USER}
    assert {"connectSettings", "generateEphemeralCert"} <= set(standin.requests)
    assert IAM_USER in standin.sessions
    assert source.open_loops == 0


async def test_one_connector_per_event_loop(standin, pg_database):
    """Another event loop gets its own Google connector; the first loop's is never used there (#1107)."""
    source = source_for(standin, pg_database)
    mine = source.connector()
    assert source.connector() is mine

    async def in_another_loop() -> tuple[object, str]:
        theirs = source.connector()
        credential = await source.fetch()
        con = await source.connect(credential)
        try:
            return theirs, await con.fetchval("SELECT session_user")
        finally:
            await con.close()
            await source.aclose()

    theirs, user = await asyncio.to_thread(asyncio.run, in_another_loop())
    assert theirs is not mine
    assert user == IAM_USER
    assert source.connector() is mine
    assert source.open_loops == 1
    await source.aclose()
    assert source.open_loops == 0


async def test_no_google_credentials_is_a_token_problem(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    source = CloudSqlIamCredentials("proj:region:inst", "db", "svc@example.iam")
    with pytest.raises(TokenUnavailable, match="no Google credentials") as info:
        await source.fetch()
    assert info.value.cause == "token"
