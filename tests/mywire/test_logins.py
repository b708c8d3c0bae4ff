"""The two logins as scripted conversations from bytes: a client logging in to the gateway, the gateway to a server."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.mywire.actions import Disconnect, LoggedIn, LoginReceived, PasswordReceived, Refused, Send, StartTls
from sqlgate.mywire.auth import native_password
from sqlgate.mywire.constants import Capability
from sqlgate.mywire.handshake import AuthSwitchRequest, HandshakeResponse, HandshakeV10, SslRequest
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import Err, Ok
from sqlgate.mywire.server_login import ClientLogin
from sqlgate.mywire.upstream_login import UpstreamLogin

CLIENT_CAPS = int(
    Capability.LONG_PASSWORD
    | Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_WITH_DB
    | Capability.MULTI_RESULTS
    | Capability.DEPRECATE_EOF
)


def packets(data: bytes) -> list:
    reader = PacketReader()
    reader.feed(data)
    return list(reader.packets())


def sent(actions) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


def login(tls: bool = False) -> ClientLogin:
    return ClientLogin(connection_id=9, server_version="8.0.0-sqlgate", tls_available=tls, require_tls=False)


def test_greeting_offers_native_password_so_the_first_answer_holds_no_secret():
    """The greeting names mysql_native_password with a NUL-free scramble, TLS offered when available."""
    machine = login(tls=True)
    (greeting,) = packets(sent(machine.start()))
    assert greeting.seq == 0
    decoded = HandshakeV10.decode(greeting.payload)
    assert decoded.auth_plugin == "mysql_native_password"
    assert decoded.capabilities & Capability.SSL
    assert decoded.connection_id == 9
    assert b"\x00" not in decoded.scramble
    assert len(decoded.scramble) == 20


def test_plain_login_switches_to_clear_text_and_hands_over_the_token():
    """Response (seq 1) -> LoginReceived; request_password -> AuthSwitch (seq 2); token (seq 3); OK (seq 4)."""
    machine = login()
    machine.start()
    response = HandshakeResponse(CLIENT_CAPS, "alice", b"\x01" * 20, "demo", "mysql_native_password")
    (received,) = machine.receive(encode(response.encode(), 1))
    assert isinstance(received, LoginReceived)
    assert received.response.user == "alice"
    assert received.response.database == "demo"
    (switch,) = packets(sent(machine.request_password()))
    assert switch.seq == 2
    assert AuthSwitchRequest.decode(switch.payload).plugin == "mysql_clear_password"
    (password,) = machine.receive(encode(b"tok.en.value\x00", 3))
    assert password == PasswordReceived("tok.en.value")
    assert "tok.en" not in repr(password)
    (ok,) = packets(sent(machine.succeed()))
    assert ok.seq == 4
    assert Ok.decode(ok.payload).status & 0x0002


def test_a_client_that_sends_clear_text_at_once_is_not_asked_again():
    """A response with mysql_clear_password and data is the token itself."""
    machine = login()
    machine.start()
    response = HandshakeResponse(CLIENT_CAPS, "alice", b"token\x00", "demo", "mysql_clear_password")
    machine.receive(encode(response.encode(), 1))
    assert machine.request_password() == [PasswordReceived("token")]


def test_ssl_request_starts_tls_and_the_response_follows_with_seq_2():
    """SSLRequest (seq 1) -> StartTls; after TLS the response comes with seq 2."""
    machine = login(tls=True)
    machine.start()
    caps = CLIENT_CAPS | Capability.SSL
    assert machine.receive(encode(SslRequest(caps).encode(), 1)) == [StartTls()]
    machine.tls_started()
    assert machine.tls_active
    response = HandshakeResponse(caps, "alice", b"", "demo", "mysql_native_password")
    (received,) = machine.receive(encode(response.encode(), 2))
    assert isinstance(received, LoginReceived)
    (switch,) = packets(sent(machine.request_password()))
    assert switch.seq == 3


def test_ssl_request_without_tls_and_a_wrong_sequence_id_are_protocol_errors():
    """Asking for TLS where none is offered, or a packet out of order, ends the login."""
    machine = login(tls=False)
    machine.start()
    with pytest.raises(ProtocolError, match="TLS"):
        machine.receive(encode(SslRequest(CLIENT_CAPS | Capability.SSL).encode(), 1))
    other = login()
    other.start()
    with pytest.raises(ProtocolError, match="sequence id 5"):
        other.receive(encode(HandshakeResponse(CLIENT_CAPS, "a", b"").encode(), 5))


def test_fail_sends_err_with_code_and_sqlstate_then_disconnects():
    """A refused login is an ERR packet (1045 / 28000) with the next sequence id."""
    machine = login()
    machine.start()
    machine.receive(encode(HandshakeResponse(CLIENT_CAPS, "alice", b"").encode(), 1))
    actions = machine.fail(1045, "28000", "the token did not verify")
    assert isinstance(actions[-1], Disconnect)
    (err,) = packets(sent(actions))
    assert err.seq == 2
    assert Err.decode(err.payload) == Err(1045, "28000", "the token did not verify")


def server_greeting(plugin: str = "mysql_native_password", caps: int = 0) -> bytes:
    caps = caps or int(
        Capability.LONG_PASSWORD
        | Capability.PROTOCOL_41
        | Capability.SECURE_CONNECTION
        | Capability.PLUGIN_AUTH
        | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.CONNECT_WITH_DB
        | Capability.DEPRECATE_EOF
    )
    return encode(HandshakeV10("10.11.19-MariaDB", 77, b"s" * 20, caps, auth_plugin=plugin).encode(), 0)


def upstream(tls: str = "disable") -> UpstreamLogin:
    return UpstreamLogin(
        user="sg_alice_0123", password="pw", database="demo", capabilities=CLIENT_CAPS, charset=45, tls=tls
    )


def test_upstream_login_with_native_password():
    """Greeting -> response with the native scramble (seq 1) -> OK -> LoggedIn."""
    machine = upstream()
    (response_packet,) = packets(sent(machine.receive(server_greeting())))
    assert response_packet.seq == 1
    response = HandshakeResponse.decode(response_packet.payload)
    assert response.user == "sg_alice_0123"
    assert response.auth_response == native_password("pw", b"s" * 20)
    assert response.database == "demo"
    assert not response.capabilities & Capability.SSL
    (done,) = machine.receive(encode(Ok().encode(), 2))
    assert isinstance(done, LoggedIn)
    assert done.handshake.connection_id == 77


def test_upstream_auth_switch_and_refusal():
    """An auth switch is answered with the new plugin's scramble; an ERR is reported as Refused."""
    machine = upstream()
    machine.receive(server_greeting("caching_sha2_password"))
    switch = AuthSwitchRequest("mysql_native_password", b"t" * 20)
    (answer,) = packets(sent(machine.receive(encode(switch.encode(), 2))))
    assert answer.seq == 3
    assert answer.payload == native_password("pw", b"t" * 20)
    (refused,) = machine.receive(encode(Err(1045, "28000", "Access denied").encode(), 4))
    assert isinstance(refused, Refused)


