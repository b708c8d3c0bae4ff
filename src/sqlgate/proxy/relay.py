"""The relay of one session: client and server bytes in, checked and masked bytes out. No sockets.

Client to server: every Query and Parse is classified and checked against the
grant's guardrails before it is forwarded. A refused simple Query gets
ErrorResponse 42501 and ReadyForQuery; a refused Parse puts the session into the
extended protocol's error state, where everything up to Sync is dropped, as
PostgreSQL itself does after an error. Replies the gateway makes itself are queued
behind the server replies still owed to the client, so their order is kept.

Server to client: messages are split without decoding except CommandComplete,
ErrorResponse and ReadyForQuery (to close statement records for the audit log) and,
when masking applies, RowDescription and DataRow. Unmodified batches are forwarded
as the very bytes that arrived.

Known difference from PostgreSQL: statements of an extended-protocol batch that
ran before a refused Parse are ended by the Sync the client sends (committed if
they were in an implicit transaction), where PostgreSQL would roll them back.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlgate.access.masking import (
    TEXT_LIKE_TYPE_OIDS,
    UNKNOWN_OUTPUTS,
    Outputs,
    Plan,
    SessionMasking,
    mask_data_row,
)
from sqlgate.access.scrub import scrub_fields
from sqlgate.access.statements import HINT as _HINT
from sqlgate.access.statements import (
    MAX_PARAM_CHARS,
    MAX_PARAMS_AUDITED,
    Verdict,
    audited_sql,
    bound_refusal,
    guardrail_verdict,
    has_bound_settings,
)
from sqlgate.pgwire.backend import CommandComplete, RowDescription
from sqlgate.pgwire.framing import Framer
from sqlgate.pgwire.frontend import Bind, Close, Describe, Execute, Parse, Query
from sqlgate.pgwire.notices import ErrorResponse, NoticeResponse, error_response
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql import Classification, PreparedRegistry, classify

_VERDICTS_KEPT = 512  # guardrail verdicts remembered per session (a verdict depends only on the classification)

_Q, _P, _B, _E, _S, _C, _X, _F, _D, _H = (ord(c) for c in "QPBESCXFDH")
_SERVER_COMPLETE, _SERVER_ERROR, _SERVER_READY = ord("C"), ord("E"), ord("Z")
_SERVER_EMPTY, _SERVER_SUSPENDED, _SERVER_ROWDESC, _SERVER_NODATA = ord("I"), ord("s"), ord("T"), ord("n")
_SERVER_DATAROW, _SERVER_PARSED, _SERVER_BOUND = ord("D"), ord("1"), ord("2")
_SERVER_NOTICE = ord("N")
_NO_PLAN: Plan = {}

Send = Callable[[bytes], None]


@dataclass(slots=True)
class StatementRecord:
    """One statement as the audit log records it."""

    protocol: str
    sql: str
    params: tuple[str | None, ...] | None = None
    started: float = field(default_factory=time.perf_counter)
    rows: int | None = None
    tags: list[str] = field(default_factory=list)
    sqlstate: str | None = None
    error: str | None = None
    outcome: str = "success"
    duration_ms: float = 0.0
    would_deny: str | None = None  # guardrails in mode audit: why they would have refused it

    def finish(self, outcome: str | None = None) -> StatementRecord:
        """Stamp the duration (and outcome) once the server's answer is complete."""
        self.duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        if outcome is not None:
            self.outcome = outcome
        return self


@dataclass(slots=True)
class _Entry:
    """Something the server still owes the client an answer to, in order."""

    kind: str  # "query", "execute", "describe", "own-describe", "parse", "bind", "sync", "local"
    record: StatementRecord | None = None
    payload: bytes = b""  # local: the ErrorResponse to send; sync: an error to put before its ReadyForQuery
    plan: Plan | None = None
    outputs: list[Outputs] | None = None  # query: each statement's outputs, for masking
    completed: int = 0  # query: statements the server has completed so far
    describe: tuple[str, str] | None = None  # describe: (S|P, name); parse: (S, name); bind and execute: (P, portal)
    statement: str = ""  # bind: the statement the portal is made from


