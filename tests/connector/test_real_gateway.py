"""The connector against a real sqlgate gateway: `POST /v1/credentials` with the app's own token."""

from __future__ import annotations

import secrets

import pytest

from sqlgate.connector import GatewayCredentials, GatewayDenied, create_pool
from sqlgate.connector.testing import StaticToken
from tests.gateway import DEMO_POLICY, RunningGateway


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


async def test_pool_logs_in_with_a_login_minted_by_the_gateway(gateway):
    token = gateway.token("svc-orders", ("engineers",))
    source = GatewayCredentials(gateway.http_url, "demo", identity=StaticToken(token))
    pool = await create_pool(source, max_size=2)
    try:
        user, count = await pool.fetchrow("SELECT current_user, count(*) FROM orders")
    finally:
        await pool.close()
        await source.aclose()
    assert user.startswith(f"g{gateway.tag}_")
    assert count == 1000


async def test_policy_refusal_is_a_gateway_error_naming_the_reason(gateway):
    source = GatewayCredentials(gateway.http_url, "demo", identity=StaticToken(gateway.token("nobody", ("x",))))
    try:
        with pytest.raises(GatewayDenied, match="no rule"):
            await source.fetch()
    finally:
        await source.aclose()


async def test_a_grant_with_masks_is_refused_as_a_plain_login(gateway):
    """An app in a group whose rule masks columns gets no login: a clear GatewayDenied naming the rule and the way."""
    source = GatewayCredentials(gateway.http_url, "demo", identity=StaticToken(gateway.token("svc-bi", ("analysts",))))
    try:
        with pytest.raises(GatewayDenied, match="will not issue a plain database login for 'demo'") as caught:
            await source.fetch()
    finally:
        await source.aclose()
    assert caught.value.rule == "analysts-read"
    assert caught.value.hint is not None
    assert "TokenAsPassword" in caught.value.hint
    assert "direct_login: true" in str(caught.value)
