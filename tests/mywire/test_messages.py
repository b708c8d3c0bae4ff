"""Handshake, login, result and command packets from bytes, and back."""

from __future__ import annotations

import struct

import pytest

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.mywire.auth import caching_sha2_password, native_password, response_for
from sqlgate.mywire.buffer import Reader, lenenc_int
from sqlgate.mywire.commands import (
    FieldList,
    InitDb,
    OtherCommand,
    ProcessKill,
    Query,
    SetOption,
    Simple,
    StmtClose,
    StmtExecute,
    StmtFetch,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    decode_command,
    encode_execute_params,
    execute_params,
)
from sqlgate.mywire.constants import Capability, ColumnType, Command
from sqlgate.mywire.handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse,
    HandshakeV10,
    SslRequest,
    is_ssl_request,
)
from sqlgate.mywire.results import (
    ColumnDefinition,
    Eof,
    Err,
    Ok,
    PrepareOk,
    binary_row,
    binary_value_text,
    column_count,
    encode_binary_row,
    encode_text_row,
    is_terminator,
    terminator_status,
    text_row,
)

# The greeting MariaDB 10.11 sent on this machine (its scramble is no secret: it is used once).
MARIADB_GREETING = bytes.fromhex(
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531007600000068623272693a233f00fef72d0200ff81"
    "150000000000001d00000053647d6976343e7866774223006d7973716c5f6e61746976655f70617373776f726400"
)


def test_lenenc_integers_round_trip_at_every_width():
    """1, 3, 4 and 9 byte forms; 0xFB is NULL; 0xFF is refused."""
    for value in (0, 250, 251, 65535, 65536, 2**24 - 1, 2**24, 2**64 - 1):
        assert Reader(lenenc_int(value)).lenenc_int() == value
    assert Reader(b"\xfb").lenenc_int() is None
    with pytest.raises(ProtocolError, match="0xFF"):
        Reader(b"\xff").lenenc_int()
    with pytest.raises(ProtocolError, match="ends early"):
        Reader(b"\xfc\x01").lenenc_int()


def test_mariadbs_greeting_decodes():
    """Version, connection id, 20-byte scramble, capabilities, default plugin from MariaDB's own bytes."""
    greeting = HandshakeV10.decode(MARIADB_GREETING)
    assert greeting.server_version == "5.5.5-10.11.19-MariaDB-0+deb12u1"
    assert greeting.connection_id == 0x76
    assert len(greeting.scramble) == 20
    assert greeting.capabilities & Capability.PROTOCOL_41
    assert greeting.capabilities & Capability.PLUGIN_AUTH
    assert not greeting.capabilities & Capability.SSL
    assert greeting.auth_plugin == "mysql_native_password"


def test_a_greeting_round_trips():
    """What the gateway sends decodes to what it meant."""
    greeting = HandshakeV10(
        "8.0.0-sqlgate",
        42,
        bytes(range(1, 21)),
        int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.SSL),
        auth_plugin="mysql_native_password",
    )
    assert HandshakeV10.decode(greeting.encode()) == greeting


def test_an_err_instead_of_a_greeting_says_what_the_server_said():
    """A server that refuses at once (too many connections) is reported with its words."""
    payload = Err(1040, "08004", "Too many connections").encode()
    with pytest.raises(ProtocolError, match="Too many connections"):
        HandshakeV10.decode(payload)


def test_ssl_request_is_told_apart_from_a_handshake_response():
    """32 bytes with CLIENT_SSL is an SSLRequest; a full response is not."""
    caps = int(Capability.PROTOCOL_41 | Capability.SSL | Capability.SECURE_CONNECTION)
    request = SslRequest(caps).encode()
    assert len(request) == 32
    assert is_ssl_request(request)
    assert SslRequest.decode(request).capabilities == caps
    response = HandshakeResponse(caps, "alice", b"x" * 20).encode()
    assert not is_ssl_request(response)


@pytest.mark.parametrize(
    "caps",
    [
        Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION,
        Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.CONNECT_WITH_DB,
        Capability.PROTOCOL_41
        | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.PLUGIN_AUTH
        | Capability.CONNECT_WITH_DB
        | Capability.CONNECT_ATTRS,
    ],
)
def test_handshake_responses_round_trip_in_each_auth_form(caps):
    """Length-prefixed, length-encoded auth data; database, plugin and attributes when flagged."""
    response = HandshakeResponse(
        int(caps),
        "alice",
        b"\x01" * 20,
        database="demo" if caps & Capability.CONNECT_WITH_DB else None,
        auth_plugin="mysql_native_password" if caps & Capability.PLUGIN_AUTH else "",
        attributes={"_client_name": "pymysql"} if caps & Capability.CONNECT_ATTRS else {},
    )
    assert HandshakeResponse.decode(response.encode()) == response
    assert "auth_response" not in repr(response)