class Relay:
    """Both directions of one session's byte stream, with guardrails, masking and statement records."""

    def __init__(  # noqa: PLR0913 - the session wires each collaborator in by name
        self,
        *,
        guardrails: Guardrails | None,
        send_server: Send,
        send_client: Send,
        on_statement: Callable[[StatementRecord], None],
        masking: SessionMasking | None = None,
        classifier: Callable[[str], Classification] = classify,
    ) -> None:
        self.guardrails = guardrails
        self.send_server = send_server
        self.send_client = send_client
        self.on_statement = on_statement
        self.masking = masking
        self.classify = classifier
        self.prepared = PreparedRegistry()
        self.client_framer = Framer("frontend")
        self.server_framer = Framer("backend")
        self.transaction_status = "I"
        self.pending: deque[_Entry] = deque()
        self.statements: dict[str, str] = {}
        self.portals: dict[str, tuple[str, str, tuple[str | None, ...]]] = {}
        self.statement_plans: dict[str, Plan] = {}
        self.portal_plans: dict[str, Plan] = {}
        self.bound: dict[str, str] = {}  # portal -> statement, in server order
        self.query_plan: Plan | None = None
        self.statement_outputs: dict[str, Outputs] = {}  # masking: what each prepared statement returns
        self.portal_outputs: dict[str, Outputs] = {}
        self.described: set[tuple[str, str]] = set()  # masking: (S|P, name) the client asked to describe
        self.refusing: bytes | None = None
        self.forwarded_since_sync = False
        self.terminated = False
        self.statement_count = 0
        self._verdicts: dict[tuple[int, bool], tuple[Classification, Verdict]] = {}
        self.bound_checks: dict[str, Classification] = {}  # statement -> set_config($n) to check at each Bind
        self.would_deny: dict[str, str] = {}  # statement -> what audit-mode guardrails would refuse
        self._plans: dict[tuple[int, bytes], tuple[Outputs, Plan]] = {}  # masking plans by (outputs, description)
        self._finished: list[StatementRecord] = []  # completed by this batch of server bytes, not yet recorded
        self.rows_seen = 0  # DataRows since the server last completed something (the head statement's rows so far)
        self.ready_seen = 0  # ReadyForQuery messages from the server so far
        self.client_gone = False  # the client left: answers are read to the end, recorded, and not sent

    @property
    def owes_statements(self) -> bool:
        """True while the server still owes the end of a statement or a ReadyForQuery."""
        return any(entry.record is not None or entry.kind == "sync" for entry in self.pending)

    @property
    def owes_ready(self) -> bool:
        """True while the server still owes a ReadyForQuery (to a Query or a Sync)."""
        return any(entry.kind in ("query", "sync") for entry in self.pending)

    @property
    def mid_message(self) -> bool:
        """True while part of a client message has gone to the server and the rest has not (streamed COPY data)."""
        return self.client_framer.streaming

    def leave(self) -> None:
        """The client left: read the server's answers to the end and record them as ``client_gone``."""
        self.client_gone = True
        self.send_client = _discard

    def abandon(self, result: str) -> None:
        """The session ends before the server answered: record every statement still owed with what is known.

        ``result``: ``client_gone`` (the client left) or ``interrupted`` (the gateway or the server ended it).
        """
        self.client_gone = False
        rows, self.rows_seen = self.rows_seen, 0
        while self.pending:
            entry = self.pending.popleft()
            if entry.record is not None:
                if entry.record.rows is None and rows:
                    entry.record.rows, rows = rows, 0
                self._finish(entry, result)
        finished, self._finished = self._finished, []
        for record in finished:
            self.on_statement(record)

    @property
    def idle(self) -> bool:
        """True when the server owes nothing and the session is outside a transaction."""
        return not self.pending and self.transaction_status == "I" and not self.client_framer.buffered

    # -- client -> server ------------------------------------------------------

    def client_data(self, data: bytes) -> None:  # noqa: C901, PLR0912 - the hot loop keeps its branches inline
        """Bytes from the client: check, forward, or answer locally."""
        batch = self.client_framer.split(data)
        if not batch:
            return
        buf = batch.data
        start = 0
        for kind, begin, end in batch.index:
            if self.refusing is not None and kind != _S:
                forward = False
            elif kind in (_Q, _P, _B, _E, _S, _C, _X, _F, _D):
                try:
                    forward = self._client_message(kind, memoryview(buf)[begin + 5 : end])
                except Exception:
                    if begin > start:  # what came before the bad message goes on, as PostgreSQL would run it
                        self.send_server(buf[start:begin])
                    raise
            else:
                forward = True
            if kind == _E and forward and self.masking is not None and (portal := self._undescribed()) is not None:
                self.send_server(buf[start:begin] + Describe("P", portal).encode())
                own = _Entry("own-describe", describe=("P", portal), outputs=self._outputs_of(("P", portal)))
                self.pending.insert(len(self.pending) - 1, own)
                start = begin
            if not forward:
                if begin > start:
                    self.send_server(buf[start:begin])
                start = end
            if self.terminated:
                return
        if start == 0:
            self.send_server(buf)
        elif start < len(buf):
            self.send_server(buf[start:])

    def _client_message(self, kind: int, payload: memoryview) -> bool:  # noqa: PLR0911 - one branch per message
        if kind == _Q:
            return self._query(Query.decode(payload).sql)
        if kind == _P:
            return self._parse(Parse.decode(payload))
        if kind == _B:
            return self._bind(Bind.decode(payload))
        if kind == _E:
            self._execute(Execute.decode(payload))
        elif kind == _S:
            return self._sync()
        elif kind == _D:
            describe = Describe.decode(payload)
            target = (describe.target, describe.name)
            self.pending.append(_Entry("describe", describe=target, outputs=self._outputs_of(target)))
            self.described.add(target)
        elif kind == _C:
            self._close(Close.decode(payload))
        elif kind == _X:
            self.terminated = True
            return False
        elif kind == _F:
            self._refuse_locally("function calls by OID (the fastpath interface) are not available through sqlgate")
            return False
        self.forwarded_since_sync = True
        return True

    def _query(self, sql: str) -> bool:
        classification = self.classify(sql)
        verdict = self._verdict(classification, defer_bound=False)
        refusal = _refusal_bytes(verdict)
        outputs = None
        if refusal is None and self.masking is not None:
            refusal, outputs = self._masking_refusal(sql)
        record = StatementRecord("simple", audited_sql(sql), would_deny=verdict.would_deny)
        if refusal is not None:
            self._refused(record, refusal)
            self._queue_local(refusal)
            return False
        self.prepared.observe(classification)
        self.query_plan = None
        self.pending.append(_Entry("query", record, outputs=outputs))
        return True

    def _masking_refusal(self, sql: str) -> tuple[bytes | None, list[Outputs] | None]:
        """Masking's verdict on ``sql``: an error to answer with, or each statement's outputs."""
        assert self.masking is not None
        reason, outputs = self.masking.statements(sql)
        if reason is None:
            return None, outputs
        message = f"refused while masking rules apply: {reason}"
        return error_response("42501", message, hint=_MASK_HINT).encode(), None

    def _parse(self, message: Parse) -> bool:
        classification = self.classify(message.sql)
        verdict = self._verdict(classification, defer_bound=True)
        refusal = _refusal_bytes(verdict)
        outputs = None
        if refusal is None and self.masking is not None:
            refusal, outputs = self._masking_refusal(message.sql)
        if refusal is not None:
            self._refused(StatementRecord("extended", audited_sql(message.sql)), refusal)
            self._enter_error(refusal)
            return False
        self.statements[message.name] = message.sql
        _remember(self.would_deny, message.name, verdict.would_deny)
        _remember(self.bound_checks, message.name, classification if has_bound_settings(classification) else None)
        if self.masking is not None:
            self.statement_outputs[message.name] = outputs[0] if outputs and len(outputs) == 1 else UNKNOWN_OUTPUTS
            self.described.discard(("S", message.name))
            self.pending.append(_Entry("parse", describe=("S", message.name)))
        if message.name:
            self.prepared.register(message.name, classification)
        self.forwarded_since_sync = True
        return True

    def _enter_error(self, refusal: bytes) -> None:
        """Refuse until Sync; the error goes out at once when nothing is owed before it (a client may Flush)."""
        self.refusing = refusal
        if not self.pending and not self.forwarded_since_sync:
            self.send_client(refusal)
            self.refusing = b""

    def _bind(self, message: Bind) -> bool:
        sql = self.statements.get(message.statement, "")
        bound = self.bound_checks.get(message.statement)
        if bound is not None:
            reason = bound_refusal(bound, _bind_texts(message))
            if reason is not None:
                refusal = error_response("42501", reason, hint=_HINT).encode()
                self._refused(StatementRecord("extended", audited_sql(sql), _audit_params(message)), refusal)
                self._enter_error(refusal)
                return False
        self.portals[message.portal] = (message.statement, sql, _audit_params(message))
        if self.masking is not None:
            self.portal_outputs[message.portal] = self.statement_outputs.get(message.statement, UNKNOWN_OUTPUTS)
            self.described.discard(("P", message.portal))
            if ("S", message.statement) in self.described:
                self.described.add(("P", message.portal))
            self.pending.append(_Entry("bind", describe=("P", message.portal), statement=message.statement))
        self.forwarded_since_sync = True
        return True

    def _execute(self, message: Execute) -> None:
        statement, sql, params = self.portals.get(message.portal, ("", "", ()))
        record = StatementRecord("extended", audited_sql(sql), params, would_deny=self.would_deny.get(statement))
        self.pending.append(_Entry("execute", record, describe=("P", message.portal)))

    def _undescribed(self) -> str | None:
        """The portal of the Execute just queued, when nobody asked the server for its result shape yet."""
        entry = self.pending[-1] if self.pending else None
        if entry is None or entry.kind != "execute" or entry.describe is None:
            return None
        return None if ("P", entry.describe[1]) in self.described else entry.describe[1]

    def _outputs_of(self, target: tuple[str, str]) -> list[Outputs] | None:
        """Masking: the outputs of a statement or portal as the client has defined it so far."""
        if self.masking is None:
            return None
        kind, name = target
        return [(self.statement_outputs if kind == "S" else self.portal_outputs).get(name, UNKNOWN_OUTPUTS)]

    def _close(self, message: Close) -> None:
        if message.target == "S":
            self.statements.pop(message.name, None)
            self.bound_checks.pop(message.name, None)
            self.would_deny.pop(message.name, None)
            if message.name:
                self.prepared.forget(message.name)
        else:
            self.portals.pop(message.name, None)

    def _sync(self) -> bool:
        error, self.refusing = self.refusing, None
        forwarded, self.forwarded_since_sync = self.forwarded_since_sync, False
        if error is None:
            self.pending.append(_Entry("sync"))
            return True
        if forwarded:
            self.pending.append(_Entry("sync", payload=error))
            return True
        self._queue_local(error)
        return False

    def _verdict(self, classification: Classification, *, defer_bound: bool) -> Verdict:
        """The guardrails' verdict on ``classification``; remembered per classification (shared by shape)."""
        key = (id(classification), defer_bound)
        known = self._verdicts.get(key)
        if known is not None and known[0] is classification:
            return known[1]
        verdict = guardrail_verdict(self.guardrails, classification, prepared=self.prepared, defer_bound=defer_bound)
        if not any(s.executes or s.prepares or s.deallocates for s in classification.statements):
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            self._verdicts[key] = (classification, verdict)  # the reference keeps the id unique
        return verdict

    def _refused(self, record: StatementRecord, error: bytes) -> None:
        record.sqlstate = "42501"
        record.error = ErrorResponse.decode(memoryview(error)[5:]).message
        self.on_statement(record.finish("refused"))

    def _refuse_locally(self, message: str) -> None:
        error = error_response("42501", message).encode()
        self._refused(StatementRecord("function-call", ""), error)
        self._queue_local(error)

    def _queue_local(self, error: bytes) -> None:
        if self.pending:
            self.pending.append(_Entry("local", payload=error))
        else:
            self.send_client(error + _ready(self.transaction_status))

    # -- server -> client ------------------------------------------------------

    def server_data(self, data: bytes) -> None:
        """Bytes from the server: close statement records, mask rows, add queued local replies.

        Statements these bytes complete are recorded after the bytes are on their way to the
        client (also when the bytes turn out malformed), so the audit is off the round trip.
        """
        try:
            self._server_data(data)
        finally:
            if self._finished:
                finished, self._finished = self._finished, []
                for record in finished:
                    self.on_statement(record)

    def _server_data(self, data: bytes) -> None:  # noqa: C901, PLR0912 - the hot loop keeps its branches inline
        batch = self.server_framer.split(data)
        if not batch:
            return
        buf = batch.data
        out: list[bytes] | None = None
        last = 0
        masking = self.masking
        rows = 0
        for kind, begin, end in batch.index:
            replacement: bytes | None = None
            if kind == _SERVER_DATAROW:
                rows += 1
                if masking is None:
                    continue
                plan = self._current_plan()
                if plan is _NO_PLAN:
                    continue
                replacement = mask_data_row(memoryview(buf)[begin + 5 : end], plan)
            elif kind == _SERVER_READY:
                self.ready_seen += 1
                self.transaction_status = chr(buf[begin + 5])
                if masking is not None and self.transaction_status == "I":
                    masking.transaction_ended()
                before, after = self._ready()
                if before or after:
                    replacement = before + bytes(buf[begin:end]) + after
            elif kind in (_SERVER_COMPLETE, _SERVER_ERROR, _SERVER_EMPTY, _SERVER_SUSPENDED):
                rows = self.rows_seen = 0
                if kind == _SERVER_ERROR and masking is not None:
                    replacement = _scrubbed(ErrorResponse, memoryview(buf)[begin + 5 : end])
                    self._answer(kind, memoryview(replacement)[5:])
                else:
                    self._answer(kind, memoryview(buf)[begin + 5 : end])
            elif kind in (_SERVER_ROWDESC, _SERVER_NODATA):
                if self._row_description(kind, memoryview(buf)[begin + 5 : end]):
                    replacement = b""
            elif kind == _SERVER_NOTICE and masking is not None:
                replacement = _scrubbed(NoticeResponse, memoryview(buf)[begin + 5 : end])
            elif kind in (_SERVER_PARSED, _SERVER_BOUND) and masking is not None:
                self._parsed_or_bound()
            if replacement is not None:
                out = [] if out is None else out
                out += [buf[last:begin], replacement]
                last = end
        self.rows_seen += rows
        if out is None:
            self.send_client(buf)
        else:
            out.append(buf[last:])
            self.send_client(b"".join(out))

    def _current_plan(self) -> Plan | None:
        """The plan for a DataRow now (None: mask every column), resolved in server order."""
        if not self.pending:
            return None
        head = self.pending[0]
        if head.kind == "query":
            return self.query_plan
        if head.kind != "execute":
            return None
        if head.plan is None and head.describe is not None:
            portal = head.describe[1]
            head.plan = self.portal_plans.get(portal)
            if head.plan is None:
                head.plan = self.statement_plans.get(self.bound.get(portal, ""))
        return head.plan

    def _parsed_or_bound(self) -> None:
        """ParseComplete or BindComplete: the statement or portal now exists; plans made for an older one go."""
        if not self.pending or self.pending[0].kind not in ("parse", "bind"):
            return
        entry = self.pending.popleft()
        assert entry.describe is not None
        name = entry.describe[1]
        if entry.kind == "parse":
            self.statement_plans.pop(name, None)
        else:
            self.portal_plans.pop(name, None)
            self.bound[name] = entry.statement

    def _row_description(self, kind: int, payload: memoryview) -> bool:
        """RowDescription or NoData: make the masking plan it implies; True when the message is the gateway's own."""
        head = self.pending[0] if self.pending else None
        own = head is not None and head.kind == "own-describe"
        if head is not None and head.kind in ("describe", "own-describe"):
            self.pending.popleft()
        if self.masking is None or kind == _SERVER_NODATA or head is None:
            return own
        if head.kind in ("describe", "own-describe") and head.describe is not None:
            target, name = head.describe
            outputs = head.outputs[0] if head.outputs else UNKNOWN_OUTPUTS
            plans = self.statement_plans if target == "S" else self.portal_plans
            plans[name] = self._plan(outputs, payload)
        elif head.kind == "query":
            statements = head.outputs or []
            outputs = statements[head.completed] if head.completed < len(statements) else UNKNOWN_OUTPUTS
            self.query_plan = self._plan(outputs, payload)
        return own

    def _plan(self, outputs: Outputs, description: memoryview) -> Plan:
        """The plan for rows of ``outputs`` described by these RowDescription bytes (remembered per pair)."""
        assert self.masking is not None
        key = (id(outputs), bytes(description))
        known = self._plans.get(key)
        if known is not None and known[0] is outputs:
            return known[1]
        fields = RowDescription.decode(description).fields
        plan = self.masking.plan(outputs, [(f.name, f.type_oid in TEXT_LIKE_TYPE_OIDS) for f in fields]) or _NO_PLAN
        if len(self._plans) >= _VERDICTS_KEPT:
            self._plans.clear()
        self._plans[key] = (outputs, plan)  # the reference keeps the id unique
        return plan

    def _answer(self, kind: int, payload: memoryview) -> None:
        head = self.pending[0] if self.pending else None
        if head is None or head.record is None:
            if kind == _SERVER_ERROR:
                self._skip_to_sync(ErrorResponse.decode(payload))
            return
        record = head.record
        if kind == _SERVER_COMPLETE:
            head.completed += 1
            tag = CommandComplete.decode(payload)
            record.tags.append(tag.tag)
            if tag.rows is not None:
                record.rows = (record.rows or 0) + tag.rows
        elif kind == _SERVER_ERROR:
            error = ErrorResponse.decode(payload)
            record.sqlstate, record.error, record.outcome = error.sqlstate, error.message, "error"
            if head.kind == "execute":
                self._finish(self.pending.popleft())
                self._skip_to_sync(None)
            return
        elif kind == _SERVER_SUSPENDED:
            record.outcome = "suspended"
        if head.kind == "execute":
            self._finish(self.pending.popleft())

    def _skip_to_sync(self, error: ErrorResponse | None) -> None:
        """After an error in the extended protocol the server skips everything up to Sync."""
        while self.pending and self.pending[0].kind not in ("sync", "query", "local"):
            entry = self.pending.popleft()
            if entry.record is not None:
                if error is not None:
                    entry.record.sqlstate, entry.record.error = error.sqlstate, error.message
                    self._finish(entry, "error")
                    error = None
                else:
                    self._finish(entry, "skipped")

    def _ready(self) -> tuple[bytes, bytes]:
        """The server's ReadyForQuery arrived: close what it ends; return bytes to put before and after it."""
        before = b""
        while self.pending:
            entry = self.pending.popleft()
            if entry.kind == "query":
                self._finish(entry)
                break
            if entry.kind == "sync":
                before = entry.payload
                break
            if entry.record is not None:
                self._finish(entry, "skipped")
        after = []
        while self.pending and self.pending[0].kind == "local":
            after.append(self.pending.popleft().payload + _ready(self.transaction_status))
        return before, b"".join(after)

    def _finish(self, entry: _Entry, outcome: str | None = None) -> None:
        assert entry.record is not None
        self.statement_count += 1
        if self.client_gone and entry.record.outcome != "refused":
            outcome = "client_gone"  # what the server said stays in sqlstate, error and tags
        self._finished.append(entry.record.finish(outcome))


