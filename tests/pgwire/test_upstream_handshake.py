"""UpstreamHandshake: scripted servers for every request, and a real PostgreSQL over a socket."""

from __future__ import annotations

import hashlib
import socket
from urllib.parse import unquote, urlsplit

import pytest

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.pgwire.actions import Send
from sqlgate.pgwire.auth import (
    AuthenticationCleartextPassword,
    AuthenticationGSS,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLFinal,
    PasswordMessage,
)
from sqlgate.pgwire.backend import (
    BackendKeyData,
    BindComplete,
    CommandComplete,
    DataRow,
    NegotiateProtocolVersion,
    ParameterStatus,
    ParseComplete,
    ReadyForQuery,
    RowDescription,
    decode_backend,
)
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Bind, Describe, Execute, Parse, Query, Sync, Terminate
from sqlgate.pgwire.notices import error_response, notice_response
from sqlgate.pgwire.scram import ScramError
from sqlgate.pgwire.startup import PROTOCOL_3_0, PROTOCOL_3_2, StartupMessage
from sqlgate.pgwire.upstream_handshake import (
    SSL_REQUEST,
    UpstreamHandshake,
    UpstreamLogin,
    UpstreamRefused,
    md5_password,
    server_accepts_tls,
)

from .playbook import Data, Playbook, Raises

LOGIN = UpstreamLogin("app", "db", "s3cret", parameters={"application_name": "sqlgate"})
KEY = BackendKeyData(99, b"\x00\x00\x00\x07")


def session_start():
    return Data(b"".join(m.encode() for m in (ParameterStatus("TimeZone", "UTC"), KEY, ReadyForQuery("I"))))


def test_startup_message_carries_user_database_and_parameters():
    message = UpstreamHandshake(LOGIN).start()
    assert message == StartupMessage({"application_name": "sqlgate", "user": "app", "database": "db"}).encode()


def test_cleartext_login():
    hs = UpstreamHandshake(LOGIN)
    assert (
        Playbook(hs)
        >> Data(AuthenticationCleartextPassword().encode())
        << Send(PasswordMessage("s3cret").encode())
        >> Data(AuthenticationOk().encode() + notice_response("hello").encode())
        >> session_start()
    )
    assert hs.done
    assert hs.parameters == {"TimeZone": "UTC"}
    assert hs.backend_key == KEY
    assert hs.transaction_status == "I"
    assert [n.message for n in hs.notices] == ["hello"]


def test_md5_login():
    salt = b"\x93\x0f\x1e\x02"
    inner = hashlib.md5(b"s3cretapp", usedforsecurity=False).hexdigest()
    expected = "md5" + hashlib.md5(inner.encode() + salt, usedforsecurity=False).hexdigest()
    assert md5_password("app", "s3cret", salt) == expected
    assert (
        Playbook(UpstreamHandshake(LOGIN))
        >> Data(AuthenticationMD5Password(salt).encode())
        << Send(PasswordMessage(expected).encode())
    )


@pytest.mark.parametrize(
    ("request_message", "method"),
    [
        (AuthenticationCleartextPassword(), "password"),
        (AuthenticationMD5Password(b"salt"), "md5"),
        (AuthenticationSASL(("SCRAM-SHA-256",)), "scram-sha-256"),
    ],
)
def test_methods_the_login_does_not_allow_are_refused(request_message, method):
    """A login limited to SCRAM never sends its password in clear or as MD5."""
    allowed = frozenset({"scram-sha-256", "md5", "password"}) - {method}
    login = UpstreamLogin("app", "db", "s3cret", methods=allowed)
    assert (
        Playbook(UpstreamHandshake(login))
        >> Data(request_message.encode())
        << Raises(UpstreamError, f"asks for {method} authentication")
    )


def test_unsupported_method_is_refused():
    assert (
        Playbook(UpstreamHandshake(LOGIN))
        >> Data(AuthenticationGSS().encode())
        << Raises(UpstreamError, "AuthenticationGSS")
    )


def test_server_that_skips_the_scram_proof_is_refused():
    """AuthenticationOk before SASLFinal would let an impostor skip proving it knows the password."""
    hs = UpstreamHandshake(LOGIN)
    hs.receive(AuthenticationSASL(("SCRAM-SHA-256",)).encode())
    with pytest.raises(ScramError, match="without proving"):
        hs.receive(AuthenticationOk().encode())


def test_sasl_final_before_continue_is_a_protocol_error():
    hs = UpstreamHandshake(LOGIN)
    with pytest.raises(ProtocolError, match="before AuthenticationSASL"):
        hs.receive(AuthenticationSASLFinal(b"v=x").encode())


def test_error_response_becomes_upstream_refused():
    error = error_response("53300", "sorry, too many clients already", severity="FATAL")
    hs = UpstreamHandshake(LOGIN)
    with pytest.raises(UpstreamRefused, match="too many clients") as caught:
        hs.receive(error.encode())
    assert caught.value.server_sqlstate == "53300"
    assert caught.value.error == error


def test_session_messages_before_authentication_are_a_protocol_error():
    with pytest.raises(ProtocolError, match="unexpected message type 'Z'"):
        UpstreamHandshake(LOGIN).receive(ReadyForQuery().encode())


