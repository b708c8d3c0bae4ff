"""Cloud SQL for MySQL through the MySQL listener, end to end against the local Cloud SQL stand-in.

The stand-in (tests/broker/cloudsql_standin.py) serves the Admin API routes and
the IAM Credentials API's ``generateAccessToken``, and plays the instance's
server-side proxy: TLS 1.3 on 127.0.0.1:3307 with a client certificate from
``generateEphemeralCert`` required, the MySQL login's user checked against the
identity in the certificate (the email's part before ``@``), then relayed to the
machine's MariaDB, where the IAM users exist without a password. The gateway
finds its Google credentials the production way: ``GOOGLE_APPLICATION_CREDENTIALS``
names a service-account file whose ``token_uri`` is a small token endpoint here.

Two gateways over the same stand-in: one logs in with its own identity (the
certificate carries the gateway's token, which the stand-in maps to alice's IAM
identity), one with ``service_accounts`` (the certificate carries the token of
the impersonated service account of the granted privilege level).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from sqlgate.cloudsql import CloudSqlDialer
from sqlgate.errors import UpstreamError
from sqlgate.mysqlproxy.upstream import connect_cloudsql_upstream
from sqlgate.mywire.constants import Capability
from tests.broker.cloudsql_standin import (
    LoopThread,
    StaticToken,
    TokenEndpoint,
    running_mysql_standin,
    service_account_file,
    token_with_email,
)
from tests.mysqlproxy.conftest import MysqlGateway, mariadb_or_skip, records, root_sql, sqlgate_connect_mysql

TAG = secrets.token_hex(3)
GATEWAY_TOKEN = f"ya29.gateway-{TAG}"
ALICE = f"alice{TAG}@example.com"  # the gateway's own identity in the stand-in, and alice's email
ALICE_DB_USER = f"alice{TAG}"  # her Cloud SQL for MySQL IAM database user
READER_SA = f"sr{TAG}@proj.iam.gserviceaccount.com"
WRITER_SA = f"sw{TAG}@proj.iam.gserviceaccount.com"
SA_TOKENS = {READER_SA: f"ya29.reader-{TAG}", WRITER_SA: f"ya29.writer-{TAG}"}
POLICY = """\
rules:
  - name: analysts-read-cloud
    who: {groups: [analysts]}
    databases: [cloud]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: writers-cloud
    who: {groups: [writers]}
    databases: [cloud]
    role: write
    max_ttl: 1h
    guardrails: {deny: [ddl, dcl]}
"""


class CloudMysqlGateway(MysqlGateway):
    """The MySQL test gateway, plus ``cloud``: a cloudsql database whose instance is the stand-in."""

    def __init__(self, workdir: Path, standin: Any, *, service_accounts: dict[str, str] | None = None) -> None:
        self.standin = standin
        self.service_accounts = service_accounts
        super().__init__(workdir, POLICY)

    def _prepare(self, policy: str) -> None:
        super()._prepare(policy)
        config = self.workdir / "sqlgate.yaml"
        cloud = (
            "  cloud:\n    engine: cloudsql\n"
            f"    dbname: {self.database}\n    admin_user: unused\n"
            f"    instance_connection_name: {self.standin.connection_name}\n"
            f"    sqladmin_api_endpoint: {self.standin.endpoint}\n"
            f"    roles: {{read: {self.roles['read']}, write: {self.roles['write']}}}\n"
        )
        if self.service_accounts:
            accounts = ", ".join(f"{level}: {email}" for level, email in self.service_accounts.items())
            cloud += f"    service_accounts: {{{accounts}}}\n    iam_credentials_endpoint: {self.standin.endpoint}\n"
        config.write_text(config.read_text().replace("policy_file:", cloud + "policy_file:"))

    def connect_cloud(self, user: str, email: str, groups: tuple[str, ...] = ("analysts",)) -> Any:
        """A PyMySQL connection to ``cloud`` through the listener, a token carrying ``email`` as the password."""
        token = token_with_email(self.settings, user, email, groups)
        return pymysql.connect(
            host="127.0.0.1", port=self.mysql_port, user=user, password=token, database="cloud", connect_timeout=20
        )


def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def wait_until(condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def standin(loop_thread) -> Iterator[Any]:
    """The stand-in in front of MariaDB (one per module: port 3307 lingers in TIME_WAIT after it)."""
    mariadb_or_skip()
    running = running_mysql_standin(
        identities={GATEWAY_TOKEN: ALICE}, instance=f"inst{TAG}", service_accounts=SA_TOKENS
    )
    server = loop_thread.call(running.__aenter__())
    yield server
    loop_thread.call(running.__aexit__(None, None, None))


@pytest.fixture
def credentials(loop_thread, tmp_path, monkeypatch) -> Iterator[TokenEndpoint]:
    """The gateway's Application Default Credentials: a service-account file whose tokens come from here."""
    tokens = TokenEndpoint(GATEWAY_TOKEN)
    loop_thread.call(tokens.start())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path / "sa.json", tokens.url)))
    yield tokens
    loop_thread.call(tokens.stop())


