"""The MySQL relay as scripted conversations from bytes: refusals, ordering, masking, prepare/execute, LOCAL INFILE."""

from __future__ import annotations

import struct

import pytest

from sqlgate.access.mysql.masking import MysqlMasking
from sqlgate.access.mysql.statements import Kill, StatementPolicy
from sqlgate.errors import ProtocolError
from sqlgate.mysqlproxy.relay import Relay, StatementRecord
from sqlgate.mywire.commands import (
    FieldList,
    OtherCommand,
    Query,
    Simple,
    StmtClose,
    StmtExecute,
    StmtPrepare,
    StmtSendLongData,
    encode_execute_params,
)
from sqlgate.mywire.constants import Capability, ColumnType, Command, Status
from sqlgate.mywire.packets import PacketReader, encode
from sqlgate.mywire.results import (
    ColumnDefinition,
    Eof,
    Err,
    Ok,
    PrepareOk,
    binary_row,
    encode_binary_row,
    encode_text_row,
    text_row,
)
from sqlgate.policy.model import Guardrails

READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])
EMAIL = ColumnDefinition("shop", "customers", "customers", "email", "email", 45, 400, ColumnType.VAR_STRING)
ID = ColumnDefinition("shop", "customers", "customers", "id", "id", 63, 11, ColumnType.LONG)


class Wire:
    """A relay with both sides captured."""

    def __init__(self, *, deprecate_eof: bool = False, mask: bool = False) -> None:
        self.to_server: list[bytes] = []
        self.to_client = PacketReader()
        self.records: list[StatementRecord] = []
        masking = None
        if mask:
            masking = MysqlMasking(
                {"customers.email": "email"}, hash_key=b"k", base_tables=frozenset({"shop.customers"}), database="shop"
            )
        caps = int(Capability.PROTOCOL_41 | (Capability.DEPRECATE_EOF if deprecate_eof else 0))
        self.relay = Relay(
            capabilities=caps,
            policy=StatementPolicy(READ_ONLY, database="shop", rule="analysts-read"),
            send_server=self.to_server.append,
            send_client=self.to_client.feed,
            on_statement=self.records.append,
            on_kill=lambda kill: Err(1094, "HY000", f"Unknown thread id: {kill.connection_id}"),
            masking=masking,
        )

    def client(self, payload: bytes) -> None:
        self.relay.client_data(encode(payload, 0))

    def server(self, *payloads: bytes, first_seq: int = 1) -> None:
        self.relay.server_data(b"".join(encode(p, first_seq + i) for i, p in enumerate(payloads)))

    def replies(self) -> list:
        return list(self.to_client.packets())


def result_set(columns: list[ColumnDefinition], rows: list[bytes], *, deprecate_eof: bool = False) -> list[bytes]:
    out = [bytes([len(columns)]), *(c.encode() for c in columns)]
    if not deprecate_eof:
        out.append(Eof(status=Status.AUTOCOMMIT).encode())
    out += rows
    out.append(Ok(status=Status.AUTOCOMMIT, header=0xFE).encode() if deprecate_eof else Eof().encode())
    return out


def test_a_refused_query_never_reaches_the_server():
    """ERR 1142 / 42000 with seq 1 naming the rule; nothing sent upstream; a refused record."""
    wire = Wire()
    wire.client(Query("DELETE FROM orders").encode())
    assert wire.to_server == []
    (reply,) = wire.replies()
    error = Err.decode(reply.payload)
    assert (reply.seq, error.code, error.sqlstate) == (1, 1142, "42000")
    assert error.message.endswith("(rule analysts-read)")
    assert [r.outcome for r in wire.records] == ["refused"]


def test_a_refusal_waits_for_the_reply_the_server_still_owes():
    """A pipelined refused query is answered after the allowed one before it, in order."""
    wire = Wire()
    wire.client(Query("SELECT 1").encode())
    wire.client(Query("DROP TABLE orders").encode())
    assert len(wire.to_server) == 1
    assert wire.replies() == []
    wire.server(Ok(status=Status.AUTOCOMMIT).encode())
    first, second = wire.replies()
    assert first.payload[0] == 0
    assert Err.decode(second.payload).code == 1142


@pytest.mark.parametrize("deprecate_eof", [False, True])
def test_text_rows_are_masked_by_column_origin(deprecate_eof):
    """The email column (org_table customers) is masked; id is forwarded; the record counts the rows."""
    wire = Wire(mask=True, deprecate_eof=deprecate_eof)
    wire.client(Query("SELECT id, email FROM customers").encode())
    rows = [encode_text_row([b"1", b"alice@example.com"]), encode_text_row([b"2", None])]
    wire.server(*result_set([ID, EMAIL], rows, deprecate_eof=deprecate_eof))
    packets = wire.replies()
    start = 3 if deprecate_eof else 4  # after the column count, two definitions (and an EOF)
    values = [text_row(p.payload, 2) for p in packets[start : start + 2]]
    assert values == [[b"1", b"a***@example.com"], [b"2", None]]
    assert [p.seq for p in packets] == list(range(1, len(packets) + 1))
    assert wire.records[0].rows == 2
    assert wire.relay.idle


