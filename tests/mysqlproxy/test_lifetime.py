"""Sessions through the MySQL listener end with their grant, and a client can cancel its own query (KILL QUERY)."""

from __future__ import annotations

import socket
import threading
import time

import pymysql
import pytest

from tests.mysqlproxy.conftest import POLICY, MysqlGateway, records, root_sql


def _wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)
    return value


def test_a_revoked_lease_ends_the_session(mysql_gateway):
    """Revoking the lease ends the relayed session: the next statement fails, and session.end says why."""
    conn = mysql_gateway.connect(mysql_gateway.token("rose", ("engineers",)), user="rose")
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    session = mysql_gateway.gateway.mysql.session_by_id(conn.thread_id())
    assert session is not None
    assert session.lease is not None
    services = mysql_gateway.gateway.services
    mysql_gateway.call(services.broker.revoke(session.lease, "test revocation"))
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()
    ended = _wait_for(lambda: [r for r in records(mysql_gateway, "session.end") if "revoked" in (r["reason"] or "")])
    assert ended


def test_kill_query_cancels_the_callers_own_running_query(mysql_gateway):
    """KILL QUERY <id the client saw> from a second connection of the same identity interrupts SLEEP."""
    token = mysql_gateway.token("carl", ("engineers",))
    running = mysql_gateway.connect(token, user="carl")
    result: list = []

    def sleep() -> None:
        with running.cursor() as cur:
            try:
                cur.execute("SELECT SLEEP(30)")
                result.append(cur.fetchone()[0])
            except pymysql.err.MySQLError as exc:
                result.append(exc.args[0])

    worker = threading.Thread(target=sleep)
    worker.start()
    prefix = mysql_gateway.login_prefix
    _wait_for(
        lambda: root_sql(
            "SELECT ID FROM information_schema.PROCESSLIST "
            f"WHERE USER LIKE '{prefix}\\_carl%' AND INFO LIKE 'SELECT SLEEP%'"
        )
    )
    other = mysql_gateway.connect(token, user="carl")
    with other.cursor() as cur:
        cur.execute(f"KILL QUERY {running.thread_id()}")
    other.close()
    worker.join(60)
    assert not worker.is_alive()
    assert result in ([1317], [1])  # "Query execution was interrupted" (or SLEEP() returning 1, on older servers)
    with running.cursor() as cur:  # the session goes on
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    running.close()


def test_kill_of_another_identitys_session_is_refused(mysql_gateway):
    """A caller may not kill someone else's session, nor an id the gateway does not know."""
    victim = mysql_gateway.connect(mysql_gateway.token("vera", ("engineers",)), user="vera")
    attacker = mysql_gateway.connect(mysql_gateway.token("ann", ("engineers",)), user="ann")
    try:
        with attacker.cursor() as cur:
            with pytest.raises(pymysql.err.MySQLError) as caught:
                cur.execute(f"KILL {victim.thread_id()}")
            assert caught.value.args[0] == 1095
            with pytest.raises(pymysql.err.MySQLError) as unknown:
                cur.execute("KILL QUERY 4000000000")
            assert unknown.value.args[0] == 1094
        with victim.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        victim.close()
        attacker.close()


def test_an_administrator_ends_a_session(mysql_gateway):
    """Ending a session from the registry (as DELETE /v1/sessions/{id} does) closes the MySQL connection."""
    conn = mysql_gateway.connect(mysql_gateway.token("eve", ("engineers",)), user="eve")
    session = mysql_gateway.gateway.mysql.session_by_id(conn.thread_id())
    assert session is not None
    assert session.session is not None
    assert session.session.kind == "mysql"
    services = mysql_gateway.gateway.services
    assert mysql_gateway.call(services.sessions.end(session.session.id, "test"))
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
        cur.execute("SELECT 1")
    conn.close()


BRIEF_POLICY = (
    POLICY + "  - name: brief\n    who: {groups: [brief]}\n    databases: [shop]\n    role: read\n    max_ttl: 2s\n"
)


def test_the_session_ends_when_the_grant_does(tmp_path):
    """A grant of two seconds: the session works, then ends with the reason recorded; login and start are audited."""
    gateway = MysqlGateway(tmp_path, BRIEF_POLICY)
    try:
        conn = gateway.connect(gateway.token("bea", ("brief",)), user="bea")
        with conn.cursor() as cur:
            cur.execute("SELECT 1")

        def ended() -> bool:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            except pymysql.err.MySQLError:
                return True
            time.sleep(0.2)
            return False

        _wait_for(ended)
        conn.close()
        reasons = _wait_for(lambda: [r["reason"] for r in records(gateway, "session.end")])
        assert any("time limit" in (reason or "") for reason in reasons)
        (started,) = records(gateway, "session.start")
        assert started["data"]["protocol"] == "mysql"
        logins = [r for r in records(gateway, "auth.success") if r["data"]["protocol"] == "mysql"]
        assert len(logins) == 1
    finally:
        gateway.stop()


def test_a_statement_cut_off_by_the_client_leaving_is_recorded(mysql_gateway):
    """The client sends a long query and disconnects: its record says client_gone (as on pgwire), with why."""
    conn = mysql_gateway.connect(mysql_gateway.token("lea", ("engineers",)), user="lea")
    conn._execute_command(pymysql.constants.COMMAND.COM_QUERY, "SELECT SLEEP(20) /* cut-off */")
    conn._sock.shutdown(socket.SHUT_RDWR)  # leave without reading the reply
    conn._sock.close()
    found = _wait_for(lambda: records(mysql_gateway, "statement", grep="cut-off"))
    assert found[0]["outcome"] == "client_gone"
    assert "disconnected" in found[0]["reason"]


def test_a_packet_over_max_message_bytes_ends_the_session_with_1153(mysql_gateway):
    """A client packet larger than proxy.max_message_bytes is refused as soon as its header says so: ERR 1153."""
    proxy = mysql_gateway.settings.proxy
    saved = proxy.max_message_bytes
    object.__setattr__(proxy, "max_message_bytes", 1 << 16)  # read when a session starts
    try:
        conn = mysql_gateway.connect(mysql_gateway.token("max", ("engineers",)), user="max")
    finally:
        object.__setattr__(proxy, "max_message_bytes", saved)
    sock = conn._sock
    sock.sendall((0xFFFFFF).to_bytes(3, "little") + b"\x00\x03" + b"x" * 1000)  # announces 16 MiB, sends 1 KB
    sock.settimeout(30)
    data = b""
    while piece := sock.recv(65536):
        data += piece
    sock.close()
    conn._sock = None
    assert data[4] == 0xFF
    assert int.from_bytes(data[5:7], "little") == 1153
    assert b"max_message_bytes" in data
