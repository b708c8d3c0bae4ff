"""Client commands (the packets a client sends once logged in), decoded by their first byte.

:func:`decode_command` returns one dataclass per command the gateway inspects
(COM_QUERY, COM_INIT_DB, COM_FIELD_LIST, COM_STMT_*, COM_PROCESS_KILL,
COM_SET_OPTION, ...) and :class:`OtherCommand` for the rest. COM_STMT_EXECUTE's
parameters depend on the statement's parameter count (known from its prepare)
and on the types last bound, so they are decoded by :func:`execute_params` with
those. Every decoder raises ProtocolError on bytes that break the protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlgate.errors import ProtocolError
from sqlgate.mywire.buffer import Reader, cstring, int1, int2, int4
from sqlgate.mywire.constants import Command
from sqlgate.mywire.results import binary_value_text, encode_binary_value, read_binary_value

PARAM_UNSIGNED = 0x80
"""Flag byte of a parameter type: the integer is unsigned."""


@dataclass(frozen=True, slots=True)
class Query:
    """COM_QUERY: SQL text (without CLIENT_QUERY_ATTRIBUTES, which sqlgate does not offer)."""

    sql: str

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.QUERY) + self.sql.encode()


@dataclass(frozen=True, slots=True)
class InitDb:
    """COM_INIT_DB: change the default database."""

    schema: str

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.INIT_DB) + self.schema.encode()


@dataclass(frozen=True, slots=True)
class FieldList:
    """COM_FIELD_LIST: the columns of a table (deprecated, still used by the mysql CLI's completion)."""

    table: str
    wildcard: str = ""

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.FIELD_LIST) + cstring(self.table) + self.wildcard.encode()


@dataclass(frozen=True, slots=True)
class StmtPrepare:
    """COM_STMT_PREPARE: SQL text with ``?`` placeholders."""

    sql: str

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.STMT_PREPARE) + self.sql.encode()


@dataclass(frozen=True, slots=True)
class StmtExecute:
    """COM_STMT_EXECUTE: statement id, cursor flags, iteration count; parameters undecoded (see execute_params)."""

    statement_id: int
    flags: int
    iterations: int
    params: bytes = field(repr=False, default=b"")

    def encode(self) -> bytes:
        """The payload."""
        return (
            int1(Command.STMT_EXECUTE)
            + int4(self.statement_id)
            + int1(self.flags)
            + int4(self.iterations)
            + self.params
        )


@dataclass(frozen=True, slots=True)
class StmtSendLongData:
    """COM_STMT_SEND_LONG_DATA: a piece of one parameter's value (no reply from the server)."""

    statement_id: int
    param: int
    data: bytes = field(repr=False)

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.STMT_SEND_LONG_DATA) + int4(self.statement_id) + int2(self.param) + self.data


@dataclass(frozen=True, slots=True)
class StmtClose:
    """COM_STMT_CLOSE (no reply from the server)."""

    statement_id: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.STMT_CLOSE) + int4(self.statement_id)


@dataclass(frozen=True, slots=True)
class StmtReset:
    """COM_STMT_RESET: drop long data sent for a statement, close its cursor."""

    statement_id: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.STMT_RESET) + int4(self.statement_id)


@dataclass(frozen=True, slots=True)
class StmtFetch:
    """COM_STMT_FETCH: more rows of a statement's cursor."""

    statement_id: int
    rows: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.STMT_FETCH) + int4(self.statement_id) + int4(self.rows)


@dataclass(frozen=True, slots=True)
class ProcessKill:
    """COM_PROCESS_KILL: kill a connection by its id (deprecated; clients send KILL as a query instead)."""

    connection_id: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.PROCESS_KILL) + int4(self.connection_id)


@dataclass(frozen=True, slots=True)
class SetOption:
    """COM_SET_OPTION: 0 turns multi-statements on, 1 off."""

    option: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(Command.SET_OPTION) + int2(self.option)


@dataclass(frozen=True, slots=True)
class Simple:
    """A command without arguments: COM_PING, COM_QUIT, COM_RESET_CONNECTION, COM_STATISTICS, ..."""

    command: int

    def encode(self) -> bytes:
        """The payload."""
        return int1(self.command)


@dataclass(frozen=True, slots=True)
class OtherCommand:
    """Any other command (COM_CHANGE_USER, COM_BINLOG_DUMP, unknown bytes): its number and arguments."""

    command: int
    body: bytes = field(repr=False, default=b"")

    def encode(self) -> bytes:
        """The payload."""
        return int1(self.command) + self.body


