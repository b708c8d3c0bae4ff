"""Protocol fidelity: the gateway answers as PostgreSQL does, seen from a real driver (psycopg 3, libpq 18)."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import psycopg
import pytest
from psycopg import pq

from sqlgate.pgwire.auth import PasswordMessage
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query
from sqlgate.pgwire.notices import ErrorResponse
from sqlgate.pgwire.startup import SSLRequest, StartupMessage
from sqlgate.proxy.connection import TLS_WRITE_SIZE
from sqlgate.proxy.relay import Relay


def _connect(gateway, **extra):
    token = gateway.token("erin", ("engineers",))
    return psycopg.connect(**gateway.conninfo("erin", token, **extra), autocommit=True)


def test_the_client_gets_the_real_server_process_id(gateway):
    """pg_backend_pid(), pg_stat_activity and a NOTIFY's pid all match what the client was told."""
    with _connect(gateway) as conn:
        pid = conn.info.backend_pid
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (pid,)
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() == (1,)
        conn.execute("LISTEN fidelity")
        conn.execute("NOTIFY fidelity, 'hello'")
        notice = next(conn.notifies(timeout=5))
        assert (notice.pid, notice.payload) == (pid, "hello")


@pytest.mark.skipif(pq.version() < 170000, reason="libpq 17 (PQcancelCreate) is needed for cancel over TLS")
def test_cancel_over_tls_as_libpq_17_sends_it(gateway):
    """cancel_safe() negotiates TLS before it sends the CancelRequest."""
    with _connect(gateway, sslmode="require") as conn:
        assert conn.info.pgconn.ssl_in_use
        threading.Timer(0.5, conn.cancel_safe).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 20


def test_the_servers_own_fatal_error_reaches_the_client_when_it_ends_the_session(gateway):
    """pg_terminate_backend by an administrator on the server: the client sees AdminShutdown (57P01)."""
    with _connect(gateway) as conn:
        pid = conn.info.backend_pid
        gateway.pg_server.psql(f"SELECT pg_terminate_backend({pid})")
        with pytest.raises(psycopg.errors.AdminShutdown):
            conn.execute("SELECT 1")


def _copy_out(conn, sql):
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for _ in copy:
            pass


def test_an_error_during_copy_out_leaves_the_transaction_in_error(gateway):
    with _connect(gateway) as conn:
        conn.autocommit = False
        with pytest.raises(psycopg.errors.DivisionByZero):
            _copy_out(conn, "COPY (SELECT 1 / (500 - i) FROM generate_series(1, 1000) AS i) TO STDOUT")
        assert conn.info.transaction_status == pq.TransactionStatus.INERROR
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    ("user", "database", "groups", "token_suffix", "sqlstate", "words"),
    [
        ("erin", "demo", ("engineers",), "x", "28P01", "signature"),
        ("mallory", "demo", ("engineers",), "", "28000", "does not match"),
        ("erin", "nope", ("engineers",), "", "3D000", "not served"),
        ("erin", "demo", ("nobody",), "", "42501", "no rule"),
    ],
)
def test_login_failures_are_fatal_errors_with_a_sqlstate_and_a_cause(  # noqa: PLR0917 - one case per row
    gateway, user, database, groups, token_suffix, sqlstate, words
):
    """Each host's FATAL message reaches the client (libpq lists every host it tried)."""
    token = gateway.token("erin", groups) + token_suffix
    port = gateway.pg_port
    with pytest.raises(psycopg.OperationalError) as failure:
        psycopg.connect(
            host="127.0.0.1,127.0.0.1",
            port=f"{port},{port}",
            dbname=database,
            user=user,
            password=token,
            sslmode="disable",
        )
    message = str(failure.value)
    assert message.count("failed: FATAL") >= 2, message  # one per host tried
    assert words in message
    error = _login_error(port, user, database, token)
    assert (error.severity, error.sqlstate) == ("FATAL", sqlstate)
    assert words in error.message


