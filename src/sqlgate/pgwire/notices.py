"""ErrorResponse and NoticeResponse: every field, and a builder for the errors sqlgate sends.

Fields are kept by their one-letter code in the order received, so unknown codes
(which clients must ignore) survive a round trip. :func:`error_response` builds a
well-formed error (severity, SQLSTATE, message, detail, hint); :func:`error_from`
turns a :class:`~sqlgate.errors.SqlgateError` into one, with its SQLSTATE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Self

from sqlgate.errors import ProtocolError, SqlgateError
from sqlgate.pgwire.codec import BytesLike, Reader, Writer

FIELD_NAMES = {
    "S": "severity",
    "V": "severity_nonlocalized",
    "C": "sqlstate",
    "M": "message",
    "D": "detail",
    "H": "hint",
    "P": "position",
    "p": "internal_position",
    "q": "internal_query",
    "W": "where",
    "s": "schema_name",
    "t": "table_name",
    "c": "column_name",
    "d": "data_type_name",
    "n": "constraint_name",
    "F": "file",
    "L": "line",
    "R": "routine",
}
"""Field code -> name, as in the protocol documentation."""

ERROR_SEVERITIES = frozenset({"ERROR", "FATAL", "PANIC"})
NOTICE_SEVERITIES = frozenset({"WARNING", "NOTICE", "DEBUG", "INFO", "LOG"})
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An error from the server, fields keyed by their one-letter code."""

    TYPE: ClassVar[bytes] = b"E"
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """ERROR, FATAL or PANIC (the non-localized one when the server sent it)."""
        return self.fields.get("V") or self.fields.get("S", "")

    @property
    def sqlstate(self) -> str:
        """The SQLSTATE code."""
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        """The primary message."""
        return self.fields.get("M", "")

    @property
    def detail(self) -> str | None:
        """The optional detail."""
        return self.fields.get("D")

    @property
    def hint(self) -> str | None:
        """The optional hint."""
        return self.fields.get("H")

    def named(self) -> dict[str, str]:
        """The fields by their documented names (unknown codes kept as ``field_X``)."""
        return {FIELD_NAMES.get(code, f"field_{code}"): value for code, value in self.fields.items()}

    def encode(self) -> bytes:
        """The message bytes."""
        writer = Writer()
        for code, value in self.fields.items():
            if len(code) != 1 or code == "\0":
                raise ValueError(f"field code must be one non-NUL character, got {code!r}")
            writer.raw(code.encode("latin-1")).cstring(value)
        return writer.byte(0).typed(self.TYPE)

    @classmethod
    def decode(cls, payload: BytesLike) -> Self:
        """Parse the body."""
        reader = Reader(payload, cls.__name__)
        fields: dict[str, str] = {}
        while code := reader.byte():
            fields[chr(code)] = reader.cstring()
        reader.finish()
        return cls(fields)

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} (SQLSTATE {self.sqlstate})"


@dataclass(frozen=True, slots=True)
class NoticeResponse(ErrorResponse):
    """A notice or warning from the server; same fields as an error."""

    TYPE: ClassVar[bytes] = b"N"


def error_response(
    sqlstate: str,
    message: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> ErrorResponse:
    """An ErrorResponse as PostgreSQL would send it (both severity fields, SQLSTATE, message)."""
    if severity not in ERROR_SEVERITIES:
        raise ValueError(f"error severity must be one of {sorted(ERROR_SEVERITIES)}, got {severity!r}")
    return ErrorResponse(_fields(sqlstate, message, severity, detail, hint))


def notice_response(
    message: str,
    *,
    sqlstate: str = "00000",
    severity: str = "NOTICE",
    detail: str | None = None,
    hint: str | None = None,
) -> NoticeResponse:
    """A NoticeResponse (WARNING, NOTICE, INFO, ...)."""
    if severity not in NOTICE_SEVERITIES:
        raise ValueError(f"notice severity must be one of {sorted(NOTICE_SEVERITIES)}, got {severity!r}")
    return NoticeResponse(_fields(sqlstate, message, severity, detail, hint))


def error_from(exc: SqlgateError, *, severity: str = "ERROR") -> ErrorResponse:
    """The ErrorResponse a client should see for ``exc``: its SQLSTATE, message and hint."""
    return error_response(exc.sqlstate, exc.message, severity=severity, hint=exc.hint)


def _fields(sqlstate: str, message: str, severity: str, detail: str | None, hint: str | None) -> dict[str, str]:
    if not _SQLSTATE.fullmatch(sqlstate):
        raise ValueError(f"SQLSTATE must be five digits or capital letters, got {sqlstate!r}")
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message}
    if detail is not None:
        fields["D"] = detail
    if hint is not None:
        fields["H"] = hint
    return fields


def check_error(message: ErrorResponse) -> ErrorResponse:
    """The message if it carries a well-formed SQLSTATE, else :class:`ProtocolError`."""
    if not _SQLSTATE.fullmatch(message.sqlstate):
        raise ProtocolError(f"{type(message).__name__} without a valid SQLSTATE")
    return message
