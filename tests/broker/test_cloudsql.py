"""Cloud SQL IAM authentication end to end, through the real connector, against a local stand-in."""

from __future__ import annotations

import pytest

from sqlgate.broker import Broker
from sqlgate.broker.backends.cloudsql import CloudSqlBackend, iam_database_user
from sqlgate.cloudsql import iam_database_user as engine_user
from sqlgate.cloudsql import mysql_user_of
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError, UpstreamError
from tests.broker.cloudsql_standin import LoopThread, StaticToken, running_standin
from tests.broker.conftest import ALIAS, TTL, principal, settings_for

ALICE_TOKEN = "ya29.fake-token-for-alice"
READER_SA = "reader@proj.iam.gserviceaccount.com"
READER_TOKEN = "ya29.fake-token-of-the-reader"


@pytest.fixture
async def standin(pg_server, pg_database):
    """The stand-in in front of the embedded server's Unix socket, and an IAM user for alice."""
    async with running_standin(
        pg_server,
        token=ALICE_TOKEN,
        iam_user="alice@example.com",
        instance="inst",
        service_accounts={READER_SA: READER_TOKEN},
    ) as server:
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


async def test_a_service_account_lease_connects_as_the_service_account(
    pg_server, pg_database, store, auditor, tmp_path
):
    """With service_accounts the lease names the account's IAM user and the connector impersonates it.

    The stand-in runs on a loop of its own: the connector refreshes credentials with blocking calls.
    """
    thread = LoopThread()
    running = running_standin(
        pg_server,
        token=ALICE_TOKEN,
        iam_user="alice@example.com",
        instance="inst",
        service_accounts={READER_SA: READER_TOKEN},
    )
    standin = thread.call(running.__aenter__())
    config = DatabaseConfig(
        engine="cloudsql",
        dbname=pg_database,
        admin_user="unused",
        instance_connection_name=standin.connection_name,
        sqladmin_api_endpoint=standin.endpoint,
        iam_credentials_endpoint=standin.endpoint,
        roles={"read": "ignored"},
        service_accounts={"read": READER_SA},
    )
    backend = CloudSqlBackend(config, credentials=StaticToken(ALICE_TOKEN))
    broker = Broker(settings_for(config, tmp_path), store, auditor, backends={ALIAS: backend})
    try:
        lease = await broker.lease(principal("alice"), ALIAS, "read", TTL)
        assert lease.db_login == "reader@proj.iam"
        assert lease.subject == principal("alice").subject
        conn = await broker.connect(lease)
        try:
            assert await conn.fetchval("SELECT current_user") == "reader@proj.iam"
        finally:
            await conn.close()
        assert standin.sessions == ["reader@proj.iam"]
        assert ("alice@example.com", READER_SA) in standin.impersonations
    finally:
        await broker.close()
        thread.call(running.__aexit__(None, None, None))
        thread.stop()


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


def _config(**extra) -> DatabaseConfig:
    return DatabaseConfig(
        engine="cloudsql",
        dbname="db",
        admin_user="unused",
        instance_connection_name="proj:europe-west1:inst",
        roles={"read": "r", "write": "w"},
        **extra,
    )


def test_service_accounts_must_cover_every_level_with_service_account_emails():
    """service_accounts: every privilege level of roles, nothing else, each a service account email."""
    accounts = {"read": "sa-read@proj.iam.gserviceaccount.com", "write": "sa-write@proj.iam.gserviceaccount.com"}
    assert _config(service_accounts=accounts).service_accounts == accounts
    with pytest.raises(ValueError, match=r"missing: write"):
        _config(service_accounts={"read": accounts["read"]})
    with pytest.raises(ValueError, match=r"not in roles: admin"):
        _config(service_accounts={**accounts, "admin": "a@proj.iam.gserviceaccount.com"})
    with pytest.raises(ValueError, match=r"'alice@example.com' is not a service account email"):
        _config(service_accounts={**accounts, "write": "alice@example.com"})
    with pytest.raises(ValueError, match=r"share the IAM database user name 'sa-read' on Cloud SQL for MySQL"):
        _config(service_accounts={**accounts, "write": "sa-read@other.iam.gserviceaccount.com"})
    with pytest.raises(ValueError, match=r"for engine cloudsql only"):
        DatabaseConfig(
            dbname="db", admin_user="a", admin_password_env="X", roles={"read": "r"}, service_accounts=accounts
        )


def test_the_lease_login_is_the_service_account_of_the_level():
    """With service_accounts a lease's login is its level's service account's IAM user, whoever the caller."""
    accounts = {"read": "sa-read@proj.iam.gserviceaccount.com", "write": "sa-write@proj.iam.gserviceaccount.com"}
    backend = CloudSqlBackend(_config(service_accounts=accounts), credentials=StaticToken(ALICE_TOKEN))
    assert backend.login_for(principal("alice"), "read") == "sa-read@proj.iam"
    assert backend.login_for(principal("bob"), "write") == "sa-write@proj.iam"
    plain = CloudSqlBackend(_config(), credentials=StaticToken(ALICE_TOKEN))
    assert plain.login_for(principal("alice"), "write") == "alice@example.com"


def test_engine_user_names():
    """PostgreSQL keeps the email (service accounts shortened); MySQL keeps what comes before the @."""
    assert engine_user("alice@example.com", "POSTGRES_16") == "alice@example.com"
    assert engine_user("ci@proj.iam.gserviceaccount.com", "POSTGRES_16") == "ci@proj.iam"
    assert engine_user("alice@example.com", "MYSQL_8_0") == "alice"
    assert engine_user("ci@proj.iam.gserviceaccount.com", "MYSQL_8_0") == "ci"
    assert mysql_user_of("ci@proj.iam") == "ci"
