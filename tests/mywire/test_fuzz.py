"""Hypothesis fuzzing: any bytes, cut into any chunks, only ever raise ProtocolError (and always return).

The default profile is fast (a few hundred examples per test); ``SQLGATE_FUZZ_DEEP=1``
runs tens of thousands. Inputs mix random bytes with valid packets so the machines
get past their first check and are fuzzed in every state.
"""

from __future__ import annotations

import contextlib
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.mywire.actions import LoginReceived
from sqlgate.mywire.commands import decode_command, execute_params
from sqlgate.mywire.constants import Capability, ColumnType
from sqlgate.mywire.handshake import AuthSwitchRequest, HandshakeResponse, HandshakeV10, SslRequest
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import ColumnDefinition, Err, Ok, PrepareOk, binary_row, text_row
from sqlgate.mywire.server_login import ClientLogin
from sqlgate.mywire.upstream_login import UpstreamLogin

DEEP = os.environ.get("SQLGATE_FUZZ_DEEP") == "1"
FUZZ = settings(
    max_examples=20_000 if DEEP else 300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CAPS = int(Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH | Capability.CONNECT_WITH_DB)
CLIENT_PIECES = [
    encode(SslRequest(CAPS | Capability.SSL).encode(), 1),
    encode(HandshakeResponse(CAPS, "alice", b"x" * 20, "demo", "mysql_native_password").encode(), 1),
    encode(b"token\x00", 3),
    encode(b"\x03SELECT 1", 0),
]
SERVER_PIECES = [
    encode(HandshakeV10("10.11", 1, b"s" * 20, CAPS | Capability.SSL, auth_plugin="caching_sha2_password").encode(), 0),
    encode(AuthSwitchRequest("mysql_native_password", b"t" * 20).encode(), 2),
    encode(b"\x01\x04", 2),
    encode(b"\x01-----BEGIN PUBLIC KEY-----\n", 4),
    encode(Ok().encode(), 2),
    encode(Err(1045, "28000", "no").encode(), 2),
    encode(ColumnDefinition("d", "t", "t", "c", "c", 45, 10, 253).encode(), 2),
    encode(PrepareOk(1, 1, 1).encode(), 1),
]


def streams(pieces: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    """Lists of chunks: random bytes and valid packets, the whole cut at random places."""
    part = st.one_of(st.binary(max_size=64), st.sampled_from(pieces))
    return st.lists(part, max_size=8).flatmap(
        lambda parts: st.lists(st.integers(0, max(0, len(b"".join(parts)))), max_size=6).map(
            lambda cuts: _cut(b"".join(parts), sorted(cuts))
        )
    )


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    out, last = [], 0
    for cut in [*cuts, len(data)]:
        out.append(data[last:cut])
        last = cut
    return out


@FUZZ
@given(streams(CLIENT_PIECES))
def test_the_client_login_only_raises_protocol_error(chunks):
    """Any bytes from a client: actions or ProtocolError, never another exception or a hang."""
    machine = ClientLogin(connection_id=1, server_version="8.0", tls_available=True, require_tls=False)
    machine.start()
    try:
        for chunk in chunks:
            for action in machine.receive(chunk):
                if isinstance(action, LoginReceived):
                    machine.request_password()
            if machine.state == "tls":
                machine.tls_started()
    except ProtocolError:
        pass


@FUZZ
@given(streams(SERVER_PIECES))
def test_the_upstream_login_only_raises_protocol_or_upstream_errors(chunks):
    """Any bytes from a server: actions, ProtocolError or UpstreamError (a refusal it explains)."""
    machine = UpstreamLogin(user="u", password="p", database="d", capabilities=CAPS, charset=45, tls="prefer")
    try:
        for chunk in chunks:
            machine.receive(chunk)
            if machine.state == "tls":
                machine.tls_started()
    except (ProtocolError, UpstreamError):
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_every_decoder_only_raises_protocol_error(payload):
    """Each packet decoder on arbitrary bytes: a value or ProtocolError."""
    decoders = [
        decode_command,
        HandshakeV10.decode,
        HandshakeResponse.decode,
        ColumnDefinition.decode,
        Ok.decode,
        Err.decode,
        PrepareOk.decode,
        AuthSwitchRequest.decode,
        lambda p: text_row(p, 3),
        lambda p: binary_row(p, [ColumnType.LONGLONG, ColumnType.VAR_STRING, ColumnType.DATETIME, ColumnType.DOUBLE]),
        lambda p: execute_params(p, 3),
        lambda p: execute_params(p, 2, (ColumnType.TIME, ColumnType.TINY | 0x8000)),
    ]
    for decode in decoders:
        with contextlib.suppress(ProtocolError):
            decode(payload)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_the_packet_reader_only_raises_protocol_error(chunks):
    """Arbitrary chunks: packets, a wait for more, or ProtocolError (size or sequence)."""
    reader = PacketReader(max_size=4096)
    try:
        for chunk in chunks:
            reader.feed(chunk)
            list(reader.packets())
    except ProtocolError:
        pass
