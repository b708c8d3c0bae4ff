"""Server replies: OK, ERR and EOF packets, column definitions, text and binary rows, COM_STMT_PREPARE's OK.

Rows are decoded into each column's *encoded* value (``bytes``, or None for NULL)
so a relay can rewrite one column and encode the row again without touching the
others. :func:`binary_value_text` turns one binary-protocol value into text for
audit records and masking functions.

A reply that ends a result set (EOF, or with ``CLIENT_DEPRECATE_EOF`` an OK packet
with the 0xFE header) is recognised by :func:`is_terminator`: header 0xFE and a
payload shorter than a row starting with an 8-byte length could be.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sqlgate.errors import ProtocolError
from sqlgate.mywire.buffer import Reader, int1, int2, int4, lenenc_bytes, lenenc_int
from sqlgate.mywire.constants import EOF_HEADER, ERR_HEADER, MAX_PAYLOAD, OK_HEADER, Capability, ColumnType

UNSIGNED_FLAG = 0x20
"""Column definition flag of unsigned integers."""


@dataclass(frozen=True, slots=True)
class Ok:
    """An OK packet (header 0x00, or 0xFE when it ends a result set under ``CLIENT_DEPRECATE_EOF``)."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: bytes = b""
    header: int = OK_HEADER

    @classmethod
    def decode(cls, payload: bytes) -> Ok:
        """Decode an OK packet; session-state information after ``info`` is kept inside ``info``."""
        reader = Reader(payload, "OK packet")
        header = reader.int1()
        if header not in (OK_HEADER, EOF_HEADER):
            raise ProtocolError(f"OK packet: unexpected header 0x{header:02x}")
        affected = reader.lenenc_int() or 0
        insert_id = reader.lenenc_int() or 0
        status = reader.int2() if reader.remaining >= 2 else 0
        warnings = reader.int2() if reader.remaining >= 2 else 0
        return cls(affected, insert_id, status, warnings, reader.rest(), header)

    def encode(self) -> bytes:
        """The payload."""
        return (
            int1(self.header)
            + lenenc_int(self.affected_rows)
            + lenenc_int(self.last_insert_id)
            + int2(self.status)
            + int2(self.warnings)
            + self.info
        )


@dataclass(frozen=True, slots=True)
class Err:
    """An ERR packet: error code, SQLSTATE and message."""

    code: int
    sqlstate: str
    message: str

    @classmethod
    def decode(cls, payload: bytes) -> Err:
        """Decode an ERR packet (the SQLSTATE marker ``#`` is optional, as before protocol 4.1)."""
        reader = Reader(payload, "ERR packet")
        if reader.int1() != ERR_HEADER:
            raise ProtocolError("ERR packet: header is not 0xFF")
        code = reader.int2()
        sqlstate = "HY000"
        if reader.remaining >= 6 and reader.data[reader.pos] == ord("#"):
            reader.pos += 1
            sqlstate = reader.take(5).decode("ascii", "replace")
        return cls(code, sqlstate, reader.rest().decode("utf-8", "replace"))

    def encode(self) -> bytes:
        """The payload."""
        state = (self.sqlstate.encode("ascii", "replace") + b"HY000")[:5]
        return b"\xff" + int2(self.code) + b"#" + state + self.message.encode()


@dataclass(frozen=True, slots=True)
class Eof:
    """An EOF packet (without ``CLIENT_DEPRECATE_EOF``): warnings and status flags."""

    warnings: int = 0
    status: int = 0

    @classmethod
    def decode(cls, payload: bytes) -> Eof:
        """Decode an EOF packet (old servers send only the header)."""
        reader = Reader(payload, "EOF packet")
        if reader.int1() != EOF_HEADER:
            raise ProtocolError("EOF packet: header is not 0xFE")
        if reader.remaining < 4:
            return cls()
        return cls(reader.int2(), reader.int2())

    def encode(self) -> bytes:
        """The payload."""
        return b"\xfe" + int2(self.warnings) + int2(self.status)


def is_terminator(payload: bytes) -> bool:
    """True for an EOF packet or an OK packet with the 0xFE header (never for a row)."""
    return bool(payload) and payload[0] == EOF_HEADER and len(payload) < MAX_PAYLOAD


def terminator_status(payload: bytes) -> int:
    """The status flags of an EOF packet or of an OK packet that ends a result set."""
    if len(payload) < 9:
        return Eof.decode(payload).status
    return Ok.decode(payload).status


