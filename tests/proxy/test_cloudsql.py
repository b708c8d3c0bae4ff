"""Cloud SQL through the PostgreSQL listener, end to end against the local Cloud SQL stand-in.

The stand-in (tests/broker/cloudsql_standin.py) serves the Admin API routes and
plays the instance's server-side proxy: TLS 1.3 on 127.0.0.1:3307 with the CA
``connectSettings`` reports, a client certificate from ``generateEphemeralCert``
required, the startup user checked against the identity in it, then relayed to
the embedded PostgreSQL. The gateway finds its Google credentials the production
way (Application Default Credentials): ``GOOGLE_APPLICATION_CREDENTIALS`` names a
service-account file whose ``token_uri`` is a small token endpoint here.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlgate.cloudsql import CloudSqlDialer, InstanceName, parse_connect_settings
from sqlgate.embedded import BIN
from sqlgate.errors import UpstreamError
from tests.broker.cloudsql_standin import (
    LoopThread,
    StaticToken,
    TokenEndpoint,
    running_standin,
    service_account_file,
    token_with_email,
)
from tests.gateway import RunningGateway
from tests.proxy.tuned import records, wait_for

GATEWAY_TOKEN = "ya29.fake-token-of-the-gateway"  # the stand-in maps it to alice's IAM identity
IAM_USER = "alice@example.com"
READER_SA = "reader@proj.iam.gserviceaccount.com"
READER_TOKEN = "ya29.fake-token-of-the-reader-service-account"
POLICY = """\
rules:
  - name: analysts-read-cloud
    who: {groups: [analysts]}
    databases: [cloud]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
