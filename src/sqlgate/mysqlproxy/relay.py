"""The relay of one MySQL session: client and server bytes in, checked and masked bytes out. No sockets.

Client to server: each command packet is decoded. COM_QUERY and COM_STMT_PREPARE
texts are checked (:mod:`sqlgate.access.mysql.statements`); a refusal is answered by the gateway with
ERR 1142 / 42000 and never reaches the server. COM_STMT_EXECUTE runs only statements
whose prepare was allowed; COM_INIT_DB only the granted database; COM_CHANGE_USER,
replication and other administrative commands are refused; server-side cursors are
not offered (an execute asking for one is refused). Replies the gateway makes are
queued behind the server replies still owed to the client, so their order is kept.

Server to client: every reply is parsed just enough to know where it ends (OK,
ERR, result sets with or without EOF packets, several result sets, prepare replies,
LOCAL INFILE requests) for the statement records; rows are decoded only when the
grant masks a column of the result, and unchanged packets are forwarded as the
bytes that arrived.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlgate.access.masking import Plan
from sqlgate.access.mysql.masking import MysqlMasking, Shape
from sqlgate.access.mysql.statements import REFUSED_CODE, REFUSED_SQLSTATE, Checked, Kill, StatementPolicy
from sqlgate.access.scrub import scrub_text
from sqlgate.errors import ProtocolError
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
    execute_params,
)
from sqlgate.mywire.constants import (
    ERR_HEADER,
    LOCAL_INFILE_HEADER,
    OK_HEADER,
    Capability,
    Command,
    Status,
)
from sqlgate.mywire.packets import DEFAULT_MAX_SIZE, Packet, PacketReader, chunks_needed, encode
from sqlgate.mywire.results import (
    ColumnDefinition,
    Err,
    Ok,
    PrepareOk,
    binary_row,
    column_count,
    encode_binary_row,
    encode_text_row,
    is_terminator,
    terminator_status,
    text_row,
)

Send = Callable[[bytes], None]
MAX_PREPARED = 10_000
_REFUSED_COMMANDS = {
    Command.CHANGE_USER: "COM_CHANGE_USER would change the session's identity; reconnect with your own token instead",
    Command.BINLOG_DUMP: "replication commands are not relayed",
    Command.BINLOG_DUMP_GTID: "replication commands are not relayed",
    Command.REGISTER_SLAVE: "replication commands are not relayed",
    Command.SHUTDOWN: "COM_SHUTDOWN is not relayed",
    Command.CREATE_DB: "COM_CREATE_DB is not relayed; use CREATE DATABASE, which the guardrails check",
    Command.DROP_DB: "COM_DROP_DB is not relayed; use DROP DATABASE, which the guardrails check",
}


@dataclass(slots=True)
class StatementRecord:
    """One statement as the audit log records it (see :func:`sqlgate.access.statements.statement_fields`)."""

    sql: str
    params: tuple[str | None, ...] | None = None
    started: float = field(default_factory=time.perf_counter)
    rows: int | None = None
    sqlstate: str | None = None
    error: str | None = None
    outcome: str = "success"
    duration_ms: float = 0.0
    would_deny: str | None = None

    def finish(self, outcome: str | None = None) -> StatementRecord:
        """Stamp the duration (and outcome) once the server's answer is complete."""
        self.duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        if outcome is not None:
            self.outcome = outcome
        return self


@dataclass(slots=True)
class Prepared:
    """A statement the server prepared for this session."""

    sql: str
    params: int
    shape: Shape | None
    types: tuple[int, ...] = ()
    long_data: set[int] = field(default_factory=set)
    would_deny: str | None = None


@dataclass(slots=True)
class _Reply:
    """A reply the client is owed, in order: from the server (``kind``), or made by the gateway (``local``)."""

    kind: str  # "query", "execute", "prepare", "field_list", "one", "local"
    record: StatementRecord | None = None
    local: bytes = b""
    phase: str = "first"
    columns: list[ColumnDefinition] = field(default_factory=list)
    expected: int = 0
    seen: int = 0
    plan: Plan | None = None
    shapes: list[Shape] = field(default_factory=list)
    result: int = 0
    prepared: Prepared | None = None
    prepare_ok: PrepareOk | None = None
    shift: int = 0
    allow_infile: bool = False
    swallow: bytes = b""  # a refused LOCAL INFILE: what the client gets instead of the server's reply
    on_ok: Callable[[], None] | None = None


