"""Credential sources: the gateway contract (POST /v1/credentials) and token-as-password."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from sqlgate.connector import (
    GatewayCredentials,
    GatewayDenied,
    GatewayUnavailable,
    TokenAsPassword,
    TokenRefused,
    create_pool,
)
from sqlgate.connector.testing import StaticToken
from tests.connector.conftest import GOOD_TOKEN


async def test_gateway_mints_a_working_short_lived_login(app_db, gateway):
    gw, url = gateway
    source = GatewayCredentials(url, app_db.name, identity=StaticToken(GOOD_TOKEN), ttl="1m")
    try:
        credential = await source.fetch()
    finally:
        await source.aclose()
    assert credential.user == gw.minted[0][0]
    assert credential.password not in repr(credential)
    remaining = credential.remaining()
    assert remaining is not None
    assert 50 < remaining <= 60
    con = await asyncpg.connect(
        host=credential.host,
        port=credential.port,
        user=credential.user,
        password=credential.password,
        database=credential.dbname,
    )
    try:
        assert await con.fetchval("SELECT session_user") == credential.user
    finally:
        await con.close()


async def test_gateway_refusals_map_to_causes(app_db, gateway):
    """401 is the token's fault, 403 the gateway policy's, 503 the gateway's; each says what to do."""
    gw, url = gateway
    bad = GatewayCredentials(url, app_db.name, identity=StaticToken("wrong-token"))
    denied = GatewayCredentials(url, "other_db", identity=StaticToken(GOOD_TOKEN))
    try:
        with pytest.raises(TokenRefused, match="refused the app's token") as refused:
            await bad.fetch()
        with pytest.raises(GatewayDenied, match="refused this app database 'other_db'") as policy:
            await denied.fetch()
        gw.failure = (503, "the broker cannot reach the database")
        with pytest.raises(GatewayUnavailable, match="answered 503: the broker cannot reach") as failing:
            await bad.fetch()
    finally:
        await bad.aclose()
        await denied.aclose()
    assert refused.value.cause == "token"
    assert policy.value.rule == "default-deny"
    assert policy.value.cause == failing.value.cause == "gateway"
    assert gw.minted == []


async def test_gateway_down():
    source = GatewayCredentials("http://127.0.0.1:9", "demo", identity=StaticToken(GOOD_TOKEN), timeout=1)
    try:
        with pytest.raises(GatewayUnavailable, match="unreachable") as info:
            await source.fetch()
    finally:
        await source.aclose()
    assert info.value.cause == "gateway"


def contract_transport(answer: httpx.Response, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return httpx.MockTransport(handler)


async def test_gateway_request_follows_the_contract():
    """Bearer token in Authorization; JSON body with database, role and ttl."""
    seen: list[httpx.Request] = []
    expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
    answer = httpx.Response(
        200,
        json={
            "host": "db.internal",
            "port": 5432,
            "dbname": "prod",
            "user": "sg_app_1",
            "password": "pw",
            "expires_at": expires,
            "dsn": "postgresql://...",
        },
    )
    source = GatewayCredentials(
        "https://gw.example/",
        "prod",
        "read",
        identity=StaticToken("tok"),
        ttl=900,
        transport=contract_transport(answer, seen),
    )
    credential = await source.fetch()
    await source.aclose()
    assert str(seen[0].url) == "https://gw.example/v1/credentials"
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert json.loads(seen[0].content) == {"database": "prod", "role": "read", "ttl": 900}
    assert (credential.host, credential.port, credential.user) == ("db.internal", 5432, "sg_app_1")


@pytest.mark.parametrize(
    "body",
    [
        {"host": "h"},
        {"host": "h", "port": "x", "dbname": "d", "user": "u", "password": "p", "expires_at": "never"},
        ["not", "an", "object"],
    ],
)
async def test_unreadable_gateway_answers_are_refused(body):
    source = GatewayCredentials(
        "https://gw.example",
        "prod",
        identity=StaticToken("tok"),
        transport=contract_transport(httpx.Response(200, json=body), []),
    )
    with pytest.raises(GatewayUnavailable, match="cannot read"):
        await source.fetch()
    await source.aclose()


async def test_token_as_password(app_db, pg_server):
    """A server that takes the token as the password: the pool logs in with it; a wrong token is TokenRefused."""
    user = f"tap_{secrets.token_hex(4)}"
    token = "tok" + secrets.token_urlsafe(32)
    pg_server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{token}'")
    try:
        good = TokenAsPassword(pg_server.host, pg_server.port, app_db.name, user, identity=StaticToken(token))
        pool = await create_pool(good, min_size=1, max_size=1)
        try:
            assert await pool.fetchval("SELECT session_user") == user
        finally:
            await pool.close()
        wrong = TokenAsPassword(pg_server.host, pg_server.port, app_db.name, user, identity=StaticToken("nope"))
        with pytest.raises(TokenRefused, match="refused the app's token") as info:
            await create_pool(wrong, min_size=1, max_size=1)
        assert info.value.cause == "token"
        assert "nope" not in str(info.value)
    finally:
        pg_server.psql(f"DROP ROLE IF EXISTS {user}")