def test_an_unmasked_result_is_forwarded_byte_for_byte():
    """Without masking the client receives exactly the server's bytes."""
    wire = Wire()
    wire.client(Query("SELECT id, email FROM customers").encode())
    payloads = result_set([ID, EMAIL], [encode_text_row([b"1", b"alice@example.com"])])
    raw = b"".join(encode(p, 1 + i) for i, p in enumerate(payloads))
    wire.relay.server_data(raw)
    assert b"".join(p.raw for p in wire.replies()) == raw


def test_several_result_sets_in_one_reply():
    """OK with MORE_RESULTS_EXISTS, then a result set: one record, the reply complete only at the end."""
    wire = Wire()
    wire.client(Query("SET @a = 1; SELECT 2").encode())
    more = Ok(status=Status.AUTOCOMMIT | Status.MORE_RESULTS_EXISTS).encode()
    two = ColumnDefinition("", "", "", "2", "", 63, 1, ColumnType.LONGLONG)
    wire.server(more, *result_set([two], [encode_text_row([b"2"])]))
    assert wire.relay.idle
    assert len(wire.records) == 1
    assert wire.records[0].rows == 1


def test_prepare_then_execute_masks_binary_rows_and_records_parameters():
    """PREPARE_OK with its definitions registers the statement; EXECUTE's binary rows are masked."""
    wire = Wire(mask=True, deprecate_eof=True)
    wire.client(StmtPrepare("SELECT id, email FROM customers WHERE id = ?").encode())
    param = ColumnDefinition("", "", "", "?", "", 63, 0, ColumnType.LONGLONG)
    wire.server(PrepareOk(5, 2, 1).encode(), param.encode(), ID.encode(), EMAIL.encode())
    assert wire.relay.idle
    params = encode_execute_params([(ColumnType.LONGLONG, struct.pack("<q", 1))])
    wire.client(StmtExecute(5, 0, 1, params).encode())
    types = [ColumnType.LONG, ColumnType.VAR_STRING]
    row = encode_binary_row([struct.pack("<i", 1), b"alice@example.com"], types)
    wire.server(bytes([2]), ID.encode(), EMAIL.encode(), row, Ok(header=0xFE).encode())
    rows = [p for p in wire.replies() if p.payload[:1] == b"\x00" and len(p.payload) > 7]
    assert binary_row(rows[-1].payload, types)[1] == b"a***@example.com"
    executed = wire.records[-1]
    assert executed.params == ("1",)
    assert executed.sql.startswith("SELECT id, email")


def test_an_execute_of_an_unknown_statement_and_change_user_are_refused():
    """Only statements prepared through the relay run; COM_CHANGE_USER never reaches the server."""
    wire = Wire()
    wire.client(StmtExecute(99, 0, 1, b"").encode())
    wire.client(OtherCommand(Command.CHANGE_USER, b"bob\x00").encode())
    assert wire.to_server == []
    messages = [Err.decode(p.payload).message for p in wire.replies()]
    assert "not prepared through this gateway" in messages[0]
    assert "identity" in messages[1]


def test_a_local_infile_request_for_a_plain_select_is_refused():
    """The server asks for a client file during a SELECT: it gets an empty file, the client an ERR."""
    wire = Wire()
    wire.client(Query("SELECT 1").encode())
    wire.server(b"\xfb/etc/passwd")
    assert wire.to_server[-1] == encode(b"", 2)
    assert wire.replies() == []
    wire.server(Ok().encode(), first_seq=3)
    (reply,) = wire.replies()
    assert Err.decode(reply.payload).code == 1142
    assert wire.relay.idle


def test_kill_is_answered_by_the_gateway():
    """KILL QUERY never reaches the server as written: the session's handler answers it."""
    wire = Wire()
    wire.client(Query("KILL QUERY 4242").encode())
    assert wire.to_server == []
    (reply,) = wire.replies()
    assert Err.decode(reply.payload).code == 1094


def test_quit_ends_and_unasked_server_bytes_are_a_protocol_error():
    """COM_QUIT is forwarded and ends the relay; a server packet no command asked for breaks the protocol."""
    wire = Wire()
    with pytest.raises(ProtocolError, match="no command asked for"):
        wire.server(Ok().encode())
    wire.client(Simple(Command.QUIT).encode())
    assert wire.relay.terminated