ClientCommand = (
    Query
    | InitDb
    | FieldList
    | StmtPrepare
    | StmtExecute
    | StmtSendLongData
    | StmtClose
    | StmtReset
    | StmtFetch
    | ProcessKill
    | SetOption
    | Simple
    | OtherCommand
)
_SIMPLE = frozenset(
    {Command.PING, Command.QUIT, Command.RESET_CONNECTION, Command.STATISTICS, Command.DEBUG, Command.SLEEP}
)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"the command's text is not valid UTF-8 (byte {exc.start})") from exc


def decode_command(payload: bytes) -> ClientCommand:
    """The command in ``payload`` (ProtocolError for an empty or truncated one)."""
    if not payload:
        raise ProtocolError("an empty command packet")
    command, body = payload[0], payload[1:]
    decoder = _DECODERS.get(command)
    if decoder is not None:
        return decoder(Reader(body, f"command 0x{command:02x}"))
    if command in _SIMPLE:
        return Simple(command)
    return OtherCommand(command, body)


def _field_list(reader: Reader) -> FieldList:
    table = _text(reader.cstring_or_rest())
    return FieldList(table, _text(reader.rest()))


_DECODERS: dict[int, Callable[[Reader], ClientCommand]] = {
    Command.QUERY: lambda r: Query(_text(r.rest())),
    Command.STMT_PREPARE: lambda r: StmtPrepare(_text(r.rest())),
    Command.INIT_DB: lambda r: InitDb(_text(r.rest())),
    Command.FIELD_LIST: _field_list,
    Command.STMT_EXECUTE: lambda r: StmtExecute(r.int4(), r.int1(), r.int4(), r.rest()),
    Command.STMT_SEND_LONG_DATA: lambda r: StmtSendLongData(r.int4(), r.int2(), r.rest()),
    Command.STMT_CLOSE: lambda r: StmtClose(r.int4()),
    Command.STMT_RESET: lambda r: StmtReset(r.int4()),
    Command.STMT_FETCH: lambda r: StmtFetch(r.int4(), r.int4()),
    Command.PROCESS_KILL: lambda r: ProcessKill(r.int4()),
    Command.SET_OPTION: lambda r: SetOption(r.int2()),
}


@dataclass(frozen=True, slots=True)
class ExecuteParams:
    """COM_STMT_EXECUTE's parameters: each as text (None for NULL, ``<long data>`` when sent apart), and types."""

    values: tuple[str | None, ...]
    types: tuple[int, ...]  # low byte: the type; 0x8000: unsigned


def execute_params(
    data: bytes, count: int, previous_types: tuple[int, ...] = (), long_data: frozenset[int] = frozenset()
) -> ExecuteParams:
    """Decode the parameter block after COM_STMT_EXECUTE's fixed fields for a statement of ``count`` parameters.

    When the client does not send types again (new-params-bound flag 0), ``previous_types``
    are used; values sent with COM_STMT_SEND_LONG_DATA (their numbers in ``long_data``) have no bytes here.
    """
    if count == 0:
        return ExecuteParams((), ())
    reader = Reader(data, "COM_STMT_EXECUTE parameters")
    nulls = reader.take((count + 7) // 8)
    bound = reader.int1()
    if bound:
        types = tuple(reader.int2() for _ in range(count))
    elif len(previous_types) == count:
        types = previous_types
    else:
        raise ProtocolError("COM_STMT_EXECUTE sends no parameter types, and none were bound before")
    values: list[str | None] = []
    for index, kind in enumerate(types):
        if nulls[index // 8] & (1 << (index % 8)):
            values.append(None)
            continue
        if index in long_data:
            values.append("<long data>")
            continue
        raw = read_binary_value(reader, kind & 0xFF)
        values.append(binary_value_text(kind & 0xFF, raw, unsigned=bool(kind & (PARAM_UNSIGNED << 8))))
    return ExecuteParams(tuple(values), types)


def encode_execute_params(values: list[tuple[int, bytes | None]]) -> bytes:
    """A parameter block (types sent) from (type, encoded value or None) pairs: for tests and tools."""
    count = len(values)
    if count == 0:
        return b""
    nulls = bytearray((count + 7) // 8)
    types = b""
    body = b""
    for index, (kind, value) in enumerate(values):
        types += int2(kind)
        if value is None:
            nulls[index // 8] |= 1 << (index % 8)
        else:
            body += encode_binary_value(kind & 0xFF, value)
    return bytes(nulls) + b"\x01" + types + body