"""


class CloudSqlGateway(RunningGateway):
    """The test gateway, with ``cloud``: a cloudsql database whose instance is the stand-in."""

    def __init__(
        self, pg_server: Any, workdir: Path, database: str, standin: Any, *, service_account: str | None = None
    ) -> None:
        self.standin = standin
        self.service_account = service_account
        super().__init__(pg_server, workdir, POLICY, database, secrets.token_hex(3))

    def _prepare_database(self, policy: str) -> None:
        super()._prepare_database(policy)
        config = self.workdir / "sqlgate.yaml"
        cloud = (
            "  cloud:\n    engine: cloudsql\n"
            f"    dbname: {self.database}\n    admin_user: unused\n"
            f"    instance_connection_name: {self.standin.connection_name}\n"
            f"    sqladmin_api_endpoint: {self.standin.endpoint}\n"
            f"    roles: {{read: {self.roles['read']}}}\n"
        )
        login = IAM_USER
        if self.service_account is not None:
            cloud += (
                f"    service_accounts: {{read: {self.service_account}}}\n"
                f"    iam_credentials_endpoint: {self.standin.endpoint}\n"
            )
            login = self.service_account.removesuffix(".gserviceaccount.com")
        config.write_text(config.read_text().replace("policy_file:", cloud + "policy_file:"))
        self.pg_server.psql(f'GRANT {self.roles["read"]} TO "{login}"')

    def token_with_email(self, user: str, email: str, groups: tuple[str, ...] = ("analysts",)) -> str:
        """A dev-issuer token that also carries ``email`` (Cloud SQL's IAM database user is the caller's email)."""
        return token_with_email(self.settings, user, email, groups)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def standin(pg_server, loop_thread) -> Iterator[Any]:
    """The stand-in in front of the embedded server, on its own loop; alice's IAM user exists meanwhile.

    One per module: port 3307 stays in TIME_WAIT a while after a stand-in's connections close, and the
    stand-in's helper skips when it cannot bind it.
    """
    running = running_standin(
        pg_server, token=GATEWAY_TOKEN, iam_user=IAM_USER, instance="inst", service_accounts={READER_SA: READER_TOKEN}
    )
    server = loop_thread.call(running.__aenter__())
    yield server
    loop_thread.call(running.__aexit__(None, None, None))


@pytest.fixture(params=[None])
def cloud_gateway(
    pg_server, pg_database, standin, *, loop_thread, tmp_path, monkeypatch, request
) -> Iterator[CloudSqlGateway]:
    """A gateway with the ``cloud`` database, its Google credentials from a service-account file.

    Parametrized indirectly with a service account for ``read``, the gateway impersonates it.
    """
    standin.sessions.clear()
    standin.requests.clear()
    standin.impersonations.clear()
    tokens = TokenEndpoint(GATEWAY_TOKEN)
    loop_thread.call(tokens.start())
    key_file = service_account_file(tmp_path / "gateway-sa.json", tokens.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    gateway = CloudSqlGateway(pg_server, tmp_path, pg_database, standin, service_account=request.param)
    gateway.tokens = tokens  # type: ignore[attr-defined]
    yield gateway
    try:
        gateway.stop()  # drops the read role, and with it alice's membership
    finally:
        loop_thread.call(tokens.stop())


def test_psycopg_reaches_cloud_sql_through_the_gateway(cloud_gateway):
    """Login as the IAM user over the ephemeral certificate; masks, guardrails and audit as for self-hosted."""
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    with psycopg.connect(**{**cloud_gateway.conninfo("alice", token), "dbname": "cloud"}, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (IAM_USER,)
        assert conn.execute("SELECT email, ssn FROM customers WHERE id = 1").fetchone() == ("c***@example.com", "****")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="refused by guardrail"):
            conn.execute("DELETE FROM orders")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1000,)
    standin = cloud_gateway.standin
    assert standin.sessions == [IAM_USER]  # the stand-in saw alice's certificate and startup user
    assert {"connectSettings", "generateEphemeralCert"} <= set(standin.requests)
    assert cloud_gateway.tokens.calls >= 1  # the credentials came from the service-account file's token_uri
    starts = [r for r in records(cloud_gateway, "session.start") if r["database"] == "cloud"]
    assert [r.get("db_login") or r["data"].get("db_login") for r in starts] == [IAM_USER]
    refused = wait_for(
        lambda: [r for r in records(cloud_gateway, "statement") if r["data"]["sql"] == "DELETE FROM orders"]
    )
    assert refused[0]["outcome"] == "denied"
    assert refused[0]["database"] == "cloud"


def test_psql_reaches_cloud_sql_through_the_gateway(cloud_gateway):
    """The psql line a user types, the token as the password: rows come back masked from the instance."""
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    conninfo = f"host=127.0.0.1 port={cloud_gateway.pg_port} dbname=cloud user=alice"
    out = subprocess.run(
        [str(BIN / "psql"), "-X", "-At", conninfo, "-c", "SELECT current_user, email FROM customers WHERE id = 2"],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": token},
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{IAM_USER}|c***@example.com"


def test_revoking_the_lease_ends_the_cloud_sql_session(cloud_gateway):
    """A Cloud SQL lease has no login to drop, but revoking it still ends the relayed session (57P01)."""
    services = cloud_gateway.gateway.services
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    with psycopg.connect(**{**cloud_gateway.conninfo("alice", token), "dbname": "cloud"}, autocommit=True) as conn:
        conn.execute("SELECT 1")
        (session,) = services.sessions.list()
        lease = cloud_gateway.call(services.broker.leases.get(session.lease_id))
        cloud_gateway.call(services.broker.revoke(lease, "test revocation"))
        with pytest.raises(psycopg.OperationalError) as caught:
            conn.execute("SELECT 1")
    assert "revoked" in str(caught.value) or "terminat" in str(caught.value)


def test_cancel_reaches_the_instance(cloud_gateway):
    """A psycopg cancel goes to the gateway, which sends it to the instance over TLS with the certificate."""
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    with psycopg.connect(**{**cloud_gateway.conninfo("alice", token), "dbname": "cloud"}, autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel_safe)
        timer.start()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(60)")
        finally:
            timer.cancel()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert "cancel" in cloud_gateway.standin.sessions


def test_a_mysql_instance_is_refused_with_a_clear_error(cloud_gateway):
    """The PostgreSQL listener relays only PostgreSQL instances; a MySQL one is named in the error."""
    cloud_gateway.standin.database_version = "MYSQL_8_0"
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    try:
        with pytest.raises(psycopg.OperationalError, match="runs MYSQL_8_0; the PostgreSQL listener relays only"):
            psycopg.connect(**{**cloud_gateway.conninfo("alice", token), "dbname": "cloud"}, connect_timeout=20)
    finally:
        cloud_gateway.standin.database_version = "POSTGRES_16"
    assert cloud_gateway.standin.sessions == []  # refused before any TLS connection to the instance


def test_another_identity_is_refused_by_the_instance(cloud_gateway):
    """Bob's lease names bob's IAM user, which the certificate (the gateway's identity) does not carry."""
    token = cloud_gateway.token_with_email("bob", "bob@example.com")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**{**cloud_gateway.conninfo("bob", token), "dbname": "cloud"}, connect_timeout=20)
    assert cloud_gateway.standin.sessions == ["refused bob@example.com"]


