"""Hypothesis fuzzing of the relay: any client and server bytes end in forwarded bytes or ProtocolError, never a crash.

Inputs mix random bytes with valid packets so the relay gets past its first check
and is fuzzed in every state (queries, prepares, executes, result sets, LOCAL INFILE).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlgate.access.mysql.masking import MysqlMasking
from sqlgate.access.mysql.statements import StatementPolicy
from sqlgate.errors import ProtocolError
from sqlgate.mysqlproxy.relay import Relay
from sqlgate.mywire.commands import Query, StmtExecute, StmtPrepare
from sqlgate.mywire.constants import Capability, ColumnType
from sqlgate.mywire.packets import encode
from sqlgate.mywire.results import ColumnDefinition, Eof, Err, Ok, PrepareOk, encode_text_row
from sqlgate.policy.model import Guardrails

DEEP = os.environ.get("SQLGATE_FUZZ_DEEP") == "1"
FUZZ = settings(
    max_examples=10_000 if DEEP else 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EMAIL = ColumnDefinition("shop", "customers", "customers", "email", "email", 45, 400, ColumnType.VAR_STRING)
CLIENT = [
    encode(Query("SELECT email FROM customers").encode(), 0),
    encode(Query("DELETE FROM t").encode(), 0),
    encode(StmtPrepare("SELECT email FROM customers WHERE id = ?").encode(), 0),
    encode(StmtExecute(1, 0, 1, b"\x00\x01\x08\x00" + b"\x01" * 8).encode(), 0),
    encode(b"\x01", 0),
]
SERVER = [
    encode(b"\x01", 1),
    encode(EMAIL.encode(), 2),
    encode(Eof().encode(), 3),
    encode(encode_text_row([b"alice@example.com"]), 4),
    encode(Ok(header=0xFE).encode(), 5),
    encode(Ok().encode(), 1),
    encode(Err(1064, "42000", "syntax").encode(), 1),
    encode(PrepareOk(1, 1, 1).encode(), 1),
    encode(b"\xfb/etc/passwd", 1),
]


def chunks(pieces: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(pieces)), max_size=8)


@FUZZ
@given(chunks(CLIENT), chunks(SERVER), st.booleans(), st.booleans())
def test_the_relay_only_raises_protocol_error(client, server, mask, deprecate_eof):
    """Interleaved client and server bytes: forwarded, answered, or ProtocolError."""
    masking = (
        MysqlMasking(
            {"customers.email": "email"}, hash_key=b"k", base_tables=frozenset({"shop.customers"}), database="shop"
        )
        if mask
        else None
    )
    relay = Relay(
        capabilities=int(Capability.PROTOCOL_41 | (Capability.DEPRECATE_EOF if deprecate_eof else 0)),
        policy=StatementPolicy(Guardrails(deny=["write"]), database="shop", rule="r"),
        send_server=lambda _data: None,
        send_client=lambda _data: None,
        on_statement=lambda _record: None,
        on_kill=lambda _kill: None,
        masking=masking,
    )
    try:
        for index in range(max(len(client), len(server))):
            if index < len(client):
                relay.client_data(client[index])
            if index < len(server):
                relay.server_data(server[index])
    except ProtocolError:
        pass
