"""TLS on both sides of the PostgreSQL proxy, with real clients and a real server.

Client side: psql and psycopg with ``sslmode=verify-full`` against a CA made here, whose
certificate the gateway serves (``proxy.tls_cert_file``, relative to its settings file);
a client trusting another CA fails; a plaintext client on this machine's own address is
refused. Server side: with no ``tls`` configured, a database on a non-loopback host gets
``verify-full`` (a server whose certificate the CA does not sign is refused), a loopback
one ``prefer``. The non-loopback database is the test server behind a small TLS front
on this machine's own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from sqlgate.config import DatabaseConfig
from sqlgate.errors import UpstreamError
from sqlgate.pgwire.upstream_handshake import SSL_REQUEST, UpstreamLogin
from sqlgate.proxy.upstream import connect_upstream
from tests.gateway import DEMO_POLICY
from tests.tlskit import Authority, TlsGateway, issue, make_ca, own_address, with_certificate

PSQL = shutil.which("psql") or "/usr/bin/psql"
OWN_ADDRESS = own_address()
needs_own_address = pytest.mark.skipif(
    OWN_ADDRESS is None, reason="needs a non-loopback IPv4 address on this machine (hostname -I lists none)"
)
needs_psql = pytest.mark.skipif(not Path(PSQL).exists(), reason="needs psql (/usr/bin/psql)")


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return make_ca(tmp_path / "ca")


def start(
    pg_server, pg_database, tmp_path: Path, authority: Authority, *, everywhere: bool = False, proxy: str = ""
) -> TlsGateway:
    """A gateway with a certificate from ``authority``; ``everywhere``: pgwire listens on 0.0.0.0."""
    hosts = ("127.0.0.1", "localhost", *([OWN_ADDRESS] if OWN_ADDRESS else []))
    cert, key = issue(authority, tmp_path / "certs", hosts)
    return TlsGateway(
        pg_server,
        tmp_path,
        DEMO_POLICY,
        pg_database,
        secrets.token_hex(3),
        listen=("0.0.0.0:0" if everywhere else "127.0.0.1:0", "127.0.0.1:0"),
        extra=with_certificate(cert, key, tmp_path, proxy),
    )


@pytest.fixture
def tls_gateway(pg_server, pg_database, tmp_path, authority) -> Iterator[TlsGateway]:
    running = start(pg_server, pg_database, tmp_path, authority)
    yield running
    running.stop()


def psql(running: TlsGateway, conninfo: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGPASSWORD": token, "PGCONNECT_TIMEOUT": "10"}
    for name in ("PGSSLMODE", "PGSSLROOTCERT", "PGHOST", "PGPORT"):
        env.pop(name, None)
    return subprocess.run(
        [PSQL, "-X", "-At", "-c", "SELECT 'ok'", f"{conninfo} port={running.pg_port} dbname=demo user=alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- client side ---------------------------------------------------------------


@needs_psql
def test_psql_verify_full_against_the_configured_ca(tls_gateway, authority):
    token = tls_gateway.token("alice", ("analysts",))
    for host in ("127.0.0.1", "localhost"):
        done = psql(tls_gateway, f"host={host} sslmode=verify-full sslrootcert={authority.cert_file}", token)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ok"


@needs_psql
def test_psql_trusting_another_ca_is_refused(tls_gateway, tmp_path):
    stranger = make_ca(tmp_path / "other-ca", "another CA")
    token = tls_gateway.token("alice", ("analysts",))
    done = psql(tls_gateway, f"host=127.0.0.1 sslmode=verify-full sslrootcert={stranger.cert_file}", token)
    assert done.returncode != 0
    assert "certificate verify failed" in done.stderr


def test_psycopg_verify_full_against_the_configured_ca_and_not_another(tls_gateway, authority, tmp_path):
    token = tls_gateway.token("alice", ("analysts",))
    info = tls_gateway.conninfo("alice", token, sslmode="verify-full", sslrootcert=str(authority.cert_file))
    with psycopg.connect(**info, connect_timeout=10) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT count(*) FROM customers").fetchone() is not None
    stranger = make_ca(tmp_path / "other-ca", "another CA")
    info["sslrootcert"] = str(stranger.cert_file)
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**info, connect_timeout=10)


@needs_own_address
def test_a_plaintext_client_on_another_address_is_refused(pg_server, pg_database, tmp_path, authority):
    # TLS is not required of every client (proxy.require_tls: false), so what refuses is the rule for
    # non-loopback clients; a loopback client may still use plaintext.
    running = start(pg_server, pg_database, tmp_path, authority, everywhere=True, proxy="require_tls: false")
    try:
        token = running.token("alice", ("analysts",))
        plain = running.conninfo("alice", token, host=OWN_ADDRESS, sslmode="disable")
        with pytest.raises(psycopg.OperationalError, match="only over TLS from non-local clients"):
            psycopg.connect(**plain, connect_timeout=10)
        verified = {**plain, "sslmode": "verify-full", "sslrootcert": str(authority.cert_file)}
        with psycopg.connect(**verified, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with psycopg.connect(**running.conninfo("alice", token, sslmode="disable"), connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        running.stop()


# -- server side ---------------------------------------------------------------


@pytest.fixture
def login_role(pg_server, pg_database) -> Iterator[UpstreamLogin]:
    role, password = f"t_tls_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    pg_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pg_server.psql(f'GRANT CONNECT ON DATABASE "{pg_database}" TO {role}')
    yield UpstreamLogin(role, pg_database, password)
    pg_server.psql(f'DROP DATABASE IF EXISTS "{pg_database}" WITH (FORCE)')
    pg_server.psql(f"DROP ROLE IF EXISTS {role}")


@contextlib.asynccontextmanager
async def tls_front(host: str, context: ssl.SSLContext, target: tuple[str, int]) -> AsyncIterator[int]:
    """A PostgreSQL server with TLS on ``host``: accepts SSLRequest, then relays to ``target`` in plaintext."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        writers = [client_writer]
        try:
            if await client_reader.readexactly(len(SSL_REQUEST)) != SSL_REQUEST:
                return
            client_writer.write(b"S")
            await client_writer.drain()
            await client_writer.start_tls(context)
            server_reader, server_writer = await asyncio.open_connection(*target)
            writers.append(server_writer)
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in writers:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(track, host, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def database(host: str, port: int, dbname: str, **tls: str | Path) -> DatabaseConfig:
    return DatabaseConfig(host=host, port=port, dbname=dbname, admin_user="unused", admin_password_env="UNUSED", **tls)


@needs_own_address
async def test_the_default_tls_mode_is_verify_full_off_loopback_and_prefer_on_it(
    pg_server, login_role, authority, tmp_path
):
    assert OWN_ADDRESS is not None
    local = database(pg_server.host, pg_server.port, login_role.database)
    assert local.tls == "prefer"
    upstream = await connect_upstream(local, login_role, "lease-0", ())  # the test server offers no TLS
    upstream.protocol.close()

    cert, key = issue(authority, tmp_path / "db-certs", (OWN_ADDRESS,))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    stranger = make_ca(tmp_path / "other-ca", "another CA")
    async with tls_front(OWN_ADDRESS, context, (pg_server.host, pg_server.port)) as port:
        trusted = database(OWN_ADDRESS, port, login_role.database, tls_ca_file=authority.cert_file)
        assert trusted.tls == "verify-full"
        upstream = await connect_upstream(trusted, login_role, "lease-1", ())
        upstream.protocol.close()
        untrusted = database(OWN_ADDRESS, port, login_role.database, tls_ca_file=stranger.cert_file)
        with pytest.raises(UpstreamError, match=r"TLS to the database at \S+ failed: CERTIFICATE_VERIFY_FAILED"):
            await connect_upstream(untrusted, login_role, "lease-2", ())
        explicit = database(OWN_ADDRESS, port, login_role.database, tls="require", tls_ca_file=stranger.cert_file)
        upstream = await connect_upstream(explicit, login_role, "lease-3", ())  # an explicit mode wins
        upstream.protocol.close()