def _iam_users(database: str, *users: tuple[str, str]) -> None:
    for user, privileges in users:
        root_sql(f"CREATE USER IF NOT EXISTS '{user}'@'%'", f"GRANT {privileges} ON {database}.* TO '{user}'@'%'")


def _drop_iam_users(*users: str) -> None:
    for user in users:
        root_sql(f"DROP USER IF EXISTS '{user}'@'%'")


@pytest.fixture
def cloud_gateway(standin, credentials, tmp_path) -> Iterator[CloudMysqlGateway]:
    """A gateway logging in to the stand-in with its own identity (alice's IAM user)."""
    standin.sessions.clear()
    standin.requests.clear()
    standin.mysql_passwords.clear()
    gateway = CloudMysqlGateway(tmp_path, standin)
    _iam_users(gateway.database, (ALICE_DB_USER, "SELECT"))
    try:
        yield gateway
    finally:
        try:
            gateway.stop()
        finally:
            _drop_iam_users(ALICE_DB_USER)


@pytest.fixture
def sa_gateway(standin, credentials, tmp_path) -> Iterator[CloudMysqlGateway]:
    """A gateway that impersonates one service account per privilege level."""
    standin.sessions.clear()
    standin.requests.clear()
    standin.impersonations.clear()
    gateway = CloudMysqlGateway(tmp_path, standin, service_accounts={"read": READER_SA, "write": WRITER_SA})
    reader, writer = READER_SA.split("@", maxsplit=1)[0], WRITER_SA.split("@", maxsplit=1)[0]
    _iam_users(gateway.database, (reader, "SELECT"), (writer, "SELECT, INSERT, UPDATE, DELETE"))
    try:
        yield gateway
    finally:
        try:
            gateway.stop()
        finally:
            _drop_iam_users(reader, writer)


# -- the gateway's own identity ---------------------------------------------------------


def test_pymysql_reaches_cloud_sql_for_mysql_through_the_gateway(cloud_gateway):
    """Login with a token; the IAM user over the certificate; masks, guardrails and audit as for self-hosted."""
    conn = cloud_gateway.connect_cloud("alice", ALICE)
    try:
        assert rows(conn, "SELECT CURRENT_USER()") == [(f"{ALICE_DB_USER}@%",)]
        assert rows(conn, "SELECT email, ssn FROM customers WHERE id = 1") == [("a***@example.com", "****")]
        with pytest.raises(pymysql.err.MySQLError) as refused:
            rows(conn, "DELETE FROM orders")
        assert refused.value.args[0] == 1142
        assert "analysts-read-cloud" in refused.value.args[1]
        assert rows(conn, "SELECT count(*) FROM orders") == [(2,)]
    finally:
        conn.close()
    standin = cloud_gateway.standin
    assert standin.sessions == [ALICE_DB_USER]  # the stand-in saw alice's certificate and her MySQL IAM user
    assert standin.mysql_passwords == ["empty"]  # mysql_clear_password answered; the token is in the certificate
    assert {"connectSettings", "generateEphemeralCert"} <= set(standin.requests)
    assert cloud_gateway.settings.databases["cloud"].service_accounts == {}
    starts = [r for r in records(cloud_gateway, "session.start") if r["database"] == "cloud"]
    assert [r["db_login"] for r in starts] == [ALICE]
    assert [r["principal"]["subject"] for r in starts] == ["alice"]
    denied = [r for r in records(cloud_gateway, "statement") if r["data"]["sql"] == "DELETE FROM orders"]
    assert [(r["outcome"], r["database"]) for r in denied] == [("denied", "cloud")]