def test_negotiate_protocol_version_downgrades():
    """A server older than 3.2 answers NegotiateProtocolVersion; the login goes on in 3.0."""
    hs = UpstreamHandshake(UpstreamLogin("app", "db", "pw", protocol=PROTOCOL_3_2))
    hs.receive(NegotiateProtocolVersion(0).encode() + AuthenticationOk().encode())
    assert hs.protocol == PROTOCOL_3_0
    with pytest.raises(ProtocolError, match="4 bytes"):
        hs.receive(BackendKeyData(1, bytes(32)).encode())


def test_negotiate_to_a_newer_version_is_refused():
    with pytest.raises(ProtocolError, match="newer protocol"):
        UpstreamHandshake(LOGIN).receive(NegotiateProtocolVersion(2).encode())


def test_ssl_answer():
    assert server_accepts_tls(b"S")
    assert not server_accepts_tls(b"N")
    with pytest.raises(ProtocolError, match="SSLRequest"):
        server_accepts_tls(b"E")
    assert SSL_REQUEST == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


def test_password_stays_out_of_repr():
    assert "s3cret" not in repr(LOGIN)


# -- against a real PostgreSQL (SCRAM-SHA-256 over TCP) -----------------------


class Connection:
    """A test-only socket driver for the sans-IO machines."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.framer = Framer("backend")

    def send(self, data):
        self.sock.sendall(data)

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        return data

    def login(self, hs):
        self.send(hs.start())
        while not hs.done:
            for action in hs.receive(self.recv()):
                self.send(action.data)
        self.framer.feed(hs.framer.take_buffered())

    def until_ready(self):
        messages = []
        while not messages or not isinstance(messages[-1], ReadyForQuery):
            messages += [decode_backend(f.type, f.payload) for f in self.framer.split(self.recv())]
        return messages

    def close(self):
        self.send(Terminate().encode())
        self.sock.close()


@pytest.fixture
def server(pg_server):
    url = urlsplit(pg_server.dsn())
    return url.hostname, url.port, unquote(url.username or ""), unquote(url.password or "")


def connect(server, password=None, protocol=PROTOCOL_3_0):
    host, port, user, real_password = server
    hs = UpstreamHandshake(
        UpstreamLogin(user, "postgres", real_password if password is None else password, protocol=protocol)
    )
    conn = Connection(host, port)
    try:
        conn.login(hs)
    except BaseException:
        conn.sock.close()
        raise
    return hs, conn


def test_scram_login_and_simple_query_against_postgres(server):
    """SCRAM login to the real server, then a query whose replies decode field by field."""
    hs, conn = connect(server)
    try:
        assert hs.parameters["client_encoding"] == "UTF8"
        assert "server_version" in hs.parameters
        assert hs.backend_key is not None
        assert len(hs.backend_key.secret_key) == 4
        conn.send(Query("SELECT oid, relname FROM pg_class WHERE relname = 'pg_class'").encode())
        description, row, complete, ready = conn.until_ready()
        assert isinstance(description, RowDescription)
        assert [(f.name, f.table_oid, f.column_attnum, f.type_oid, f.format) for f in description.fields] == [
            ("oid", 1259, 1, 26, 0),
            ("relname", 1259, 2, 19, 0),
        ]
        assert row == DataRow((b"1259", b"pg_class"))
        assert complete == CommandComplete("SELECT 1")
        assert complete.rows == 1
        assert ready == ReadyForQuery("I")
    finally:
        conn.close()


def test_extended_query_against_postgres(server):
    """Parse, Bind with a text and a NULL parameter, Describe, Execute, Sync: PostgreSQL accepts our bytes."""
    _, conn = connect(server)
    try:
        conn.send(
            Parse("", "SELECT $1::int + 1 AS n, $2::text AS t").encode()
            + Bind("", "", (0,), (b"41", None), (0,)).encode()
            + Describe("P", "").encode()
            + Execute("", 0).encode()
            + Sync().encode()
        )
        messages = conn.until_ready()
        assert messages[:2] == [ParseComplete(), BindComplete()]
        assert [f.name for f in messages[2].fields] == ["n", "t"]
        assert messages[3:] == [DataRow((b"42", None)), CommandComplete("SELECT 1"), ReadyForQuery("I")]
    finally:
        conn.close()


def test_protocol_3_2_login_gets_a_long_cancel_key(server):
    """PostgreSQL 18 speaks 3.2 (32-byte cancel keys); an older server negotiates 3.0 down."""
    hs, conn = connect(server, protocol=PROTOCOL_3_2)
    try:
        assert hs.backend_key is not None
        major = int(hs.parameters["server_version"].split(".")[0])
        assert hs.protocol == (PROTOCOL_3_2 if major >= 18 else PROTOCOL_3_0)
        assert len(hs.backend_key.secret_key) == (32 if major >= 18 else 4)
        conn.send(Query("SELECT 1").encode())
        assert conn.until_ready()[-1] == ReadyForQuery("I")
    finally:
        conn.close()


def test_wrong_password_is_28p01(server):
    with pytest.raises(UpstreamRefused) as caught:
        connect(server, password="definitely-wrong")
    assert caught.value.server_sqlstate == "28P01"
    assert "password authentication failed" in caught.value.error.message
