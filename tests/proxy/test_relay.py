"""Relay without sockets: guardrail verdicts, statement records and command tags."""

from __future__ import annotations

import pytest

from sqlgate.access.masking import MaskingEngine, MaskRules, SessionMasking
from sqlgate.errors import ProtocolError
from sqlgate.pgwire.backend import ReadyForQuery
from sqlgate.pgwire.frontend import Bind, Describe, Execute, Flush, Parse, Query, Sync
from sqlgate.pgwire.results import (
    BindComplete,
    CommandComplete,
    DataRow,
    FieldDescription,
    ParseComplete,
    RowDescription,
)
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql.catalog_model import CatalogModel
from sqlgate.proxy.relay import Relay, StatementRecord


class Wire:
    """Both sides of a relay, as lists of the bytes sent."""

    def __init__(self, guardrails: Guardrails | None) -> None:
        self.to_server: list[bytes] = []
        self.to_client: list[bytes] = []
        self.records: list[StatementRecord] = []
        self.relay = Relay(
            guardrails=guardrails,
            send_server=self.to_server.append,
            send_client=self.to_client.append,
            on_statement=self.records.append,
        )

    def query(self, sql: str) -> bool:
        """Send ``sql``; True when it reached the server (and the server answered), False when refused."""
        sent = len(self.to_server)
        self.relay.client_data(Query(sql).encode())
        if len(self.to_server) == sent:
            return False
        self.relay.server_data(CommandComplete("SELECT 1").encode() + ReadyForQuery("I").encode())
        return True


def test_refusals_hold_for_every_text_of_a_shape():
    """Verdicts are remembered per classification; a remembered refusal still refuses, with 42501."""
    wire = Wire(Guardrails(deny=["write"]))
    assert not wire.query("DELETE FROM t WHERE id = 1")
    assert not wire.query("DELETE FROM t WHERE id = 2")
    assert wire.query("SELECT * FROM t WHERE id = 3")
    assert [record.outcome for record in wire.records] == ["refused", "refused", "success"]
    assert all(b"42501" in reply for reply in wire.to_client[:2])


def test_execute_is_judged_against_what_is_prepared_now():
    """EXECUTE's verdict depends on the session's prepared statements, so it is never remembered."""
    wire = Wire(Guardrails(deny=["write"]))
    assert not wire.query("EXECUTE q")  # nothing prepared under that name: it cannot be checked
    assert wire.query("PREPARE q AS SELECT 1")
    assert wire.query("EXECUTE q")


def test_command_tags_count_rows():
    wire = Wire(None)
    wire.relay.client_data(Query("SELECT 1; INSERT INTO t VALUES (1)").encode())
    wire.relay.server_data(
        CommandComplete("SELECT 3").encode() + CommandComplete("INSERT 0 2").encode() + ReadyForQuery("I").encode()
    )
    assert wire.records[0].tags == ["SELECT 3", "INSERT 0 2"]
    assert wire.records[0].rows == 5


def test_statements_are_recorded_after_the_answer_is_sent():
    """The audit record is made once the server's answer is on its way to the client, not before."""
    wire = Wire(None)
    seen_when_recorded = []
    wire.relay.on_statement = lambda _record: seen_when_recorded.append(len(wire.to_client))
    assert wire.query("SELECT 1")
    assert seen_when_recorded == [1]


def test_a_malformed_answer_still_records_the_statements_it_completed():
    wire = Wire(None)
    wire.relay.client_data(Query("SELECT 1").encode() + Query("SELECT 2").encode())
    done = CommandComplete("SELECT 1").encode() + ReadyForQuery("I").encode()
    broken_error = b"E\x00\x00\x00\x05S"  # an ErrorResponse whose field has no terminator
    with pytest.raises(ProtocolError):
        wire.relay.server_data(done + broken_error)
    assert [record.tags for record in wire.records] == [["SELECT 1"]]


def test_a_refused_parse_is_answered_at_once_when_nothing_is_owed():
    """Asyncpg sends Parse, Describe, Flush and waits: the refusal must not wait for a Sync."""
    wire = Wire(Guardrails(deny=["write"]))
    wire.relay.client_data(Parse("", "DELETE FROM t").encode() + Describe("S", "").encode() + Flush().encode())
    assert wire.to_server == []
    assert len(wire.to_client) == 1
    assert b"42501" in wire.to_client[0]
    assert not wire.to_client[0].endswith(ReadyForQuery("I").encode())  # no ReadyForQuery before the Sync
    wire.relay.client_data(Sync().encode())
    assert wire.to_client[-1] == ReadyForQuery("I").encode()
    assert wire.to_server == []


def test_a_refused_parse_after_forwarded_work_waits_for_the_servers_answers():
    """Later in a pipeline the error keeps its place: before the ReadyForQuery that ends the batch."""
    wire = Wire(Guardrails(deny=["write"]))
    wire.relay.client_data(
        Parse("", "SELECT 1").encode()
        + Bind("", "").encode()
        + Execute("").encode()
        + Parse("", "DELETE FROM t").encode()
        + Sync().encode()
    )
    assert wire.to_client == []
    wire.relay.server_data(CommandComplete("SELECT 1").encode() + ReadyForQuery("I").encode())
    reply = b"".join(wire.to_client)
    assert reply.index(b"42501") < reply.index(ReadyForQuery("I").encode())


def _masking_wire() -> Wire:
    catalog = CatalogModel.build(
        [(1, "public", "customers", "r", 1, "id"), (1, "public", "customers", "r", 2, "email")], {}, []
    )
    rules = MaskRules({"customers.email": "email"}, hash_key=b"k")
    wire = Wire(None)
    wire.relay.masking = SessionMasking(MaskingEngine(rules, catalog))
    return wire


def _answer_with_rows(wire: Wire, *, describe: bool) -> None:
    fields = (FieldDescription("id", type_oid=23), FieldDescription("email"))
    rows = DataRow((b"7", b"zed@example.com")).encode()
    described = RowDescription(fields).encode() if describe else b""
    wire.relay.server_data(
        ParseComplete().encode()
        + BindComplete().encode()
        + described
        + rows
        + CommandComplete("SELECT 1").encode()
        + ReadyForQuery("I").encode()
    )


def test_an_execute_without_describe_gets_the_gateways_own_describe_and_masked_rows():
    """Parse/Bind/Execute/Sync with no Describe (pgjdbc's way for a known statement): rows are still masked."""
    wire = _masking_wire()
    wire.relay.client_data(
        Parse("", "SELECT id, email FROM customers").encode()
        + Bind("", "").encode()
        + Execute("").encode()
        + Sync().encode()
    )
    sent = b"".join(wire.to_server)
    assert sent.index(Describe("P", "").encode()) < sent.index(Execute("").encode())
    _answer_with_rows(wire, describe=True)
    reply = b"".join(wire.to_client)
    assert b"zed@example.com" not in reply
    assert b"z***@example.com" in reply
    assert RowDescription.TYPE not in reply[: reply.index(b"D")]  # the gateway's own RowDescription is not passed on


def test_rows_whose_shape_is_unknown_are_all_null():
    """A DataRow with no plan at all (nothing described it) is sent with every column NULL."""
    wire = _masking_wire()
    wire.relay.client_data(Parse("", "SELECT id, email FROM customers").encode() + Describe("S", "").encode())
    wire.relay.client_data(Bind("", "").encode() + Execute("").encode() + Sync().encode())
    _answer_with_rows(wire, describe=False)  # the server "forgot" the RowDescription
    reply = b"".join(wire.to_client)
    assert b"zed" not in reply
    assert DataRow((None, None)).encode() in reply