@pytest.mark.parametrize("cloud_gateway", [READER_SA], indirect=True)
def test_a_service_account_logs_in_for_the_caller(cloud_gateway):
    """With service_accounts the lease logs in as the read service account's IAM user, over its certificate."""
    token = cloud_gateway.token_with_email("alice", IAM_USER)
    with psycopg.connect(**{**cloud_gateway.conninfo("alice", token), "dbname": "cloud"}, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("reader@proj.iam",)
        assert conn.execute("SELECT email FROM customers WHERE id = 1").fetchone() == ("c***@example.com",)
    standin = cloud_gateway.standin
    assert standin.sessions == ["reader@proj.iam"]  # the certificate carried the service account's identity
    assert standin.impersonations == [(IAM_USER, READER_SA)]  # asked for with the gateway's own token
    starts = [r for r in records(cloud_gateway, "session.start") if r["database"] == "cloud"]
    assert [(r["principal"]["subject"], r["db_login"]) for r in starts] == [("alice", "reader@proj.iam")]


class ShortLivedToken(StaticToken):
    """A token with 3 minutes left: less than the 4-minute refresh buffer."""

    def refresh(self, request) -> None:
        del request
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=3)


def test_the_certificate_is_fetched_again_before_it_expires(standin, loop_thread):
    """A certificate bounded by a token expiring within 4 minutes is never reused; a long one is."""

    async def fetches(credentials: Any) -> int:
        dialer = CloudSqlDialer(standin.connection_name, endpoint=standin.endpoint, credentials=credentials)
        before = standin.requests.count("generateEphemeralCert")
        try:
            first = await dialer.connect_info()
            second = await dialer.connect_info()
        finally:
            await dialer.aclose()
        assert first.settings.ip == second.settings.ip == "127.0.0.1"
        return standin.requests.count("generateEphemeralCert") - before

    assert loop_thread.call(fetches(ShortLivedToken(GATEWAY_TOKEN))) == 2
    assert loop_thread.call(fetches(StaticToken(GATEWAY_TOKEN))) == 1


def test_a_bad_token_is_a_clear_error(standin, loop_thread):
    """The Admin API's refusal reaches the caller as an UpstreamError naming the call and the instance."""

    async def attempt() -> None:
        dialer = CloudSqlDialer(standin.connection_name, endpoint=standin.endpoint, credentials=StaticToken("nope"))
        try:
            await dialer.connect_info()
        finally:
            await dialer.aclose()

    with pytest.raises(UpstreamError, match=r"refused /connectSettings for proj:europe-west1:inst: 401 bad token"):
        loop_thread.call(attempt())


def test_connect_settings_are_parsed():
    """PRIMARY before PRIVATE; no address or no CA is a clear error; connection names split from the right."""
    body = {
        "ipAddresses": [{"type": "PRIVATE", "ipAddress": "10.0.0.2"}, {"type": "PRIMARY", "ipAddress": "34.1.2.3"}],
        "databaseVersion": "POSTGRES_16",
        "serverCaCert": {"cert": "PEM"},
    }
    assert parse_connect_settings("p:r:i", body).ip == "34.1.2.3"
    body["ipAddresses"] = [{"type": "PRIVATE", "ipAddress": "10.0.0.2"}]
    assert parse_connect_settings("p:r:i", body).ip == "10.0.0.2"
    with pytest.raises(UpstreamError, match="no public or private IP"):
        parse_connect_settings("p:r:i", {**body, "ipAddresses": []})
    with pytest.raises(UpstreamError, match="no server CA"):
        parse_connect_settings("p:r:i", {**body, "serverCaCert": {}})
    assert InstanceName.parse("example.com:proj:europe-west1:db") == InstanceName(
        "example.com:proj", "europe-west1", "db"
    )
    with pytest.raises(UpstreamError, match="not project:region:instance"):
        InstanceName.parse("proj:db")