def _login_error(port, user, database, token):
    """The ErrorResponse a raw client gets before the gateway closes its connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(StartupMessage({"user": user, "database": database}).encode())
        framer = Framer("backend")
        while True:
            data = sock.recv(65536)
            assert data, "the gateway closed the connection without an ErrorResponse"
            framer.feed(data)
            while (frame := framer.next_frame()) is not None:
                if frame.type == ord("R"):
                    sock.sendall(PasswordMessage(token).encode())
                elif frame.type == ord("E"):
                    return ErrorResponse.decode(frame.payload)


@pytest.mark.parametrize("side", ["client_data", "server_data"])
def test_an_internal_failure_ends_the_session_with_an_error_never_a_hang(gateway, monkeypatch, side):
    """A bug in the relay: the client gets FATAL XX000 naming the session, and the log has it by session id."""
    original = getattr(Relay, side)

    def broken(self, data):
        if b"boom" in bytes(data):
            raise RuntimeError("a bug")
        return original(self, data)

    monkeypatch.setattr(Relay, side, broken)
    with _connect(gateway) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InternalError_) as failure:
            conn.execute("SELECT 'boom'")
    assert "internal error in the gateway" in str(failure.value)
    logged, gateway._logged.records = gateway._logged.records, []
    assert any("failed on bytes" in record.getMessage() for record in logged)
    session = [s for s in gateway.gateway.services.sessions.list() if s.principal.name == "erin"]
    assert not session


class _RecordingTlsClient:
    """A TLS client on a raw socket that notes the length of every TLS record the gateway sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(SSLRequest().encode())
        assert self.sock.recv(1) == b"S"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing)
        self.raw = bytearray()  # what arrived on the socket, still to be cut into records
        self.record_sizes: list[int] = []
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._receive()
        self._flush()

    def _flush(self) -> None:
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the gateway closed the connection"
        self.raw += data
        while len(self.raw) >= 5:
            size = int.from_bytes(self.raw[3:5], "big")
            if len(self.raw) < 5 + size:
                break
            if self.raw[0] == 23:  # application data
                self.record_sizes.append(size)
            del self.raw[: 5 + size]
        self.incoming.write(data)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def messages_until_ready(self, framer: Framer):
        """Every message up to and including the next ReadyForQuery (answering the password request)."""
        while True:
            try:
                framer.feed(self.tls.read(65536))
            except ssl.SSLWantReadError:
                self._receive()
                continue
            while (frame := framer.next_frame()) is not None:
                yield frame
                if frame.type == ord("Z"):
                    return

    def close(self) -> None:
        self.sock.close()


def test_tls_records_to_the_client_are_no_larger_than_postgresqls(gateway):
    """Large results reach a TLS client in records of at most 8 KiB, as PostgreSQL sends them.

    libpq 18.0 (psycopg 3.3.4's wheels) reads one TLS record into at least 8 KiB of free buffer; the
    rest of a bigger record stays inside OpenSSL while the socket looks idle, so psycopg waited forever
    for the end of a COPY through the gateway (psycopg's own test_copy_to_leaks, test_copy_table_across).
    """
    token = gateway.token("erin", ("engineers",))
    client = _RecordingTlsClient(gateway.pg_port)
    try:
        client.send(StartupMessage({"user": "erin", "database": "demo"}).encode())
        framer = Framer("backend")
        for frame in client.messages_until_ready(framer):
            if frame.type == ord("R") and frame.data[5:9] == b"\x00\x00\x00\x03":
                client.send(PasswordMessage(token).encode())
            assert frame.type != ord("E"), ErrorResponse.decode(frame.payload).message
        client.record_sizes.clear()
        client.send(Query("SELECT repeat('x', 300000), repeat('y', 70000)").encode())
        frames = list(client.messages_until_ready(framer))
    finally:
        client.close()
    assert [f.type for f in frames] == [ord(t) for t in "TDCZ"]
    assert sum(client.record_sizes) > 370_000
    assert max(client.record_sizes) <= TLS_WRITE_SIZE + 256, sorted(client.record_sizes)[-5:]