def test_a_pre_41_client_is_refused():
    """Protocol 3.23 clients are not served."""
    with pytest.raises(ProtocolError, match=r"4\.1"):
        HandshakeResponse.decode(b"\x00" * 32 + b"alice\x00")


def test_auth_switch_and_more_data():
    """The server's switch to a plugin with its scramble; caching_sha2's status byte."""
    switch = AuthSwitchRequest("mysql_clear_password")
    assert switch.encode() == b"\xfemysql_clear_password\x00"
    assert AuthSwitchRequest.decode(switch.encode()) == switch
    scrambled = AuthSwitchRequest.decode(b"\xfemysql_native_password\x00" + b"s" * 20 + b"\x00")
    assert scrambled.plugin == "mysql_native_password"
    assert scrambled.data.rstrip(b"\x00") == b"s" * 20
    assert AuthMoreData.decode(b"\x01\x04").data == b"\x04"
    with pytest.raises(ProtocolError):
        AuthMoreData.decode(b"\x02\x04")


def test_native_password_scramble_matches_the_known_vector():
    """mysql_native_password for 'secret' with a fixed scramble (checked against PyMySQL's implementation)."""
    pymysql = pytest.importorskip("pymysql._auth")
    scramble = bytes(range(1, 21))
    assert native_password("secret", scramble) == pymysql.scramble_native_password(b"secret", scramble)
    assert caching_sha2_password("secret", scramble) == pymysql.scramble_caching_sha2(b"secret", scramble)
    assert native_password("", scramble) == b""


def test_clear_password_goes_only_over_tls_and_unknown_plugins_are_named():
    """Towards a server, the clear-text plugin needs TLS; an unknown plugin is refused by name."""
    assert response_for("mysql_clear_password", "pw", b"", tls=True) == b"pw\x00"
    with pytest.raises(UpstreamError, match="without TLS"):
        response_for("mysql_clear_password", "pw", b"", tls=False)
    with pytest.raises(UpstreamError, match="auth_gssapi_client"):
        response_for("auth_gssapi_client", "pw", b"", tls=True)


def test_ok_err_eof_round_trip():
    """OK with rows and insert id, ERR with SQLSTATE, EOF with status; terminators recognised."""
    ok = Ok(affected_rows=3, last_insert_id=70000, status=0x0002, warnings=1, info=b"Rows matched: 3")
    assert Ok.decode(ok.encode()) == ok
    err = Err(1142, "42000", "SELECT command denied")
    assert err.encode()[:4] == b"\xff\x76\x04#"
    assert Err.decode(err.encode()) == err
    assert Err.decode(b"\xff\x15\x04no state").sqlstate == "HY000"
    eof = Eof(warnings=0, status=0x000A)
    assert Eof.decode(eof.encode()) == eof
    assert is_terminator(eof.encode())
    terminator = Ok(status=0x0008, header=0xFE).encode()
    assert is_terminator(terminator)
    assert terminator_status(terminator) == 0x0008
    assert terminator_status(eof.encode()) == 0x000A
    assert not is_terminator(b"\x01a")


def test_column_definitions_round_trip_with_their_origin():
    """schema, table alias, org_table, name alias, org_name, charset, type, flags."""
    column = ColumnDefinition("demo", "c", "customers", "mail", "email", 45, 1020, ColumnType.VAR_STRING, 0, 0)
    assert ColumnDefinition.decode(column.encode()) == column
    with_default = ColumnDefinition("demo", "t", "t", "id", "id", 63, 11, ColumnType.LONG, 0x20, 0, default=b"0")
    decoded = ColumnDefinition.decode(with_default.encode())
    assert decoded.default == b"0"
    assert decoded.unsigned
    assert column_count(b"\x03") == 3
    with pytest.raises(ProtocolError):
        column_count(b"\x00")


def test_text_rows_with_nulls():
    """Length-encoded strings and 0xFB for NULL; extra bytes refused."""
    row = [b"1", None, b"alice@example.com", b""]
    assert text_row(encode_text_row(row), 4) == row
    with pytest.raises(ProtocolError, match="after its"):
        text_row(encode_text_row(row) + b"\x00", 4)
    with pytest.raises(ProtocolError, match="ends early"):
        text_row(b"\x05ab", 1)


