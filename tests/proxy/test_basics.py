"""psql and psycopg through the gateway: login with a token, policy, guardrails, refusals."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest


async def refusal(gateway, user, token, dbname="demo"):
    """The SQLSTATE and message the gateway refuses a login with (asyncpg exposes both)."""
    with pytest.raises(asyncpg.PostgresError) as caught:
        await asyncpg.connect(
            host="127.0.0.1", port=gateway.pg_port, user=user, password=token, database=dbname, ssl=False
        )
    return caught.value.sqlstate, str(caught.value)


def test_login_with_token_runs_queries_as_a_minted_login(gateway):
    token = gateway.token("erin", ("engineers",))
    with psycopg.connect(**gateway.conninfo("erin", token)) as conn:
        user, count = conn.execute("SELECT current_user, count(*) FROM customers").fetchone()
    assert user.startswith(f"g{gateway.tag}_")
    assert count == 200


async def test_bad_token_is_refused_with_28p01(gateway):
    sqlstate, message = await refusal(gateway, "erin", "not-a-token")
    assert sqlstate == "28P01"
    assert "not a JWT" in message


async def test_user_must_match_the_token(gateway):
    sqlstate, message = await refusal(gateway, "mallory", gateway.token("erin", ("engineers",)))
    assert sqlstate == "28000"
    assert "does not match" in message


async def test_no_rule_means_42501_with_a_reason(gateway):
    sqlstate, message = await refusal(gateway, "zed", gateway.token("zed", ("nobody",)))
    assert sqlstate == "42501"
    assert "no rule" in message


async def test_unknown_database_is_3d000(gateway):
    sqlstate, _ = await refusal(gateway, "erin", gateway.token("erin", ("engineers",)), dbname="nope")
    assert sqlstate == "3D000"


def test_guardrail_refuses_a_write_and_the_session_goes_on(gateway):
    token = gateway.token("erin", ("engineers",))
    with psycopg.connect(**gateway.conninfo("erin", token), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE postgres")
        assert conn.execute("SELECT 1").fetchone() == (1,)
