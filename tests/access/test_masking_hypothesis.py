"""Random expressions over masked and unmasked columns: whatever the SELECT, no piece of a secret comes back.

Hypothesis builds expressions from column references (masked, unmasked, whole
rows) nested in functions, operators, casts, CASE, row and array constructors, and
wraps them in plain, subquery and CTE SELECTs. Each runs through the wire proxy
(simple protocol, and extended with binary results) and ``POST /v1/query``.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.access.attack import http_query

DEEP = os.environ.get("SQLGATE_FUZZ_DEEP") == "1"
COLUMNS = ["email", "ssn", "name", "region", "c.email", "c.ssn", "c.name", "id::text", "c::text", "'k'"]
UNARY = [
    "upper({})",
    "lower({})",
    "reverse({})",
    "substr({}, 2)",
    "left({}, 6)",
    "({} || 'x')",
    "md5({})",
    "format('%s', {})",
    "translate({}, 'gh', 'GH')",
    "split_part({}, '@', 1)",
    "({})::varchar",
    "nullif({}, '')",
    "to_json({})::text",
    "quote_literal({})",
    "initcap({})",
    "(SELECT {})",
    "trim({})",
]
BINARY = [
    "concat({}, {})",
    "coalesce({}, {})",
    "CASE WHEN id > 3 THEN {} ELSE {} END",
    "row({}, {})::text",
    "(ARRAY[{}, {}])[1]",
    "greatest({}, {})",
    "({} || {})",
]
SHAPES = [
    "SELECT {e} FROM customers c ORDER BY id LIMIT 4",
    "SELECT v FROM (SELECT {e} AS v, id FROM customers c) s ORDER BY id LIMIT 4",
    "WITH t AS (SELECT {e} AS v, id FROM customers c) SELECT v FROM t ORDER BY id LIMIT 4",
    "SELECT {e} AS a, name FROM customers c WHERE id < 4",
]


def _expressions():
    def extend(children):
        unary = st.tuples(st.sampled_from(UNARY), children).map(lambda t: t[0].format(t[1]))
        binary = st.tuples(st.sampled_from(BINARY), children, children).map(lambda t: t[0].format(t[1], t[2]))
        return unary | binary

    return st.recursive(st.sampled_from(COLUMNS), extend, max_leaves=5)


@pytest.fixture(scope="module")
def analyst(attack):
    gateway, _detector = attack
    token = gateway.token("alice", ("analysts",))
    info = gateway.conninfo("alice", token)
    with (
        psycopg.connect(**info, autocommit=True, cursor_factory=psycopg.ClientCursor) as simple,
        psycopg.connect(**info, autocommit=True) as extended,
    ):
        yield token, simple, extended


def _run(conn, sql, *, binary=False):
    try:
        with conn.cursor(binary=binary) as cur:
            cur.execute(sql)
            return repr(cur.fetchall())
    except psycopg.Error as exc:
        return f"{exc} {exc.diag.message_detail}"


@settings(
    max_examples=300 if DEEP else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expression=_expressions(), shape=st.sampled_from(SHAPES))
def test_no_random_select_reads_a_masked_value(attack, analyst, expression, shape):
    gateway, detector = attack
    token, simple, extended = analyst
    sql = shape.format(e=expression)
    seen = {
        "simple": _run(simple, sql),
        "binary": _run(extended, sql, binary=True),
        "http": http_query(gateway, token, sql),
    }
    leaked = {path: detector.leaks(text) for path, text in seen.items() if detector.leaks(text)}
    assert not leaked, (sql, leaked, seen)
