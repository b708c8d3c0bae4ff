"""pgwire: the PostgreSQL wire protocol, sans-IO (bytes in, messages out, and back).

Nothing here opens a socket or imports asyncio; :mod:`sqlgate.proxy` owns the I/O.

- :mod:`~sqlgate.pgwire.framing` cuts a byte stream into messages without decoding them
  (:class:`Framer`, :class:`FrameBatch`), the relay's hot path; :mod:`~sqlgate.pgwire.msgtypes`
  names the type bytes (:class:`FrontendType`, :class:`BackendType`).
- :mod:`~sqlgate.pgwire.startup`, :mod:`~sqlgate.pgwire.frontend`, :mod:`~sqlgate.pgwire.backend`,
  :mod:`~sqlgate.pgwire.results`, :mod:`~sqlgate.pgwire.copy`, :mod:`~sqlgate.pgwire.auth`,
  :mod:`~sqlgate.pgwire.notices`: one frozen dataclass per message, each with ``encode()``
  and ``decode(payload)``; :mod:`~sqlgate.pgwire.codec` reads and writes their fields.
- :mod:`~sqlgate.pgwire.errcodes`: SQLSTATEs generated from PostgreSQL's errcodes.txt.
- :mod:`~sqlgate.pgwire.scram`: SCRAM-SHA-256 client and the primitives a verifier needs.
- :mod:`~sqlgate.pgwire.client_handshake` and :mod:`~sqlgate.pgwire.upstream_handshake`:
  the two logins as pure state machines (events in, :mod:`~sqlgate.pgwire.actions` out).
"""

from sqlgate.pgwire.actions import (
    Action,
    CancelRequested,
    Disconnect,
    PasswordReceived,
    Send,
    StartTls,
    StartupReceived,
)
from sqlgate.pgwire.backend import (
    BackendKeyData,
    BackendMessage,
    CommandComplete,
    DataRow,
    FieldDescription,
    ParameterStatus,
    ReadyForQuery,
    RowDescription,
    decode_backend,
)
from sqlgate.pgwire.client_handshake import ClientHandshake
from sqlgate.pgwire.framing import Frame, FrameBatch, Framer
from sqlgate.pgwire.frontend import Bind, Close, Execute, FrontendMessage, Parse, Query, Sync, decode_frontend
from sqlgate.pgwire.msgtypes import BackendType, FrontendType
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse, error_from, error_response
from sqlgate.pgwire.scram import ScramClient, ScramError
from sqlgate.pgwire.startup import PROTOCOL_3_0, PROTOCOL_3_2, CancelRequest, StartupMessage, decode_startup
from sqlgate.pgwire.upstream_handshake import UpstreamHandshake, UpstreamLogin, UpstreamRefused

__all__ = [
    "PROTOCOL_3_0",
    "PROTOCOL_3_2",
    "Action",
    "BackendKeyData",
    "BackendMessage",
    "BackendType",
    "Bind",
    "CancelRequest",
    "CancelRequested",
    "ClientHandshake",
    "Close",
    "CommandComplete",
    "DataRow",
    "Disconnect",
    "ErrorResponse",
    "Execute",
    "FieldDescription",
    "Frame",
    "FrameBatch",
    "Framer",
    "FrontendMessage",
    "FrontendType",
    "NoticeResponse",
    "ParameterStatus",
    "Parse",
    "PasswordReceived",
    "Query",
    "ReadyForQuery",
    "RowDescription",
    "ScramClient",
    "ScramError",
    "Send",
    "StartTls",
    "StartupMessage",
    "StartupReceived",
    "Sync",
    "UpstreamHandshake",
    "UpstreamLogin",
    "UpstreamRefused",
    "decode_backend",
    "decode_frontend",
    "decode_startup",
    "error_from",
    "error_response",
]
