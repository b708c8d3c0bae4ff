"""The FastAPI lifespan and dependencies: start-up that names what is wrong, transactions as the end user."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from sqlgate.connector import EndUsers, GatewayCredentials, RetryPolicy, StartupError, TokenFile
from sqlgate.connector.fastapi import Connector, CurrentEndUser, DbConnection, DbSession
from sqlgate.connector.testing import StaticToken, TestIssuer
from tests.connector.conftest import GOOD_TOKEN


async def start_fails(connector: Connector) -> StartupError:
    app = FastAPI(lifespan=connector.lifespan)
    with pytest.raises(StartupError) as info:
        async with app.router.lifespan_context(app):
            pass
    return info.value


async def test_startup_without_a_token(tmp_path, app_db, gateway):
    _, url = gateway
    error = await start_fails(Connector(GatewayCredentials(url, app_db.name, identity=TokenFile(tmp_path / "none"))))
    assert error.cause == "token"
    assert "start-up failed, the token is the problem: no token file at" in str(error)


async def test_startup_with_a_rejected_token(app_db, gateway):
    _, url = gateway
    error = await start_fails(Connector(GatewayCredentials(url, app_db.name, identity=StaticToken("stolen"))))
    assert error.cause == "token"
    assert "refused the app's token" in str(error)
    assert "stolen" not in str(error)


async def test_startup_with_the_gateway_down(app_db):
    source = GatewayCredentials("http://127.0.0.1:9", app_db.name, identity=StaticToken(GOOD_TOKEN), timeout=1)
    error = await start_fails(Connector(source))
    assert error.cause == "gateway"
    assert "the sqlgate gateway at http://127.0.0.1:9 is unreachable" in str(error)


async def test_startup_with_the_database_down(app_db, proxied_gateway, fault_proxy):
    _, url = proxied_gateway
    fault_proxy.cut()
    source = GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN))
    error = await start_fails(Connector(source, retry=RetryPolicy(attempts=2, base_delay=0.05)))
    assert error.cause == "database"
    assert "no connection to the database after 2 attempts" in str(error)


@pytest.fixture
def reader_role(app_db):
    """A role minted logins may SET ROLE to (members of the grant role)."""
    role = f"r_{secrets.token_hex(4)}"
    app_db.server.psql(f'CREATE ROLE "{role}" NOLOGIN; GRANT "{role}" TO "{app_db.grant}";')
    yield role
    app_db.server.psql(
        f'DROP OWNED BY "{role}" CASCADE; DROP ROLE IF EXISTS "{role}";',
    )


def whoami_app(connector: Connector) -> FastAPI:
    app = FastAPI(lifespan=connector.lifespan)

    @app.get("/asyncpg")
    async def by_asyncpg(db: DbConnection, user: CurrentEndUser) -> dict:
        row = await db.fetchrow(
            "SELECT current_user AS role, current_setting('sqlgate.subject', true) AS subject,"
            " current_setting('sqlgate.groups', true) AS groups, now() = statement_timestamp() AS in_tx"
        )
        return {**dict(row), "user": user.subject if user else None}

    @app.get("/sqlalchemy")
    async def by_sqlalchemy(session: DbSession) -> dict:
        row = (await session.execute(text("SELECT current_user, current_setting('sqlgate.subject', true)"))).one()
        return {"role": row[0], "subject": row[1]}

    return app


async def test_requests_run_as_the_end_user(app_db, gateway, reader_role):
    """A verified bearer token: SET LOCAL ROLE by group and sqlgate.subject, for asyncpg and SQLAlchemy alike."""
    _, url = gateway
    issuer = TestIssuer()
    end_users = EndUsers(issuer.verifier, roles={"analysts": reader_role})
    connector = Connector(
        GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60),
        end_users=end_users,
        sqlalchemy=True,
    )
    app = whoami_app(connector)
    alice = {"Authorization": "Bearer " + issuer.issue("alice@example.com", groups=["analysts"])}
    bob = {"Authorization": "Bearer " + issuer.issue("bob@example.com")}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            a, b, sa = await asyncio.gather(
                client.get("/asyncpg", headers=alice),
                client.get("/asyncpg", headers=bob),
                client.get("/sqlalchemy", headers=alice),
            )
            missing = await client.get("/asyncpg")
            forged = await client.get("/asyncpg", headers={"Authorization": "Bearer " + TestIssuer().issue("alice")})
    assert a.json()["role"] == reader_role
    assert a.json()["subject"] == "alice@example.com"
    assert a.json()["groups"] == "analysts"
    assert b.json()["role"].startswith("sgt_"), "no mapped group: the app's own login"
    assert b.json()["subject"] == "bob@example.com"
    assert sa.json() == {"role": reader_role, "subject": "alice@example.com"}
    assert missing.status_code == forged.status_code == 401
    assert "needs an end-user bearer token" in missing.json()["detail"]
    assert "failed verification" in forged.json()["detail"]


async def test_subject_does_not_leak_between_requests(app_db, gateway):
    """SET LOCAL and set_config(..., true) end with the transaction: a pooled connection forgets the user."""
    _, url = gateway
    issuer = TestIssuer()
    connector = Connector(
        GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60),
        end_users=EndUsers(issuer.verifier, required=False),
        pool_options={"min_size": 1, "max_size": 1},
    )
    app = whoami_app(connector)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        first = await client.get("/asyncpg", headers={"Authorization": "Bearer " + issuer.issue("carol")})
        anonymous = await client.get("/asyncpg")
    assert first.json()["subject"] == "carol"
    assert anonymous.json()["subject"] in {None, ""}
    assert anonymous.json()["user"] is None


async def test_shutdown_closes_everything(app_db, gateway):
    _, url = gateway
    connector = Connector(GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60))
    app = FastAPI(lifespan=connector.lifespan)
    async with app.router.lifespan_context(app):
        pool = connector.pool
        assert await pool.fetchval("SELECT 1") == 1
    assert pool._closed
    with pytest.raises(RuntimeError, match="not started"):
        _ = connector.pool


async def test_a_lost_connection_is_a_retryable_503(app_db, gateway):
    """A backend killed mid-request (57P01) answers 503 with Retry-After; the next request gets a new connection."""
    _, url = gateway
    connector = Connector(
        GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60),
        pool_options={"min_size": 1, "max_size": 1},
    )
    app = FastAPI(lifespan=connector.lifespan)

    @app.get("/die")
    async def die(db: DbConnection) -> dict:
        await db.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return {}

    @app.get("/pid")
    async def pid(db: DbConnection) -> dict:
        return {"pid": await db.fetchval("SELECT pg_backend_pid()")}

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        before = (await client.get("/pid")).json()["pid"]
        died = await client.get("/die")
        after = await client.get("/pid")
    assert died.status_code == 503
    assert died.headers["retry-after"] == "1"
    assert "terminating connection due to administrator command" in died.json()["detail"]
    assert after.status_code == 200
    assert after.json()["pid"] != before