def test_caching_sha2_full_auth_needs_tls_or_the_servers_key():
    """Fast auth succeeds quietly; full auth over TLS sends the password; without TLS the public key is asked for."""
    machine = upstream()
    machine.receive(server_greeting("caching_sha2_password"))
    assert machine.receive(encode(b"\x01\x03", 2)) == []
    (done,) = machine.receive(encode(Ok().encode(), 3))
    assert isinstance(done, LoggedIn)
    plain = upstream()
    plain.receive(server_greeting("caching_sha2_password"))
    (ask,) = packets(sent(plain.receive(encode(b"\x01\x04", 2))))
    assert ask.payload == b"\x02"


def test_upstream_tls_is_asked_for_when_offered_and_required_when_configured():
    """SSLRequest then StartTls; the response follows the handshake; `require` without server TLS fails."""
    caps = int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.SSL)
    machine = upstream("require")
    actions = machine.receive(server_greeting(caps=caps))
    assert isinstance(actions[-1], StartTls)
    (request,) = packets(sent(actions))
    assert SslRequest.decode(request.payload).capabilities & Capability.SSL
    (response,) = packets(sent(machine.tls_started()))
    assert response.seq == 2
    with pytest.raises(UpstreamError, match="does not offer TLS"):
        upstream("require").receive(server_greeting())
