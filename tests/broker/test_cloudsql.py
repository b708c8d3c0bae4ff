"""Cloud SQL IAM authentication end to end, through the real connector, against a local stand-in."""

from __future__ import annotations

import pytest

from sqlgate.broker import Broker
from sqlgate.broker.backends.cloudsql import CloudSqlBackend, iam_database_user
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from tests.broker.cloudsql_standin import StaticToken, running_standin
from tests.broker.conftest import ALIAS, TTL, principal, settings_for

ALICE_TOKEN = "ya29.fake-token-for-alice"


@pytest.fixture
async def standin(pg_server, pg_database):
    """The stand-in in front of the embedded server's Unix socket, and an IAM user for alice."""
    async with running_standin(pg_server, token=ALICE_TOKEN, iam_user="alice@example.com", instance="inst") as server:
        yield server


@pytest.fixture
def cloudsql_config(standin, pg_database):
    return DatabaseConfig(
        engine="cloudsql",
        dbname=pg_database,
        admin_user="unused",
        instance_connection_name=standin.connection_name,
        sqladmin_api_endpoint=standin.endpoint,
        roles={"read": "ignored"},
    )


async def test_lease_and_connect_with_iam(cloudsql_config, standin, store, auditor, tmp_path):
    """A lease names the IAM database user; the connector logs in as it with no password; revoke ends the lease."""
    backend = CloudSqlBackend(cloudsql_config, credentials=StaticToken(ALICE_TOKEN))
    broker = Broker(settings_for(cloudsql_config, tmp_path), store, auditor, backends={ALIAS: backend})
    try:
        lease = await broker.lease(principal("alice"), ALIAS, "read", TTL)
        assert lease.db_login == "alice@example.com"
        assert broker.password(lease) is None
        with pytest.raises(BrokerError, match="no password"):
            broker.credentials(lease)
        conn = await broker.connect(lease)
        try:
            assert await conn.fetchval("SELECT current_user") == "alice@example.com"
        finally:
            await conn.close()
        assert backend.connector() is backend.connector()
        assert {"connectSettings", "generateEphemeralCert"} <= set(standin.requests)
        assert standin.sessions == ["alice@example.com"]
        ended = broker.ended(lease.id)
        await broker.revoke(lease, "test")
        assert ended.is_set()
        assert auditor.types() == ["lease.mint", "lease.revoke"]
    finally:
        await broker.close()


async def test_another_identity_is_refused(cloudsql_config, standin):
    """The stand-in, like Cloud SQL, refuses a user that is not the identity behind the token."""
    backend = CloudSqlBackend(cloudsql_config, credentials=StaticToken(ALICE_TOKEN))
    try:
        with pytest.raises(UpstreamError, match=r"as bob@example\.com"):
            await backend.connect("bob@example.com")
        assert standin.sessions == ["refused bob@example.com"]
    finally:
        await backend.close()


def test_iam_user_names():
    """Emails are the IAM users; service accounts drop .gserviceaccount.com; no email is a clear error."""
    assert iam_database_user(principal("alice")) == "alice@example.com"
    robot = principal("robot").__class__(
        subject="1", issuer="https://accounts.google.com", name="robot", email="ci@proj.iam.gserviceaccount.com"
    )
    assert iam_database_user(robot) == "ci@proj.iam"
    nobody = principal("x").__class__(subject="2", issuer="i", name="nobody")
    with pytest.raises(BrokerError, match="no email"):
        iam_database_user(nobody)


async def test_rotation_is_refused(cloudsql_config, store, auditor, tmp_path):
    """There is no admin password with IAM authentication."""
    broker = Broker(settings_for(cloudsql_config, tmp_path), store, auditor)
    try:
        with pytest.raises(BrokerError, match="Cloud SQL IAM"):
            await broker.rotate_admin(ALIAS)
    finally:
        await broker.close()
