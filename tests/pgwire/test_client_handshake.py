"""ClientHandshake: the gateway's side of a client login, scripted as conversations."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError, TokenRejected
from sqlgate.pgwire.actions import CancelRequested, Disconnect, PasswordReceived, Send, StartTls, StartupReceived
from sqlgate.pgwire.auth import AuthenticationCleartextPassword, AuthenticationOk, PasswordMessage
from sqlgate.pgwire.backend import BackendKeyData, NegotiateProtocolVersion, ParameterStatus, ReadyForQuery
from sqlgate.pgwire.client_handshake import ClientHandshake, State
from sqlgate.pgwire.frontend import Query, Sync
from sqlgate.pgwire.notices import error_response, notice_response
from sqlgate.pgwire.startup import PROTOCOL_3_2, CancelRequest, GSSENCRequest, SSLRequest, StartupMessage

from .playbook import Call, Data, Playbook, Raises, send

STARTUP = StartupMessage({"user": "alice", "database": "prod", "application_name": "psql"})
KEY = BackendKeyData(4242, b"\x01\x02\x03\x04")
PARAMS = {"server_version": "16.4", "client_encoding": "UTF8"}


def plain():
    return ClientHandshake(tls_available=False)


def logged_in():
    """The messages a successful login sends, in PostgreSQL's order."""
    return send(
        AuthenticationOk(),
        ParameterStatus("server_version", "16.4"),
        ParameterStatus("client_encoding", "UTF8"),
        KEY,
        ReadyForQuery("I"),
    )


def fatal(sqlstate, message, **kwargs):
    return Send(error_response(sqlstate, message, severity="FATAL", **kwargs).encode())


def test_login_without_tls():
    """SSLRequest declined, startup, password asked, token received, logged in."""
    hs = plain()
    assert (
        Playbook(hs)
        >> Data(SSLRequest().encode())
        << Send(b"N")
        >> Data(STARTUP.encode())
        << StartupReceived(STARTUP)
        >> Call("request_password")
        << send(AuthenticationCleartextPassword())
        >> Data(PasswordMessage("eyJ.token").encode())
        << PasswordReceived("eyJ.token")
        >> Call("succeed", PARAMS, KEY)
        << logged_in()
    )
    assert hs.state is State.DONE
    assert hs.startup is not None
    assert (hs.startup.user, hs.startup.database, hs.startup.application_name) == ("alice", "prod", "psql")


def test_login_with_tls():
    hs = ClientHandshake(tls_available=True, require_tls=True)
    assert (
        Playbook(hs)
        >> Data(SSLRequest().encode())
        << StartTls()
        >> Call("tls_started")
        >> Data(STARTUP.encode())
        << StartupReceived(STARTUP)
    )
    assert hs.tls_active


def test_gssenc_is_declined_then_tls_accepted():
    """With gssencmode=prefer, libpq asks for GSSAPI first, then TLS."""
    assert (
        Playbook(ClientHandshake(tls_available=True))
        >> Data(GSSENCRequest().encode() + SSLRequest().encode())
        << Send(b"N")
        << StartTls()
    )


def test_plaintext_behind_ssl_request_is_refused():
    """Bytes sent after SSLRequest, before TLS, could be injected by an attacker (CVE-2021-23214)."""
    assert (
        Playbook(ClientHandshake(tls_available=True))
        >> Data(SSLRequest().encode() + STARTUP.encode())
        << Raises(ProtocolError, "after SSLRequest")
    )


def test_second_ssl_request_is_refused():
    hs = ClientHandshake(tls_available=True)
    assert (
        Playbook(hs)
        >> Data(SSLRequest().encode())
        << StartTls()
        >> Call("tls_started")
        >> Data(SSLRequest().encode())
        << Raises(ProtocolError, "twice or inside TLS")
    )


def test_cancel_request_returns_the_key_and_closes():
    key = bytes(range(32))
    assert Playbook(plain()) >> Data(CancelRequest(77, key).encode()) << CancelRequested(77, key) << Disconnect()


def test_tls_required_but_not_used():
    assert (
        Playbook(ClientHandshake(tls_available=True, require_tls=True))
        >> Data(STARTUP.encode())
        << fatal("28000", "sqlgate requires TLS on this listener", hint="connect with sslmode=require (or verify-full)")
        << Disconnect()
    )


def test_missing_user_is_refused():
    assert (
        Playbook(plain())
        >> Data(StartupMessage({"database": "prod"}).encode())
        << fatal("28000", "no PostgreSQL user name specified in startup packet")
        << Disconnect()
    )


def test_replication_connections_are_refused():
    startup = StartupMessage({"user": "a", "replication": "database"})
    assert (
        Playbook(plain())
        >> Data(startup.encode())
        << fatal("0A000", "replication connections are not supported by sqlgate")
        << Disconnect()
    )


@pytest.mark.parametrize(("version", "text"), [(2 << 16, "2.0"), ((3 << 16) | 1, "3.1"), (4 << 16, "4.0")])
def test_unsupported_protocols_are_refused(version, text):
    message = f"unsupported frontend protocol {text}: sqlgate supports 3.0 and 3.2"
    assert (
        Playbook(plain())
        >> Data(StartupMessage({"user": "a"}, version).encode())
        << fatal("0A000", message)
        << Disconnect()
    )