def test_sqlgate_connect_with_client_mysql_reaches_a_cloud_sql_for_mysql_database(cloud_gateway):
    """`sqlgate connect cloud --client mysql`: the engine is the instance's, so the user names the client."""
    token = token_with_email(cloud_gateway.settings, "alice", ALICE, ("analysts",))
    lines = sqlgate_connect_mysql(cloud_gateway, token, "cloud", "--client", "mysql")
    assert lines == ["a***@example.com", "b***@example.org"]


def test_another_identity_is_refused_by_the_instance(cloud_gateway):
    """Bob's lease names bob's IAM user, which the certificate (the gateway's identity) does not carry."""
    with pytest.raises(pymysql.err.MySQLError) as caught:
        cloud_gateway.connect_cloud("bob", f"bob{TAG}@example.com")
    assert caught.value.args[0] == 1105
    assert cloud_gateway.standin.sessions == [f"refused bob{TAG}"]


def test_kill_query_reaches_the_instance(cloud_gateway):
    """KILL QUERY from a second connection of the caller interrupts SLEEP on the instance (as her IAM user)."""
    running = cloud_gateway.connect_cloud("alice", ALICE)
    result: list[Any] = []

    def sleep() -> None:
        try:
            result.append(rows(running, "SELECT SLEEP(30)")[0][0])
        except pymysql.err.MySQLError as exc:
            result.append(exc.args[0])

    worker = threading.Thread(target=sleep)
    worker.start()
    wait_until(
        lambda: root_sql(
            "SELECT ID FROM information_schema.PROCESSLIST "
            f"WHERE USER = '{ALICE_DB_USER}' AND INFO LIKE 'SELECT SLEEP%'"
        )
    )
    other = cloud_gateway.connect_cloud("alice", ALICE)
    try:
        rows(other, f"KILL QUERY {running.thread_id()}")
    finally:
        other.close()
    worker.join(60)
    assert not worker.is_alive()
    assert result in ([1317], [1])  # "Query execution was interrupted" (or SLEEP() returning 1)
    assert rows(running, "SELECT 2") == [(2,)]  # the session goes on
    running.close()
    assert cloud_gateway.standin.sessions == [ALICE_DB_USER] * 3  # two sessions and the KILL's connection


def test_revoking_the_lease_ends_the_session(cloud_gateway):
    """A Cloud SQL lease has no login to drop, but revoking it ends the relayed session."""
    conn = cloud_gateway.connect_cloud("alice", ALICE)
    rows(conn, "SELECT 1")
    session = cloud_gateway.gateway.mysql.session_by_id(conn.thread_id())
    assert session is not None
    assert session.lease is not None
    cloud_gateway.call(cloud_gateway.gateway.services.broker.revoke(session.lease, "test revocation"))
    with pytest.raises(pymysql.err.MySQLError):
        rows(conn, "SELECT 1")
    conn.close()


def test_a_postgres_instance_is_refused_with_a_clear_error(cloud_gateway):
    """The MySQL listener relays only MySQL instances; a PostgreSQL one is named in the error."""
    cloud_gateway.standin.database_version = "POSTGRES_16"
    try:
        with pytest.raises(pymysql.err.MySQLError, match="runs POSTGRES_16; the MySQL listener relays only"):
            cloud_gateway.connect_cloud("alice", ALICE)
    finally:
        cloud_gateway.standin.database_version = "MYSQL_8_0"
    assert cloud_gateway.standin.sessions == []  # refused before any TLS connection to the instance


def test_the_certificate_is_reused_while_fresh(cloud_gateway):
    """Two sessions in a row: one ephemeral certificate (its token has an hour left)."""
    for _ in range(2):
        conn = cloud_gateway.connect_cloud("alice", ALICE)
        rows(conn, "SELECT 1")
        conn.close()
    assert cloud_gateway.standin.requests.count("generateEphemeralCert") == 1


