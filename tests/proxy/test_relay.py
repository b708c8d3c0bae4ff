"""Relay without sockets: guardrail verdicts, statement records and command tags."""

from __future__ import annotations

import pytest

from sqlgate.errors import ProtocolError
from sqlgate.pgwire.backend import ReadyForQuery
from sqlgate.pgwire.frontend import Query
from sqlgate.pgwire.results import CommandComplete
from sqlgate.policy.model import Guardrails
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
