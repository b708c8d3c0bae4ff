"""pgwire: the PostgreSQL wire protocol, sans-IO (bytes in, messages out, and back).

Nothing here opens a socket or imports asyncio; :mod:`sqlgate.proxy` owns the I/O.

- :mod:`~sqlgate.pgwire.framing` cuts a byte stream into messages without decoding them
  (:class:`Framer`, :class:`FrameBatch`), the relay's hot path.
- :mod:`~sqlgate.pgwire.startup`, :mod:`~sqlgate.pgwire.frontend`, :mod:`~sqlgate.pgwire.backend`,
  :mod:`~sqlgate.pgwire.auth`, :mod:`~sqlgate.pgwire.notices`: one frozen dataclass per
  message, each with ``encode()`` and ``decode(payload)``.
- :mod:`~sqlgate.pgwire.errcodes`: SQLSTATEs generated from PostgreSQL's errcodes.txt.
"""

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
from sqlgate.pgwire.framing import Frame, FrameBatch, Framer
from sqlgate.pgwire.frontend import Bind, Close, Execute, FrontendMessage, Parse, Query, Sync, decode_frontend
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse, error_from, error_response
from sqlgate.pgwire.startup import CancelRequest, StartupMessage, decode_startup

__all__ = [
    "BackendKeyData",
    "BackendMessage",
    "Bind",
    "CancelRequest",
    "Close",
    "CommandComplete",
    "DataRow",
    "ErrorResponse",
    "Execute",
    "FieldDescription",
    "Frame",
    "FrameBatch",
    "Framer",
    "FrontendMessage",
    "NoticeResponse",
    "ParameterStatus",
    "Parse",
    "Query",
    "ReadyForQuery",
    "RowDescription",
    "StartupMessage",
    "Sync",
    "decode_backend",
    "decode_frontend",
    "decode_startup",
    "error_from",
    "error_response",
]