def end_of_rows(*, deprecate_eof: bool, status: int = 0, warnings: int = 0) -> bytes:
    """The payload that ends a result set's rows: EOF, or an OK packet with the 0xFE header."""
    if deprecate_eof:
        return Ok(status=status, warnings=warnings, header=EOF_HEADER).encode()
    return Eof(warnings, status).encode()


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    """A ColumnDefinition41 packet: where the column comes from, its name and type."""

    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    charset: int
    length: int
    type: int
    flags: int = 0
    decimals: int = 0
    catalog: str = "def"
    default: bytes | None = None  # only in COM_FIELD_LIST replies

    @classmethod
    def decode(cls, payload: bytes) -> ColumnDefinition:
        """Decode one column definition."""
        reader = Reader(payload, "column definition")
        catalog = reader.lenenc_str()
        schema = reader.lenenc_str()
        table = reader.lenenc_str()
        org_table = reader.lenenc_str()
        name = reader.lenenc_str()
        org_name = reader.lenenc_str()
        fixed = reader.lenenc_int()
        if fixed is None or fixed < 10:
            raise ProtocolError(f"column definition: fixed-length fields of {fixed} bytes")
        charset = reader.int2()
        length = reader.int4()
        kind = reader.int1()
        flags = reader.int2()
        decimals = reader.int1()
        reader.take(fixed - 10)
        default = reader.lenenc_bytes() if reader.remaining else None
        return cls(schema, table, org_table, name, org_name, charset, length, kind, flags, decimals, catalog, default)

    def encode(self) -> bytes:
        """The payload."""
        head = b"".join(
            lenenc_bytes(value.encode())
            for value in (self.catalog, self.schema, self.table, self.org_table, self.name, self.org_name)
        )
        fixed = (
            b"\x0c"
            + int2(self.charset)
            + int4(self.length)
            + int1(self.type)
            + int2(self.flags)
            + int1(self.decimals)
            + b"\x00\x00"
        )
        tail = b"" if self.default is None else lenenc_bytes(self.default)
        return head + fixed + tail

    @property
    def unsigned(self) -> bool:
        """True for an unsigned integer column."""
        return bool(self.flags & UNSIGNED_FLAG)


def column_count(payload: bytes) -> int:
    """The column count that starts a result set (a length-encoded integer)."""
    reader = Reader(payload, "result set header")
    count = reader.lenenc_int()
    if count is None or count == 0:
        raise ProtocolError("result set header: no column count")
    return count


# -- text rows -------------------------------------------------------------------------


def text_row(payload: bytes, columns: int) -> list[bytes | None]:
    """The values of a text-protocol row (NULL as None)."""
    reader = Reader(payload, "text row")
    values = [reader.lenenc_bytes() for _ in range(columns)]
    if reader.remaining:
        raise ProtocolError(f"text row: {reader.remaining} bytes after its {columns} values")
    return values


def encode_text_row(values: list[bytes | None]) -> bytes:
    """A text-protocol row."""
    return b"".join(lenenc_bytes(value) for value in values)


# -- binary rows -----------------------------------------------------------------------

_FIXED = {
    ColumnType.LONGLONG: 8,
    ColumnType.DOUBLE: 8,
    ColumnType.LONG: 4,
    ColumnType.INT24: 4,
    ColumnType.FLOAT: 4,
    ColumnType.SHORT: 2,
    ColumnType.YEAR: 2,
    ColumnType.TINY: 1,
    ColumnType.NULL: 0,
}
_TEMPORAL = frozenset(
    {
        ColumnType.DATE,
        ColumnType.DATETIME,
        ColumnType.TIMESTAMP,
        ColumnType.TIME,
        ColumnType.NEWDATE,
        ColumnType.TIMESTAMP2,
        ColumnType.DATETIME2,
        ColumnType.TIME2,
    }
)


def read_binary_value(reader: Reader, kind: int) -> bytes:
    """One binary-protocol value of type ``kind``, as its encoded bytes (length prefix excluded for strings)."""
    size = _FIXED.get(kind)  # type: ignore[call-overload]
    if size is not None:
        return reader.take(size)
    if kind in _TEMPORAL:
        return reader.take(reader.int1())
    value = reader.lenenc_bytes()
    if value is None:
        raise ProtocolError(f"binary value of type {kind}: NULL inside the value")
    return value


def encode_binary_value(kind: int, value: bytes) -> bytes:
    """The wire form of one binary value as :func:`read_binary_value` returned it."""
    if kind in _FIXED:
        return value
    if kind in _TEMPORAL:
        return int1(len(value)) + value
    return lenenc_bytes(value)


