"""The example app: row-level security applies to each request's end user."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from examples.fastapi_app.app import create_app

from sqlgate.connector import EndUsers, GatewayCredentials
from sqlgate.connector.fastapi import Connector
from sqlgate.connector.testing import StaticToken, TestIssuer
from sqlgate.server.demo import SCHEMA_SQL as DEMO_SCHEMA_TEMPLATE
from tests.connector.conftest import GOOD_TOKEN

# The demo schema (sqlgate.server.demo), with the demo's role names filled in where it names them by placeholder.
SCHEMA_SQL = (
    DEMO_SCHEMA_TEMPLATE.replace("{owner}", "demo_owner")
    .replace("{read}", "demo_read")
    .replace("{write}", "demo_write")
)
RLS_SQL = (Path(__file__).parents[2] / "examples" / "fastapi_app" / "rls.sql").read_text()
DEMO_ROLES_SQL = """
DO $$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_read') THEN CREATE ROLE demo_read NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_write') THEN CREATE ROLE demo_write NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_owner') THEN CREATE ROLE demo_owner NOLOGIN; END IF;
END$$;
"""


@pytest.fixture
def demo_db(app_db):
    """The demo schema and data with the example's RLS policies; minted logins read as demo_read."""
    app_db.server.psql(DEMO_ROLES_SQL)
    app_db.psql(SCHEMA_SQL + RLS_SQL + f'GRANT demo_read TO "{app_db.grant}";')
    return app_db


async def test_rls_applies_to_the_end_user(demo_db, gateway):
    """customer7 sees their own record and 5 orders; customer8 theirs; a stranger nothing; no token is 401."""
    _, url = gateway
    issuer = TestIssuer()
    source = GatewayCredentials(url, demo_db.name, identity=StaticToken(GOOD_TOKEN), ttl=60)
    app = create_app(Connector(source, end_users=EndUsers(issuer.verifier), sqlalchemy=True))

    def as_user(subject: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + issuer.issue(subject)}

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app")
    async with app.router.lifespan_context(app), client:
        me7, orders7, stats7, orders8, stranger_me, stranger_orders, anonymous, health = await asyncio.gather(
            client.get("/me", headers=as_user("customer7@example.com")),
            client.get("/orders", headers=as_user("customer7@example.com")),
            client.get("/stats", headers=as_user("customer7@example.com")),
            client.get("/orders", params={"status": "paid"}, headers=as_user("customer8@example.com")),
            client.get("/me", headers=as_user("mallory@example.com")),
            client.get("/orders", headers=as_user("mallory@example.com")),
            client.get("/orders"),
            client.get("/healthz"),
        )
    assert me7.json()["id"] == 7
    assert "ssn" not in me7.json()
    assert {o["customer_id"] for o in orders7.json()} == {7}
    assert len(orders7.json()) == 5
    assert sum(v["orders"] for v in stats7.json().values()) == 5
    assert orders8.json()
    assert {(o["customer_id"], o["status"]) for o in orders8.json()} == {(8, "paid")}
    assert stranger_me.status_code == 404
    assert stranger_orders.json() == []
    assert anonymous.status_code == 401
    assert health.json() == {"status": "ok"}
