"""Hypothesis fuzzing: any bytes, cut into any chunks, only ever raise ProtocolError (and always return).

The default profile is fast (a few hundred examples per test); ``SQLGATE_FUZZ_DEEP=1``
runs tens of thousands. Inputs mix random bytes with valid messages so the machines
get past their first check and are fuzzed in every state.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlgate.errors import ProtocolError, UpstreamError
from sqlgate.pgwire.actions import PasswordReceived, StartTls, StartupReceived
from sqlgate.pgwire.auth import (
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    PasswordMessage,
)
from sqlgate.pgwire.backend import (
    BackendKeyData,
    DataRow,
    FieldDescription,
    ParameterStatus,
    ReadyForQuery,
    RowDescription,
    decode_backend,
)
from sqlgate.pgwire.client_handshake import ClientHandshake
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Bind, Execute, Parse, Query, Sync, decode_frontend
from sqlgate.pgwire.notices import ErrorResponse
from sqlgate.pgwire.startup import (
    PROTOCOL_3_0,
    PROTOCOL_3_2,
    CancelRequest,
    GSSENCRequest,
    SSLRequest,
    StartupMessage,
    decode_startup,
)
from sqlgate.pgwire.upstream_handshake import UpstreamHandshake, UpstreamLogin

DEEP = os.environ.get("SQLGATE_FUZZ_DEEP") == "1"
FUZZ = settings(
    max_examples=20_000 if DEEP else 300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CLIENT_PIECES = [
    SSLRequest().encode(),
    GSSENCRequest().encode(),
    CancelRequest(1, b"abcd").encode(),
    StartupMessage({"user": "u", "database": "d"}).encode(),
    StartupMessage({"user": "u"}, PROTOCOL_3_2).encode(),
    PasswordMessage("token").encode(),
    Query("SELECT 1").encode(),
    Parse("", "SELECT $1").encode(),
    Bind("", "", (), (b"1",)).encode(),
    Sync().encode(),
    b"X\x00\x00\x00\x04",
]
SERVER_PIECES = [
    AuthenticationOk().encode(),
    AuthenticationCleartextPassword().encode(),
    AuthenticationMD5Password(b"salt").encode(),
    AuthenticationSASL(("SCRAM-SHA-256",)).encode(),
    AuthenticationSASLContinue(b"r=x,s=AA==,i=1").encode(),
    AuthenticationSASLFinal(b"v=AA==").encode(),
    ParameterStatus("a", "b").encode(),
    BackendKeyData(1, b"abcd").encode(),
    ReadyForQuery("I").encode(),
    RowDescription((FieldDescription("c"),)).encode(),
    DataRow((b"1", None)).encode(),
    ErrorResponse({"C": "28P01", "M": "no"}).encode(),
]


def stream(pieces):
    """Valid messages, random bytes and mangled messages, in any order."""
    mangled = st.builds(
        lambda p, i, b: p[:i] + b + p[i + 1 :], st.sampled_from(pieces), st.integers(0, 40), st.binary(max_size=4)
    )
    part = st.one_of(st.sampled_from(pieces), st.binary(max_size=40), mangled)
    return st.lists(part, max_size=12).map(b"".join)


def chunked(pieces):
    """A stream and the chunk sizes to cut it into."""
    return st.tuples(stream(pieces), st.lists(st.integers(1, 64), min_size=1, max_size=20))


def chunks_of(data, sizes):
    pos, index = 0, 0
    while pos < len(data):
        size = sizes[index % len(sizes)]
        yield data[pos : pos + size]
        pos, index = pos + size, index + 1


@pytest.mark.parametrize(("sender", "pieces"), [("frontend", CLIENT_PIECES), ("backend", SERVER_PIECES)])
@FUZZ
@given(data=st.data())
def test_framer_and_decoders_only_raise_protocol_error(sender, pieces, data):
    """Split and decode every frame: a ProtocolError or messages, nothing else."""
    payload, sizes = data.draw(chunked(pieces))
    framer = Framer(sender, max_size=4096)
    decode = decode_backend if sender == "backend" else decode_frontend
    try:
        for chunk in chunks_of(payload, sizes):
            for frame in framer.split(chunk):
                if frame.type != ord("p"):
                    decode(frame.type, frame.payload)
    except ProtocolError:
        pass


@FUZZ
@given(chunked(CLIENT_PIECES))
def test_startup_framing_only_raises_protocol_error(case):
    payload, sizes = case
    framer = Framer("frontend")
    try:
        for chunk in chunks_of(payload, sizes):
            framer.feed(chunk)
            while framer.next_startup() is not None:
                pass
    except ProtocolError:
        pass


@pytest.mark.parametrize("tls_available", [True, False])
@FUZZ
@given(case=chunked(CLIENT_PIECES))
def test_client_handshake_only_raises_protocol_error(tls_available, case):
    """A driver that says yes to everything: the machine still only raises ProtocolError."""
    payload, sizes = case
    hs = ClientHandshake(tls_available=tls_available)
    try:
        for chunk in chunks_of(payload, sizes):
            if hs.state.name in ("DONE", "CLOSED"):
                break
            for action in hs.receive(chunk):
                if isinstance(action, StartTls):
                    hs.tls_started()
                elif isinstance(action, StartupReceived):
                    hs.request_password()
                elif isinstance(action, PasswordReceived):
                    key = b"abcd" if hs.protocol == PROTOCOL_3_0 else bytes(32)
                    hs.succeed({"a": "b"}, BackendKeyData(1, key))
    except ProtocolError:
        pass


@FUZZ
@given(chunked(SERVER_PIECES))
def test_upstream_handshake_only_raises_documented_errors(case):
    """ProtocolError for broken bytes; UpstreamError (a subclass) when a well-formed server refuses or lies."""
    payload, sizes = case
    hs = UpstreamHandshake(UpstreamLogin("u", "d", "pw"))
    hs.start()
    try:
        for chunk in chunks_of(payload, sizes):
            if hs.done:
                break
            hs.receive(chunk)
    except (ProtocolError, UpstreamError):
        pass


TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)
VALUES = st.lists(st.none() | st.binary(max_size=20), max_size=6).map(tuple)
FORMATS = st.lists(st.sampled_from([0, 1]), max_size=4).map(tuple)
INT16 = st.integers(-(2**15), 2**15 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
OID = st.integers(0, 2**32 - 1)
FRONTEND_MESSAGES = st.one_of(
    st.builds(Query, TEXT),
    st.builds(Parse, TEXT, TEXT, st.lists(OID, max_size=4).map(tuple)),
    st.builds(
        lambda portal, statement, params, style, result: Bind(portal, statement, style[: len(params)], params, result),
        TEXT,
        TEXT,
        VALUES,
        st.sampled_from([(), (1,), (0, 1, 0, 1, 0, 1)]),
        FORMATS,
    ),
    st.builds(Execute, TEXT, INT32),
)
BACKEND_MESSAGES = st.one_of(
    st.builds(DataRow, VALUES),
    st.builds(
        RowDescription,
        st.lists(
            st.builds(FieldDescription, TEXT, OID, INT16, OID, INT16, INT32, st.sampled_from([0, 1])), max_size=4
        ).map(tuple),
    ),
    st.builds(ErrorResponse, st.dictionaries(st.sampled_from("SVCMDHPpqWstcdnFLRZ"), TEXT, max_size=8)),
    st.builds(ParameterStatus, TEXT, TEXT),
    st.builds(BackendKeyData, INT32, st.binary(min_size=4, max_size=256)),
)


@FUZZ
@given(FRONTEND_MESSAGES)
def test_frontend_messages_round_trip(message):
    (frame,) = Framer("frontend").split(message.encode())
    assert decode_frontend(frame.type, frame.payload) == message


@FUZZ
@given(BACKEND_MESSAGES)
def test_backend_messages_round_trip(message):
    (frame,) = Framer("backend").split(message.encode())
    assert decode_backend(frame.type, frame.payload) == message


@FUZZ
@given(st.dictionaries(TEXT.filter(bool), TEXT, max_size=6), st.sampled_from([PROTOCOL_3_0, PROTOCOL_3_2]))
def test_startup_messages_round_trip(parameters, protocol):
    message = StartupMessage(parameters, protocol)
    framer = Framer("frontend", max_startup_size=1 << 20)
    framer.feed(message.encode())
    frame = framer.next_startup()
    assert frame is not None
    assert decode_startup(frame.payload) == message