def _discard(data: bytes) -> None:
    """Where the server's answers go once the client has left."""
    del data


def _refusal_bytes(verdict: Verdict) -> bytes | None:
    if verdict.refusal is None:
        return None
    return error_response("42501", verdict.refusal, hint=_HINT).encode()


def _remember(table: dict[str, Any], name: str, value: Any) -> None:
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value


def _bind_texts(message: Bind) -> list[str | None]:
    """Bind's parameter values as text (a setting name is text in either format)."""
    return [None if value is None else bytes(value).decode("utf-8", "replace") for value in message.params]


def _ready(status: str) -> bytes:
    return b"Z\x00\x00\x00\x05" + status.encode()


_MASK_HINT = "this grant masks data; select the columns themselves, whose values are masked"


def _scrubbed(kind: type[ErrorResponse], payload: memoryview) -> bytes:
    """An ErrorResponse or NoticeResponse with values taken out (see :mod:`sqlgate.access.scrub`)."""
    return kind(scrub_fields(kind.decode(payload).fields)).encode()


def _audit_params(message: Bind) -> tuple[str | None, ...]:
    values: list[str | None] = []
    for position, value in enumerate(message.params[:MAX_PARAMS_AUDITED]):
        if value is None:
            values.append(None)
        elif message.param_format(position):
            values.append(f"<binary, {len(value)} bytes>")
        else:
            text = value[:MAX_PARAM_CHARS].decode("utf-8", "replace")
            values.append(text + ("…" if len(value) > MAX_PARAM_CHARS else ""))
    if len(message.params) > MAX_PARAMS_AUDITED:
        values.append(f"<{len(message.params) - MAX_PARAMS_AUDITED} more>")
    return tuple(values)