def test_a_certificate_about_to_expire_is_fetched_again(standin, loop_thread, tmp_path, monkeypatch):
    """Tokens with 3 minutes left (under the 4-minute buffer): each session gets a new certificate."""
    tokens = TokenEndpoint(GATEWAY_TOKEN, expires_in=180)
    loop_thread.call(tokens.start())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path / "sa.json", tokens.url)))
    standin.requests.clear()
    gateway = CloudMysqlGateway(tmp_path, standin)
    _iam_users(gateway.database, (ALICE_DB_USER, "SELECT"))
    try:
        for _ in range(2):
            conn = gateway.connect_cloud("alice", ALICE)
            assert rows(conn, "SELECT CURRENT_USER()") == [(f"{ALICE_DB_USER}@%",)]
            conn.close()
        assert standin.requests.count("generateEphemeralCert") == 2
    finally:
        try:
            gateway.stop()
        finally:
            _drop_iam_users(ALICE_DB_USER)
            loop_thread.call(tokens.stop())


# -- impersonated service accounts ---------------------------------------------------------


def test_each_privilege_level_logs_in_as_its_service_account(sa_gateway):
    """Read and write leases log in as their service accounts' IAM users, the callers named in the audit log."""
    reader = sa_gateway.connect_cloud("alice", ALICE)
    writer = sa_gateway.connect_cloud("wendy", f"wendy{TAG}@example.com", ("writers",))
    try:
        assert rows(reader, "SELECT CURRENT_USER()") == [(f"sr{TAG}@%",)]
        assert rows(reader, "SELECT email FROM customers WHERE id = 1") == [("a***@example.com",)]
        assert rows(writer, "SELECT CURRENT_USER()") == [(f"sw{TAG}@%",)]
        with writer.cursor() as cur:
            cur.execute("INSERT INTO orders (customer_id, note) VALUES (1, 'through a service account')")
        writer.commit()
    finally:
        reader.close()
        writer.close()
    standin = sa_gateway.standin
    assert standin.sessions == [f"sr{TAG}", f"sw{TAG}"]
    assert sorted(standin.impersonations) == sorted([(ALICE, READER_SA), (ALICE, WRITER_SA)])  # the gateway's own
    starts = [r for r in records(sa_gateway, "session.start") if r["database"] == "cloud"]
    assert sorted((r["principal"]["subject"], r["db_login"]) for r in starts) == [
        ("alice", f"sr{TAG}@proj.iam"),
        ("wendy", f"sw{TAG}@proj.iam"),
    ]


def test_the_certificate_is_cached_per_service_account(sa_gateway):
    """A second reader session reuses the reader's certificate; no new impersonation either."""
    for user in ("alice", "amos"):
        conn = sa_gateway.connect_cloud(user, f"{user}{TAG}@example.com")
        rows(conn, "SELECT 1")
        conn.close()
    standin = sa_gateway.standin
    assert standin.requests.count("generateEphemeralCert") == 1
    assert standin.impersonations == [(ALICE, READER_SA)]
    assert standin.sessions == [f"sr{TAG}", f"sr{TAG}"]


def test_impersonation_refused_is_a_clear_error(sa_gateway):
    """An IAM Credentials refusal (no Token Creator role) ends the login with the service account named."""
    tokens = sa_gateway.standin.service_accounts
    saved = tokens.pop(READER_SA)
    try:
        with pytest.raises(pymysql.err.MySQLError, match=READER_SA):
            sa_gateway.connect_cloud("alice", ALICE)
    finally:
        tokens[READER_SA] = saved
    assert sa_gateway.standin.sessions == []


def test_the_gateways_own_certificate_cannot_log_in_as_a_service_account(standin, loop_thread):
    """What the gateway did before service_accounts: its own token's certificate is refused for the SA's user."""

    async def attempt() -> None:
        dialer = CloudSqlDialer(
            standin.connection_name, endpoint=standin.endpoint, credentials=StaticToken(GATEWAY_TOKEN)
        )
        try:
            upstream = await connect_cloudsql_upstream(
                dialer, login=f"sr{TAG}@proj.iam", database=None, capabilities=int(Capability.PROTOCOL_41), charset=45
            )
            upstream.protocol.close()
        finally:
            await dialer.aclose()

    standin.sessions.clear()
    with pytest.raises(UpstreamError, match=r"refused the login|closed the connection"):
        loop_thread.call(attempt())
    assert standin.sessions == [f"refused sr{TAG}"]