def test_protocol_3_2_is_spoken_and_takes_long_cancel_keys():
    hs = plain()
    startup = StartupMessage({"user": "a"}, PROTOCOL_3_2)
    long_key = BackendKeyData(1, bytes(32))
    assert (
        Playbook(hs)
        >> Data(startup.encode())
        << StartupReceived(startup)
        >> Call("request_password")
        << send(AuthenticationCleartextPassword())
        >> Data(PasswordMessage("t").encode())
        << PasswordReceived("t")
        >> Call("succeed", {}, long_key)
        << send(AuthenticationOk(), long_key, ReadyForQuery())
    )
    assert hs.protocol == PROTOCOL_3_2


def test_newer_minor_and_protocol_options_are_negotiated_down():
    """A 3.9 client with a _pq_ option hears that sqlgate speaks 3.2 without that option."""
    startup = StartupMessage({"user": "a", "_pq_.compression": "on"}, (3 << 16) | 9)
    assert (
        Playbook(plain())
        >> Data(startup.encode())
        << StartupReceived(startup)
        >> Call("request_password")
        << send(NegotiateProtocolVersion(2, ("_pq_.compression",)), AuthenticationCleartextPassword())
    )


def test_protocol_3_0_client_needs_a_4_byte_key():
    hs = plain()
    hs.receive(STARTUP.encode())
    hs.request_password()
    hs.receive(PasswordMessage("t").encode())
    with pytest.raises(ValueError, match="4-byte"):
        hs.succeed({}, BackendKeyData(1, bytes(32)))


def test_bad_token_gets_fatal_28p01():
    assert (
        Playbook(plain())
        >> Data(STARTUP.encode())
        << StartupReceived(STARTUP)
        >> Call("request_password")
        << send(AuthenticationCleartextPassword())
        >> Data(PasswordMessage("bad").encode())
        << PasswordReceived("bad")
        >> Call("fail_with", TokenRejected("token expired", hint="run sqlgate login"))
        << fatal("28P01", "token expired", hint="run sqlgate login")
        << Disconnect()
    )


def test_startup_refused_by_the_driver():
    """An unknown database is refused before any password is asked."""
    assert (
        Playbook(plain())
        >> Data(STARTUP.encode())
        << StartupReceived(STARTUP)
        >> Call("fail", "3D000", 'database "prod" is not configured', hint="see sqlgate config")
        << fatal("3D000", 'database "prod" is not configured', hint="see sqlgate config")
        << Disconnect()
    )


def test_client_closing_instead_of_password():
    """Psql hangs up to prompt for a password, then reconnects."""
    assert (
        Playbook(plain())
        >> Data(STARTUP.encode())
        << StartupReceived(STARTUP)
        >> Call("request_password")
        << send(AuthenticationCleartextPassword())
        >> Data(b"X\x00\x00\x00\x04")
        << Disconnect()
    )


def test_query_instead_of_password_is_a_protocol_error():
    hs = plain()
    hs.receive(STARTUP.encode())
    hs.request_password()
    with pytest.raises(ProtocolError, match="expected a password message, got message type 'Q'"):
        hs.receive(Query("SELECT 1").encode())


def test_oversized_password_is_refused():
    hs = plain()
    hs.receive(STARTUP.encode())
    hs.request_password()
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        hs.receive(PasswordMessage("x" * 70_000).encode())


def test_flood_while_waiting_for_a_decision_is_refused():
    hs = plain()
    hs.receive(STARTUP.encode())
    with pytest.raises(ProtocolError, match="too much data"):
        hs.receive(bytes(70_000))


def test_decisions_out_of_order_are_programming_errors():
    hs = plain()
    with pytest.raises(RuntimeError, match="not allowed"):
        hs.request_password()
    with pytest.raises(RuntimeError, match="not allowed"):
        hs.succeed({}, KEY)
    with pytest.raises(RuntimeError, match="tls_started"):
        hs.tls_started()


def test_bytes_one_at_a_time_give_the_same_conversation():
    hs = plain()
    wire = SSLRequest().encode() + STARTUP.encode()
    actions = [action for byte in wire for action in hs.receive(bytes([byte]))]
    assert actions == [Send(b"N"), StartupReceived(STARTUP)]


def test_pipelined_bytes_after_the_password_go_to_the_relay():
    """What the client sent after its password stays in the framer, for the relay to read."""
    hs = plain()
    hs.receive(STARTUP.encode())
    hs.request_password()
    hs.receive(PasswordMessage("t").encode() + Query("SELECT 1").encode() + Sync().encode())
    hs.succeed(PARAMS, KEY, [notice_response("user name ignored")])
    assert [bytes(f.data) for f in hs.framer.split()] == [Query("SELECT 1").encode(), Sync().encode()]
    with pytest.raises(ProtocolError, match="handshake is over"):
        hs.receive(b"")


def test_token_stays_out_of_action_repr():
    assert "eyJ" not in repr(PasswordReceived("eyJ.secret"))


def test_a_password_sent_with_the_startup_is_read_when_the_password_is_asked_for():
    """A client that sends StartupMessage and PasswordMessage in one write is not left waiting."""
    hs = plain()
    assert hs.receive(STARTUP.encode() + PasswordMessage("t").encode()) == [StartupReceived(STARTUP)]
    actions = hs.request_password()
    assert actions == [Send(AuthenticationCleartextPassword().encode()), PasswordReceived("t")]
    assert hs.state is State.AUTHENTICATING