def test_a_command_must_start_with_sequence_id_0():
    """A command packet with another sequence id is a protocol error."""
    wire = Wire()
    with pytest.raises(ProtocolError, match="sequence id 3"):
        wire.relay.client_data(encode(Query("SELECT 1").encode(), 3))


def test_kill_dataclass_is_what_the_listener_gets():
    """KILL CONNECTION and KILL QUERY are told apart."""
    seen: list[Kill] = []
    wire = Wire()
    wire.relay.on_kill = seen.append  # type: ignore[assignment]
    wire.client(Query("KILL QUERY 7").encode())
    wire.client(Query("KILL 8").encode())
    assert seen == [Kill(7, query_only=True), Kill(8, query_only=False)]


def prepared(wire: Wire, statement_id: int = 5, params: int = 1) -> None:
    wire.client(StmtPrepare("SELECT id FROM customers WHERE id = ?").encode())
    param = ColumnDefinition("", "", "", "?", "", 63, 0, ColumnType.LONGLONG)
    wire.server(PrepareOk(statement_id, 1, params).encode(), *[param.encode()] * params, ID.encode())
    wire.replies()


def test_long_data_close_and_reset_connection():
    """SEND_LONG_DATA and CLOSE get no reply; long data shows in the record; RESET_CONNECTION forgets statements."""
    wire = Wire(deprecate_eof=True)
    prepared(wire)
    wire.client(StmtSendLongData(5, 0, b"chunk").encode())
    assert wire.replies() == []
    block = b"\x00\x01" + struct.pack("<H", ColumnType.BLOB)  # not NULL, types bound, the value came as long data
    wire.client(StmtExecute(5, 0, 1, block).encode())
    wire.server(Ok().encode())
    assert wire.records[-1].params == ("<long data>",)
    wire.client(StmtClose(5).encode())
    assert wire.relay.idle
    prepared(wire, statement_id=6)
    wire.client(Simple(Command.RESET_CONNECTION).encode())
    wire.server(Ok().encode())
    wire.replies()
    wire.client(StmtExecute(6, 0, 1, b"\x00\x00").encode())
    assert "not prepared" in Err.decode(wire.replies()[-1].payload).message


def test_field_list_statistics_and_cursors():
    """COM_FIELD_LIST ends at its EOF; COM_STATISTICS' bare string is one reply; cursors are refused."""
    wire = Wire(deprecate_eof=True)
    wire.client(FieldList("customers").encode())
    with_default = ColumnDefinition("shop", "customers", "customers", "id", "id", 63, 11, ColumnType.LONG, default=b"")
    wire.server(with_default.encode(), Eof().encode())
    assert wire.relay.idle
    wire.client(Simple(Command.STATISTICS).encode())
    wire.server(b"Uptime: 5  Threads: 1")
    assert wire.relay.idle
    prepared(wire, statement_id=7)
    wire.client(StmtExecute(7, 1, 1, b"\x00\x00").encode())  # CURSOR_TYPE_READ_ONLY
    assert "cursors" in Err.decode(wire.replies()[-1].payload).message


def test_errors_are_scrubbed_under_a_masking_grant():
    """A server error quoting a value keeps its code and SQLSTATE, not its text, when the grant masks."""
    wire = Wire(mask=True)
    wire.client(Query("SELECT id FROM customers").encode())
    wire.server(Err(1062, "23000", "Duplicate entry 'alice@example.com' for key 'email'").encode())
    (reply,) = wire.replies()
    error = Err.decode(reply.payload)
    assert (error.code, error.sqlstate) == (1062, "23000")
    assert "alice" not in error.message
    assert "alice" not in (wire.records[-1].error or "")


def test_statements_still_running_when_the_session_ends_are_recorded():
    """A reply still owed when the session ends leaves an error record, not a gap in the audit log."""
    wire = Wire()
    wire.client(Query("SELECT SLEEP(10)").encode())
    wire.relay.abandon("client_gone", "the client disconnected")
    (record,) = wire.records
    assert (record.outcome, record.sql) == ("client_gone", "SELECT SLEEP(10)")
    assert "disconnected" in (record.error or "")
    assert wire.relay.idle


def test_a_client_packet_over_the_limit_is_refused_from_its_header():
    """The relay's client side refuses a packet larger than its bound before buffering it."""
    from sqlgate.mywire.packets import PacketTooLarge  # noqa: PLC0415

    wire = Wire()
    wire.relay.client.max_size = 1 << 16
    with pytest.raises(PacketTooLarge):
        wire.relay.client_data(b"\xff\xff\x01\x00\x03")
    assert wire.to_server == []
