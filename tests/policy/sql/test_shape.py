"""literal_shape: texts that share a shape parse to the same statement up to constant values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.policy.sql import classify, clear_caches, uncached_classify
from sqlgate.policy.sql.postgres import normalized
from sqlgate.policy.sql.shape import literal_shape


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        (
            "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = ?n;",
        ),
        ("select * from t1 where a = 'x''y' and b = 1.5e3", "select * from t1 where a = ?s and b = ?n"),
        ('SELECT "t 1".a FROM "t 1" WHERE x = 5', 'SELECT "t 1".a FROM "t 1" WHERE x = ?n'),
        ("select x::int4, t2.c1 from t2", "select x::int4, t2.c1 from t2"),
        (
            "WITH d AS (DELETE FROM t WHERE id = 3 RETURNING *) SELECT * FROM d",
            "WITH d AS (DELETE FROM t WHERE id = ?n RETURNING *) SELECT * FROM d",
        ),
        ("UPDATE t SET a = 'x;y' WHERE id = .5", None),  # a semicolon anywhere but the end: the parser decides
    ],
)
def test_shapes(sql, shape):
    assert literal_shape(sql) == shape


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT E'\\n'",  # escape string
        "SELECT e'x'",
        "SELECT B'101'",
        "SELECT X'1F'",
        "SELECT U&'d\\0061t'",
        "SELECT N'abc'",
        "SELECT 1 -- comment 'x",
        "SELECT /* ' */ 1",
        "SELECT $1",
        "SELECT $$a$$",
        "SELECT 'a\\'",  # backslash: its meaning depends on standard_conforming_strings
        "SELECT 1; DROP TABLE x",
        "DROP TABLE x",
        "SET ROLE 'admin'",
        "COPY t FROM '/etc/passwd'",
        "SELECT 'unterminated",
        'SELECT "unterminated',
    ],
)
def test_outside_the_certain_subset_there_is_no_shape(sql):
    assert literal_shape(sql) is None


_TEMPLATES = [
    "SELECT a, b FROM t WHERE id = {} AND name = {}",
    'select * from "my table" where "col 1" = {} or x in ({}, {})',
    "INSERT INTO t (a, b) VALUES ({}, {}) RETURNING id",
    "UPDATE accounts SET balance = balance + {} WHERE id = {};",
    "DELETE FROM t WHERE created < {} AND kind = {}",
    "WITH x AS (SELECT {} AS v) SELECT v, pg_sleep({}) FROM x",
    "SELECT {}::regclass, {} FROM pg_class LIMIT {}",
    "VALUES ({}), ({})",
]
_literals = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, min_value=0).map(lambda f: repr(abs(f))),
    st.text(max_size=12).map(lambda text: "'" + text.replace("'", "''").replace("\x00", "") + "'"),
    st.sampled_from(["'; DROP TABLE t; --'", "'1'' OR ''1''=''1'", "'\"'", "'$$'", "'--'", "'/*'"]),
)


@settings(max_examples=300)
@given(st.sampled_from(_TEMPLATES), st.data())
def test_one_shape_means_one_normalized_statement(template, data):
    """The claim the cache rests on: same shape => same parse tree up to constants (pglast's normalize agrees)."""
    holes = template.count("{}")
    first = template.format(*data.draw(st.lists(_literals, min_size=holes, max_size=holes)))
    second = template.format(*data.draw(st.lists(_literals, min_size=holes, max_size=holes)))
    shape = literal_shape(first)
    if shape is None or shape != literal_shape(second):
        return
    assert normalized(first) == normalized(second)
    assert uncached_classify(first) == uncached_classify(second)


_LITERAL_TOKENS = ["1", "2.5", "'x'", "'a''b'", "1e5", ".5", "'1; DROP TABLE t'", "'\"'", "'--'"]
_tokens = st.sampled_from(
    [
        *_LITERAL_TOKENS,
        "a",
        "t",
        '"t 1"',
        ",",
        "(",
        ")",
        "=",
        "+",
        "-",
        ".",
        "::",
        "int4",
        "'",
        '"',
        "FROM",
        "WHERE",
        "AND",
        ";",
        "e",
        "E",
        "x",
        " ",
        "\n",
        "--",
        "*",
        "$1",
        "pg_sleep",
        "DELETE",
        "OR",
        "LIMIT",
    ]
)


@settings(max_examples=500)
@given(st.lists(_tokens, max_size=14), st.data())
def test_changing_only_literals_never_changes_the_statement(tokens, data):
    """Token soups that differ only in literals, and share a shape, classify alike whenever they parse."""
    changed = [data.draw(st.sampled_from(_LITERAL_TOKENS)) if token in _LITERAL_TOKENS else token for token in tokens]
    first, second = "SELECT " + "".join(tokens), "SELECT " + "".join(changed)
    shape = literal_shape(first)
    if shape is None or shape != literal_shape(second):
        return
    a, b = uncached_classify(first), uncached_classify(second)
    if a.parsed and b.parsed:
        assert normalized(first) == normalized(second)
        assert a == b


def test_classify_reuses_the_literal_shape_and_never_for_set_config():
    clear_caches()
    first = classify("SELECT abalance FROM pgbench_accounts WHERE aid = 1")
    assert classify("SELECT abalance FROM pgbench_accounts WHERE aid = 2") is first
    config = classify("SELECT set_config('role', 'reader', false)")
    other = classify("SELECT set_config('search_path', 'x', false)")
    assert other is not config  # the setting's name is a constant the classification depends on