def test_binary_rows_with_every_kind_of_value():
    """Null bitmap offset 2, fixed integers, floats, temporal values with their length byte, strings."""
    types = [
        ColumnType.LONGLONG,
        ColumnType.VAR_STRING,
        ColumnType.TINY,
        ColumnType.DOUBLE,
        ColumnType.DATETIME,
        ColumnType.TIME,
        ColumnType.NEWDECIMAL,
        ColumnType.SHORT,
        ColumnType.LONG,
        ColumnType.FLOAT,
    ]
    datetime = struct.pack("<HBBBBB", 2026, 12, 5, 8, 30, 1)
    time = struct.pack("<BIBBB", 1, 1, 2, 3, 4)
    values = [
        struct.pack("<q", -5),
        b"alice@example.com",
        None,
        struct.pack("<d", 1.5),
        datetime,
        time,
        b"12.50",
        struct.pack("<h", 7),
        None,
        struct.pack("<f", 0.5),
    ]
    payload = encode_binary_row(values, [int(t) for t in types])
    assert payload[0] == 0
    assert binary_row(payload, [int(t) for t in types]) == values
    texts = [None if v is None else binary_value_text(t, v) for t, v in zip(types, values, strict=True)]
    assert texts == [
        "-5",
        "alice@example.com",
        None,
        "1.5",
        "2026-12-05 08:30:01",
        "-26:03:04",
        "12.50",
        "7",
        None,
        "0.5",
    ]
    assert binary_value_text(ColumnType.TINY, b"\xff", unsigned=True) == "255"


def test_prepare_ok_round_trips():
    """Statement id, columns, parameters, warnings."""
    ok = PrepareOk(7, 2, 3, 0)
    assert PrepareOk.decode(ok.encode()) == ok
    assert PrepareOk.decode(b"\x00\x07\x00\x00\x00\x02\x00\x03\x00") == PrepareOk(7, 2, 3)


@pytest.mark.parametrize(
    "command",
    [
        Query("SELECT 1"),
        InitDb("demo"),
        FieldList("customers", "%"),
        StmtPrepare("SELECT * FROM t WHERE id = ?"),
        StmtExecute(7, 0, 1, b"\x00\x01\x08\x00" + struct.pack("<q", 5)),
        StmtSendLongData(7, 0, b"blob"),
        StmtClose(7),
        StmtReset(7),
        StmtFetch(7, 100),
        ProcessKill(99),
        SetOption(1),
        Simple(Command.PING),
        Simple(Command.QUIT),
        Simple(Command.RESET_CONNECTION),
        OtherCommand(Command.CHANGE_USER, b"bob\x00"),
    ],
)
def test_commands_round_trip(command):
    """Each command the gateway inspects decodes from the bytes a client sends."""
    assert decode_command(command.encode()) == command


def test_command_errors_are_clear():
    """An empty packet, a truncated COM_STMT_CLOSE and invalid UTF-8 in SQL are refused by name."""
    with pytest.raises(ProtocolError, match="empty"):
        decode_command(b"")
    with pytest.raises(ProtocolError, match="0x19"):
        decode_command(b"\x19\x01")
    with pytest.raises(ProtocolError, match="UTF-8"):
        decode_command(b"\x03SELECT '\xff'")


def test_execute_parameters_decode_to_text_with_types_remembered():
    """Types sent once are reused; NULLs from the bitmap; long data has no bytes in the packet."""
    block = encode_execute_params(
        [(ColumnType.LONGLONG, struct.pack("<q", 42)), (ColumnType.VAR_STRING, b"bob"), (ColumnType.LONG, None)]
    )
    params = execute_params(block, 3)
    assert params.values == ("42", "bob", None)
    again = b"\x04\x00" + struct.pack("<q", 43) + b"\x03bob"  # third NULL, types not sent again
    assert execute_params(again, 3, params.types).values == ("43", "bob", None)
    unsigned = encode_execute_params([(ColumnType.TINY | 0x8000, b"\xff")])
    assert execute_params(unsigned, 1).values == ("255",)
    long_data = encode_execute_params([(ColumnType.BLOB, None), (ColumnType.LONG, struct.pack("<i", 1))])
    long_data = b"\x00" + long_data[1:]  # the first parameter is not NULL: its value came with SEND_LONG_DATA
    assert execute_params(long_data, 2, long_data=frozenset({0})).values == ("<long data>", "1")
    with pytest.raises(ProtocolError, match="no parameter types"):
        execute_params(b"\x00\x00", 1)


def test_rsa_encrypted_password_decrypts_to_the_password_xor_scramble():
    """caching_sha2_password without TLS: the server's key decrypts password + NUL XOR the scramble."""
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: PLC0415

    from sqlgate.mywire.auth import rsa_encrypted_password  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    scramble = bytes(range(1, 21))
    sealed = rsa_encrypted_password("secret", scramble, pem)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303
    plain = key.decrypt(sealed, oaep)
    assert bytes(b ^ scramble[i % 20] for i, b in enumerate(plain)) == b"secret\x00"
    with pytest.raises(UpstreamError, match="does not load"):
        rsa_encrypted_password("secret", scramble, b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
