"""TLS from the gateway to the database: a private MariaDB server with a certificate, `tls: require`.

The machine's MariaDB has TLS off, so this module starts its own ``mariadbd`` (Debian's
MariaDB server binary) on a free port with a self-signed certificate, in a temporary
data directory, and stops it at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from sqlgate.proxy.tls import ensure_self_signed
from tests.mysqlproxy.conftest import MysqlGateway, root_sql

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = shutil.which("mariadb-install-db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A MariaDB server with TLS on its own port (root without password); yields the port."""
    if not MARIADBD.exists() or INSTALL_DB is None:
        pytest.skip("needs MariaDB's server binaries (/usr/sbin/mariadbd, mariadb-install-db)")
    base = tmp_path_factory.mktemp("mariadb-tls")
    cert, key = ensure_self_signed(base / "tls")
    data = base / "data"
    subprocess.run(
        [INSTALL_DB, "--no-defaults", f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    port = _free_port()
    log = (base / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(MARIADBD),
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={base / 'sock'}",
            f"--pid-file={base / 'pid'}",
            f"--ssl-cert={cert}",
            f"--ssl-key={key}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                root_sql("SELECT 1", port=port)
                break
            except (pymysql.MySQLError, OSError):
                assert server.poll() is None, (base / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "the private MariaDB server did not start"
                time.sleep(0.2)
        # a fresh install has anonymous accounts on localhost, which would shadow the test's 'admin'@'%'
        root_sql("DROP USER IF EXISTS ''@'localhost'", f"DROP USER IF EXISTS ''@'{socket.gethostname()}'", port=port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def tls_gateway(tls_server: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MysqlGateway]:
    """A gateway whose database has `tls: require`."""
    gateway = MysqlGateway(tmp_path_factory.mktemp("mysqlgw-tls"), port=tls_server, tls="require")
    yield gateway
    gateway.stop()


def test_the_upstream_connection_uses_tls(tls_gateway):
    """The server reports a cipher for the relayed session's own connection."""
    conn = tls_gateway.connect(tls_gateway.token("alice", ("engineers",)))
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            (_name, cipher) = cur.fetchone()
            assert cipher
            cur.execute("SELECT email FROM customers WHERE id = 1")
            assert cur.fetchone() == ("alice@example.com",)
    finally:
        conn.close()


def test_require_refuses_a_server_without_tls(mysql_gateway, tmp_path):
    """`tls: require` against the machine's server (TLS off) refuses the login with a clear error."""
    gateway = MysqlGateway(tmp_path, tls="require")
    try:
        with pytest.raises(pymysql.err.MySQLError) as caught:
            gateway.connect(gateway.token("alice", ("engineers",)))
        assert "does not offer TLS" in caught.value.args[1]
    finally:
        gateway.stop()