def binary_row(payload: bytes, types: list[int]) -> list[bytes | None]:
    """The values of a binary-protocol row (NULL as None), given each column's type."""
    reader = Reader(payload, "binary row")
    if reader.int1() != OK_HEADER:
        raise ProtocolError("binary row: header is not 0x00")
    bitmap = reader.take((len(types) + 9) // 8)
    values: list[bytes | None] = []
    for index, kind in enumerate(types):
        bit = index + 2
        if bitmap[bit // 8] & (1 << (bit % 8)):
            values.append(None)
        else:
            values.append(read_binary_value(reader, kind))
    if reader.remaining:
        raise ProtocolError(f"binary row: {reader.remaining} bytes after its {len(types)} values")
    return values


def encode_binary_row(values: list[bytes | None], types: list[int]) -> bytes:
    """A binary-protocol row (values as :func:`binary_row` returns them)."""
    bitmap = bytearray((len(types) + 9) // 8)
    body = []
    for index, (value, kind) in enumerate(zip(values, types, strict=True)):
        if value is None:
            bit = index + 2
            bitmap[bit // 8] |= 1 << (bit % 8)
        else:
            body.append(encode_binary_value(kind, value))
    return b"\x00" + bytes(bitmap) + b"".join(body)


_INTS = {
    ColumnType.TINY: ("<b", "<B"),
    ColumnType.SHORT: ("<h", "<H"),
    ColumnType.YEAR: ("<h", "<H"),
    ColumnType.LONG: ("<i", "<I"),
    ColumnType.INT24: ("<i", "<I"),
    ColumnType.LONGLONG: ("<q", "<Q"),
}


def binary_value_text(kind: int, value: bytes, *, unsigned: bool = False) -> str:
    """One binary value as the text a text-protocol row would hold (close enough for audit and masks)."""
    try:
        formats = _INTS.get(kind)  # type: ignore[call-overload]
        if formats is not None:
            return str(struct.unpack(formats[1] if unsigned else formats[0], value)[0])
        if kind == ColumnType.DOUBLE:
            return repr(struct.unpack("<d", value)[0])
        if kind == ColumnType.FLOAT:
            return repr(struct.unpack("<f", value)[0])
        if kind in _TEMPORAL:
            return _temporal_text(kind, value)
    except struct.error as exc:
        raise ProtocolError(f"binary value of type {kind}: {exc}") from exc
    return value.decode("utf-8", "replace")


def _temporal_text(kind: int, value: bytes) -> str:
    reader = Reader(value, "temporal value")
    if kind in (ColumnType.TIME, ColumnType.TIME2):
        if not value:
            return "00:00:00"
        negative, days, hour, minute, second = reader.int1(), reader.int4(), reader.int1(), reader.int1(), reader.int1()
        micro = f".{reader.int4():06d}" if reader.remaining >= 4 else ""
        return f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}{micro}"
    if not value:
        return "0000-00-00"
    year, month, day = reader.int2(), reader.int1(), reader.int1()
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if reader.remaining >= 3:
        text += f" {reader.int1():02d}:{reader.int1():02d}:{reader.int1():02d}"
    if reader.remaining >= 4:
        text += f".{reader.int4():06d}"
    return text


# -- COM_STMT_PREPARE's reply ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrepareOk:
    """COM_STMT_PREPARE_OK: the statement id and how many columns and parameters follow."""

    statement_id: int
    columns: int
    params: int
    warnings: int = 0

    @classmethod
    def decode(cls, payload: bytes) -> PrepareOk:
        """Decode the first packet of a successful COM_STMT_PREPARE reply."""
        reader = Reader(payload, "COM_STMT_PREPARE_OK")
        if reader.int1() != OK_HEADER:
            raise ProtocolError("COM_STMT_PREPARE_OK: header is not 0x00")
        statement_id, columns, params = reader.int4(), reader.int2(), reader.int2()
        warnings = 0
        if reader.remaining >= 3:
            reader.int1()
            warnings = reader.int2()
        return cls(statement_id, columns, params, warnings)

    def encode(self) -> bytes:
        """The payload."""
        return (
            b"\x00" + int4(self.statement_id) + int2(self.columns) + int2(self.params) + b"\x00" + int2(self.warnings)
        )


def local_infile_name(payload: bytes) -> str:
    """The file name of a LOCAL INFILE request (header 0xFB)."""
    return payload[1:].decode("utf-8", "replace")


def encode_local_infile_request(name: str) -> bytes:
    """A LOCAL INFILE request's payload."""
    return b"\xfb" + name.encode()


def capabilities_text(flags: int) -> str:
    """Capability flags by name, for error messages."""
    return "|".join(flag.name or hex(flag.value) for flag in Capability if flags & flag) or "none"