class Relay:
    """Both directions of one MySQL session's byte stream, with guardrails, masking and statement records."""

    def __init__(  # noqa: PLR0913 - the session wires each collaborator in by name
        self,
        *,
        capabilities: int,
        policy: StatementPolicy,
        send_server: Send,
        send_client: Send,
        on_statement: Callable[[StatementRecord], None],
        on_kill: Callable[[Kill], Err | None],
        masking: MysqlMasking | None = None,
        max_client_packet: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.deprecate_eof = bool(capabilities & Capability.DEPRECATE_EOF)
        self.policy = policy
        self.send_server = send_server
        self.send_client = send_client
        self.on_statement = on_statement
        self.on_kill = on_kill
        self.masking = masking
        self.client = PacketReader(max_size=max_client_packet, what="client")
        self.server = PacketReader(what="database server")
        self.pending: deque[_Reply] = deque()
        self.prepared: dict[int, Prepared] = {}
        self.infile_from_client = False
        self.terminated = False
        self.in_transaction = False
        self.statement_count = 0

    @property
    def idle(self) -> bool:
        """True when no reply is owed and no file is being sent."""
        return not self.pending and not self.infile_from_client

    # -- client to server -----------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        """Bytes from the client."""
        self.client.feed(data)
        for packet in self.client.packets():
            if self.terminated:
                return
            if self.infile_from_client:
                self.send_server(packet.raw)
                if not packet.payload:
                    self.infile_from_client = False
                continue
            if packet.seq != 0:
                raise ProtocolError(f"the client started a command with sequence id {packet.seq}, not 0")
            self._command(packet)

    def _command(self, packet: Packet) -> None:  # noqa: C901, PLR0912 - one branch per command
        command = decode_command(packet.payload)
        if isinstance(command, Query):
            self._query(packet, command.sql)
        elif isinstance(command, StmtPrepare):
            self._prepare(packet, command.sql)
        elif isinstance(command, StmtExecute):
            self._execute(packet, command)
        elif isinstance(command, StmtSendLongData):
            found = self.prepared.get(command.statement_id)
            if found is not None:
                found.long_data.add(command.param)
            self.send_server(packet.raw)  # no reply
        elif isinstance(command, StmtClose):
            self.prepared.pop(command.statement_id, None)
            self.send_server(packet.raw)  # no reply
        elif isinstance(command, StmtReset):
            found = self.prepared.get(command.statement_id)
            if found is not None:
                found.long_data.clear()
            self._forward(packet, _Reply("one"))
        elif isinstance(command, StmtFetch):
            self._refuse("server-side cursors are not relayed by sqlgate; fetch the whole result instead")
        elif isinstance(command, InitDb):
            self._init_db(packet, command.schema)
        elif isinstance(command, FieldList):
            self._forward(packet, _Reply("field_list", phase="columns"))
        elif isinstance(command, ProcessKill):
            self._kill(Kill(command.connection_id, query_only=False), f"KILL {command.connection_id}")
        elif isinstance(command, SetOption):
            self._forward(packet, _Reply("one"))
        elif isinstance(command, Simple):
            self._simple(packet, command.command)
        elif isinstance(command, OtherCommand):
            reason = _REFUSED_COMMANDS.get(
                command.command, f"command 0x{command.command:02x} is not relayed by sqlgate"
            )  # type: ignore[call-overload]
            self._refuse(reason)

    def _simple(self, packet: Packet, command: int) -> None:
        if command == Command.QUIT:
            self.terminated = True
            self.send_server(packet.raw)
            return
        reply = _Reply("one")
        if command == Command.RESET_CONNECTION:
            reply.on_ok = self.prepared.clear
        self._forward(packet, reply)

    def _query(self, packet: Packet, sql: str) -> None:
        checked = self.policy.check(sql)
        if checked.kill is not None:
            self._kill(checked.kill, sql)
            return
        record = StatementRecord(sql, would_deny=checked.verdict.would_deny)
        refusal = checked.verdict.refusal
        shapes: list[Shape] = []
        if refusal is None and self.masking is not None:
            analysis = self.masking.analyze(sql)
            refusal = analysis.refusal
            shapes = analysis.shapes
            if analysis.changes_catalog:
                self.masking.catalog_changed = True
        if refusal is not None:
            self._refuse(refusal, record)
            return
        self._forward(packet, _Reply("query", record, shapes=shapes, allow_infile=checked.local_infile))

    def _prepare(self, packet: Packet, sql: str) -> None:
        checked: Checked = self.policy.check(sql)
        refusal = checked.verdict.refusal
        if checked.kill is not None:
            refusal = "KILL cannot be prepared; send it as a plain statement"
        elif checked.local_infile:
            refusal = "LOAD DATA LOCAL INFILE cannot be prepared"
        shape = None
        if refusal is None and self.masking is not None:
            analysis = self.masking.analyze(sql)
            refusal = analysis.refusal
            shape = analysis.shapes[0] if len(analysis.shapes) == 1 else None
        if refusal is not None:
            self._refuse(refusal, StatementRecord(sql))
            return
        if len(self.prepared) >= MAX_PREPARED:
            self._refuse(f"more than {MAX_PREPARED} prepared statements in one session")
            return
        prepared = Prepared(sql, 0, shape, would_deny=checked.verdict.would_deny)
        self._forward(packet, _Reply("prepare", prepared=prepared))

    def _execute(self, packet: Packet, command: StmtExecute) -> None:
        prepared = self.prepared.get(command.statement_id)
        if prepared is None:
            self._refuse(f"statement {command.statement_id} was not prepared through this gateway")
            return
        if command.flags & 0x0F:
            self._refuse("server-side cursors are not relayed by sqlgate; execute without a cursor")
            return
        params = execute_params(command.params, prepared.params, prepared.types, frozenset(prepared.long_data))
        prepared.types = params.types
        prepared.long_data.clear()
        record = StatementRecord(prepared.sql, params=params.values, would_deny=prepared.would_deny)
        shapes = [prepared.shape] if prepared.shape is not None else []
        self._forward(packet, _Reply("execute", record, shapes=shapes, prepared=prepared))

    def _init_db(self, packet: Packet, schema: str) -> None:
        record = StatementRecord(f"USE `{schema}`")
        if schema != self.policy.database:
            self._refuse(self.policy.database_refusal(schema), record)
            return
        self._forward(packet, _Reply("one", record))

    def _kill(self, kill: Kill, sql: str) -> None:
        record = StatementRecord(sql)
        error = self.on_kill(kill)
        if error is not None:
            self._local(encode(error.encode(), 1))
            record.sqlstate, record.error = error.sqlstate, error.message
            self._record(record.finish("refused"))
            return
        self._local(encode(Ok().encode(), 1))
        self._record(record.finish("success"))

    def _forward(self, packet: Packet, reply: _Reply) -> None:
        self.pending.append(reply)
        self.send_server(packet.raw)

    def _refuse(self, reason: str, record: StatementRecord | None = None) -> None:
        message = self.policy.message(reason)
        self._local(encode(Err(REFUSED_CODE, REFUSED_SQLSTATE, message).encode(), 1))
        if record is not None:
            record.sqlstate, record.error = REFUSED_SQLSTATE, message
            self._record(record.finish("refused"))

    def _local(self, data: bytes) -> None:
        if self.pending:
            self.pending.append(_Reply("local", local=data))
        else:
            self.send_client(data)

    def _record(self, record: StatementRecord) -> None:
        self.statement_count += 1
        self.on_statement(record)

    def abandon(self, result: str, reason: str) -> None:
        """The session ended with replies still owed: each statement still running is recorded with ``result``.

        ``result`` is ``client_gone`` (the client left) or ``interrupted`` (the gateway, the
        grant or the server ended it), as on pgwire; ``reason`` says why.
        """
        pending, self.pending = self.pending, deque()
        for reply in pending:
            if reply.record is not None:
                reply.record.error = reason
                self._record(reply.record.finish(result))

    # -- server to client -----------------------------------------------------------

    def server_data(self, data: bytes) -> None:
        """Bytes from the server."""
        self.server.feed(data)
        out: list[bytes] = []
        for packet in self.server.packets():
            if not self.pending or self.pending[0].kind == "local":
                raise ProtocolError("the database server sent a packet no command asked for")
            self._reply_packet(self.pending[0], packet, out)
        if out:
            self.send_client(b"".join(out))

    def _reply_packet(self, reply: _Reply, packet: Packet, out: list[bytes]) -> None:  # noqa: C901, PLR0912
        payload = packet.payload
        phase = reply.phase
        if reply.swallow:
            if payload[:1] in (b"\x00", b"\xff"):
                out.append(reply.swallow)
                self._done(reply, out, outcome="refused")
            return
        if phase == "first":
            self._first(reply, packet, out)
        elif phase == "columns":
            self._forward_packet(reply, packet, out)
            if reply.kind == "field_list":
                if payload[:1] == bytes((ERR_HEADER,)) or is_terminator(payload):
                    self._done(reply, out)
                return
            reply.seen += 1
            if self.masking is not None:  # definitions are read only to plan masks
                reply.columns.append(ColumnDefinition.decode(payload))
            if reply.seen == reply.expected:
                reply.phase = "rows" if self.deprecate_eof else "columns-eof"
                self._plan(reply)
        elif phase == "columns-eof":
            self._forward_packet(reply, packet, out)
            reply.phase = "rows"
        elif phase == "rows":
            self._row(reply, packet, out)
        elif phase in {"params", "prepare-columns"}:
            self._forward_packet(reply, packet, out)

            reply.expected -= 1
            if reply.expected == 0:
                if self.deprecate_eof:
                    self._after_definitions(reply, phase, out)
                else:
                    reply.phase = f"{phase}-eof"
        elif phase in {"params-eof", "prepare-columns-eof"}:
            self._forward_packet(reply, packet, out)
            self._after_definitions(reply, phase.removesuffix("-eof"), out)
        else:
            raise ProtocolError(f"the database server sent a packet in an unexpected state ({phase})")

    def _first(self, reply: _Reply, packet: Packet, out: list[bytes]) -> None:
        payload = packet.payload
        first = packet.first
        if first == ERR_HEADER:
            self._forward_packet(reply, packet, out, err=True)
            self._done(reply, out, error=Err.decode(payload))
            return
        if reply.kind == "prepare":
            self._prepare_ok(reply, packet, out)
            return
        if first == OK_HEADER and reply.kind in {"one", "query", "execute"}:
            self._forward_packet(reply, packet, out)
            ok = Ok.decode(payload)
            self._track_status(ok.status)
            if reply.record is not None:
                reply.record.rows = (reply.record.rows or 0) + ok.affected_rows
            if reply.kind != "one" and ok.status & Status.MORE_RESULTS_EXISTS:
                reply.result += 1
                return
            if reply.on_ok is not None:
                reply.on_ok()
            self._done(reply, out)
            return
        if reply.kind == "one":  # COM_STATISTICS answers with a bare string
            self._forward_packet(reply, packet, out)
            self._done(reply, out)
            return
        if first == LOCAL_INFILE_HEADER and reply.kind == "query":
            self._infile(reply, packet, out)
            return
        reply.expected = column_count(payload)
        reply.columns = []
        reply.seen = 0
        reply.phase = "columns"
        self._forward_packet(reply, packet, out)

    def _infile(self, reply: _Reply, packet: Packet, out: list[bytes]) -> None:
        if reply.allow_infile:
            self._forward_packet(reply, packet, out)
            self.infile_from_client = True
            return
        self.send_server(encode(b"", packet.next_seq))  # an empty file: the server answers, the client never sees it
        message = self.policy.message("refused by guardrail: the server asked for a client file (LOCAL INFILE)")
        reply.swallow = encode(Err(REFUSED_CODE, REFUSED_SQLSTATE, message).encode(), 1)

    def _prepare_ok(self, reply: _Reply, packet: Packet, out: list[bytes]) -> None:
        ok = PrepareOk.decode(packet.payload)
        reply.prepare_ok = ok
        assert reply.prepared is not None
        reply.prepared.params = ok.params
        self._forward_packet(reply, packet, out)
        if ok.params:
            reply.phase, reply.expected = "params", ok.params
        elif ok.columns:
            reply.phase, reply.expected = "prepare-columns", ok.columns
        else:
            self._prepared(reply, out)

    def _after_definitions(self, reply: _Reply, phase: str, out: list[bytes]) -> None:
        """The parameter definitions are complete: the column definitions follow, if any; else the reply is."""
        ok = reply.prepare_ok
        assert ok is not None
        if phase == "params" and ok.columns:
            reply.phase, reply.expected = "prepare-columns", ok.columns
            return
        self._prepared(reply, out)

    def _prepared(self, reply: _Reply, out: list[bytes]) -> None:
        assert reply.prepare_ok is not None
        assert reply.prepared is not None
        self.prepared[reply.prepare_ok.statement_id] = reply.prepared
        self._done(reply, out)

    def _row(self, reply: _Reply, packet: Packet, out: list[bytes]) -> None:
        payload = packet.payload
        first = packet.first
        if first == ERR_HEADER:
            self._forward_packet(reply, packet, out, err=True)
            self._done(reply, out, error=Err.decode(payload))
            return
        if is_terminator(payload):
            self._forward_packet(reply, packet, out)
            status = terminator_status(payload)
            self._track_status(status)
            if status & Status.MORE_RESULTS_EXISTS:
                reply.phase = "first"
                reply.result += 1
                return
            self._done(reply, out)
            return
        if reply.record is not None:
            reply.record.rows = (reply.record.rows or 0) + 1
        plan = reply.plan
        if not plan:
            self._forward_packet(reply, packet, out)
            return
        self._forward_payload(reply, packet, self._masked_row(reply, payload, plan), out)

    def _masked_row(self, reply: _Reply, payload: bytes, plan: Plan) -> bytes:
        binary = reply.kind == "execute"
        types = [column.type for column in reply.columns]
        values = binary_row(payload, types) if binary else text_row(payload, len(types))
        for index, mask in plan.items():
            value = values[index]
            if value is None:
                continue
            if mask.function is not None:
                result = mask.function(value.decode("utf-8", "replace"))
                values[index] = None if result is None else result.encode()
            else:
                values[index] = None if mask.replacement is None else mask.replacement.encode()
        return encode_binary_row(values, types) if binary else encode_text_row(values)

    def _plan(self, reply: _Reply) -> None:
        if self.masking is None:
            reply.plan = None
            return
        shape = reply.shapes[reply.result] if reply.result < len(reply.shapes) else None
        reply.plan = self.masking.plan(shape, reply.columns)

    def _track_status(self, status: int) -> None:
        self.in_transaction = bool(status & Status.IN_TRANS)

    def _forward_packet(self, reply: _Reply, packet: Packet, out: list[bytes], *, err: bool = False) -> None:
        if err and self.masking is not None and self.masking.rules:
            error = Err.decode(packet.payload)
            scrubbed = Err(error.code, error.sqlstate, scrub_text(error.sqlstate, error.message))
            self._forward_payload(reply, packet, scrubbed.encode(), out)
            return
        if reply.shift:
            out.append(encode(packet.payload, packet.seq + reply.shift))
        else:
            out.append(packet.raw)

    def _forward_payload(self, reply: _Reply, packet: Packet, payload: bytes, out: list[bytes]) -> None:
        out.append(encode(payload, packet.seq + reply.shift))
        reply.shift += chunks_needed(len(payload)) - chunks_needed(len(packet.payload))

    def _done(self, reply: _Reply, out: list[bytes], *, error: Err | None = None, outcome: str | None = None) -> None:
        self.pending.popleft()
        record = reply.record
        if record is not None:
            if error is not None:
                message = error.message
                if self.masking is not None and self.masking.rules:
                    message = scrub_text(error.sqlstate, message)
                record.sqlstate, record.error = error.sqlstate, f"{message} (error {error.code})"
            self._record(record.finish(outcome or ("error" if error is not None else "success")))
        while self.pending and self.pending[0].kind == "local":
            out.append(self.pending.popleft().local)
