"""A session's faults: a client that leaves mid-statement, a login that never ends, oversized messages."""

from __future__ import annotations

import secrets
import socket
import struct

import psycopg
import pytest

from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Query
from tests.gateway import DEMO_POLICY
from tests.proxy.tuned import TunedGateway, error_of, logged_in, records, wait_for


def _cut(conn: psycopg.Connection) -> None:
    """Drop the client's socket without a Terminate, as a killed client does."""
    sock = socket.socket(fileno=conn.pgconn.socket)
    sock.shutdown(socket.SHUT_RDWR)
    sock.detach()


def _statement(gateway, sql: str) -> dict:
    return wait_for(lambda: [r for r in records(gateway, "statement") if r["data"]["sql"] == sql])[0]


def test_an_update_whose_client_left_while_it_ran_is_recorded_with_its_result(gateway):
    """The UPDATE commits after its client left: its record says so (client_gone, UPDATE 1), as does session.end."""
    token = gateway.token("wendy", ("writers",))
    sql = "UPDATE customers SET name = 'left ' || pg_sleep(1)::text WHERE id = 3"
    conn = psycopg.connect(**gateway.conninfo("wendy", token), autocommit=True)
    conn.pgconn.send_query(sql.encode())
    conn.pgconn.flush()
    _cut(conn)
    record = _statement(gateway, sql)
    assert record["outcome"] == "client_gone"
    assert record["data"]["tags"] == ["UPDATE 1"]
    assert record["data"]["rows"] == 1
    assert gateway.pg_server.psql("SELECT name FROM customers WHERE id = 3", gateway.database).strip() == "left"
    ends = wait_for(lambda: [r for r in records(gateway, "session.end") if r["session_id"] == record["session_id"]])
    assert ends[0]["data"]["statements"] == 1
    conn.close()


def test_a_select_abandoned_halfway_is_recorded_with_its_rows(gateway):
    """A client reads a few rows of a large result and leaves: the record holds the rows the server sent.

    The server pauses at row 2,000, after sending the first ones, so the client is gone before the
    statement ends however fast the gateway relays (else the whole answer may be on its way already).
    """
    token = gateway.token("erin", ("engineers",))
    sql = "SELECT g, pg_sleep(CASE WHEN g = 2000 THEN 2 ELSE 0 END) FROM generate_series(1, 300000) AS g"
    sock, _framer = logged_in(gateway.pg_port, "erin", token)
    sock.sendall(Query(sql).encode())
    assert b"D" in sock.recv(4096)  # some rows have arrived
    sock.close()
    record = _statement(gateway, sql)
    assert record["outcome"] == "client_gone"
    assert record["data"]["rows"] == 300000
    assert record["data"]["tags"] == ["SELECT 300000"]


def test_an_extended_batch_without_sync_is_recorded_and_not_committed(gateway):
    """Parse/Bind/Execute without Sync, then the client leaves: recorded at once, and never committed."""
    token = gateway.token("wendy", ("writers",))
    sock, _framer = logged_in(gateway.pg_port, "wendy", token)
    sql = "UPDATE customers SET name = 'unsynced' WHERE id = 4"
    parse = b"P" + struct.pack("!I", 4 + 1 + len(sql) + 1 + 2) + b"\0" + sql.encode() + b"\0" + b"\0\0"
    bind = b"B" + struct.pack("!I", 4 + 1 + 1 + 2 + 2 + 2) + b"\0\0" + b"\0\0" + b"\0\0" + b"\0\0"
    execute = b"E" + struct.pack("!I", 4 + 1 + 4) + b"\0" + b"\0\0\0\0"
    sock.sendall(parse + bind + execute)
    sock.close()
    record = _statement(gateway, sql)
    assert record["outcome"] == "client_gone"
    assert gateway.pg_server.psql("SELECT name FROM customers WHERE id = 4", gateway.database).strip() != "unsynced"
    wait_for(lambda: not gateway.gateway.services.sessions.list())


def test_a_copy_from_stdin_whose_client_left_ends_and_is_recorded(gateway):
    """COPY FROM STDIN, some rows, then the client leaves: the gateway fails the COPY, records it, frees the session."""
    token = gateway.token("wendy", ("writers",))
    sock, framer = logged_in(gateway.pg_port, "wendy", token)
    sql = "COPY customers (id, name, email, region) FROM STDIN"
    sock.sendall(Query(sql).encode())
    while (frame := framer.next_frame()) is None or frame.type != ord("G"):
        if frame is None:
            framer.feed(sock.recv(65536))
    row = b"9001\tcopied\tc@example.com\teu\n"
    sock.sendall(b"d" + (4 + len(row)).to_bytes(4, "big") + row)
    sock.close()
    record = _statement(gateway, sql)
    assert record["outcome"] == "client_gone"
    assert record["data"]["sqlstate"] == "57014"
    assert gateway.pg_server.psql("SELECT count(*) FROM customers WHERE id = 9001", gateway.database).strip() == "0"
    wait_for(lambda: not gateway.gateway.services.sessions.list())


@pytest.fixture
def tuned(pg_server, pg_database, tmp_path):
    """A gateway with a short login timeout and a small message limit."""
    running = TunedGateway(
        pg_server,
        tmp_path,
        DEMO_POLICY,
        pg_database,
        secrets.token_hex(3),
        extra="proxy: {login_timeout: 1s, max_message_bytes: 1048576}\n",
    )
    yield running
    running.stop()


def test_the_login_timeout_is_a_setting(tuned):
    """A client that never finishes its login is dropped after proxy.login_timeout, with 08P01."""
    with socket.create_connection(("127.0.0.1", tuned.pg_port), timeout=20) as sock:
        error = error_of(sock, Framer("backend"))
    assert error is not None
    assert (error.sqlstate, error.message) == ("08P01", "the login did not finish in time")


def test_a_message_over_the_limit_is_refused_before_it_is_buffered(tuned):
    """A logged-in client declares a message over proxy.max_message_bytes: 54000 at once, from the header alone."""
    sock, framer = logged_in(tuned.pg_port, "erin", tuned.token("erin", ("engineers",)))
    with sock:
        sock.sendall(b"Q" + struct.pack("!I", 1 << 30))  # the header only: the gateway must not wait for the body
        error = error_of(sock, framer)
    assert error is not None
    assert error.sqlstate == "54000"
    assert "max_message_bytes" in (error.hint or "") + error.message


def test_copy_data_over_the_limit_streams(tuned):
    """COPY data is not bound by max_message_bytes: a 3 MiB row goes in through a 1 MiB limit."""
    token = tuned.token("wendy", ("writers",))
    with psycopg.connect(**tuned.conninfo("wendy", token), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE big (t text)")
        with conn.cursor().copy("COPY big FROM STDIN") as copy:
            copy.write(b"x" * (3 << 20) + b"\n")
        assert conn.execute("SELECT length(t) FROM big").fetchone() == (3 << 20,)
        assert conn.execute("SELECT 1").fetchone() == (1,)
