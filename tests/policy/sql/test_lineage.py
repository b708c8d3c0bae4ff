"""Column lineage from the parse tree: what each output column is made of, and what leaves through other doors."""

from __future__ import annotations

import pytest

from sqlgate.policy.sql.catalog_model import CatalogModel
from sqlgate.policy.sql.lineage import Column, analyze

TABLES = {
    1: ("public", "customers", "r", ["id", "name", "email", "ssn"]),
    2: ("public", "orders", "r", ["id", "customer_id", "status"]),
    3: ("public", "contacts", "v", ["who", "mail"]),
    4: ("other", "customers", "r", ["id", "nickname"]),
    5: ("pg_catalog", "pg_stats", "v", ["tablename", "most_common_vals"]),
}
VIEWS = {3: "SELECT name AS who, lower(email) AS mail FROM public.customers"}
EMAIL = Column("public.customers", "email")
SSN = Column("public.customers", "ssn")
NAME = Column("public.customers", "name")


@pytest.fixture(scope="module")
def catalog():
    rows = [
        (oid, schema, name, kind, number, column)
        for oid, (schema, name, kind, columns) in TABLES.items()
        for number, column in enumerate(columns, 1)
    ]
    return CatalogModel.build(rows, VIEWS, ["leak"])


def outputs(sql, catalog):
    (statement,) = analyze(sql, catalog).statements
    return statement.outputs


def test_a_column_unchanged_is_direct_through_aliases_subqueries_and_ctes(catalog):
    for sql in (
        "SELECT email AS e FROM public.customers",
        "SELECT x FROM (SELECT c.email AS x FROM public.customers c) s",
        "WITH t AS (SELECT email FROM public.customers) SELECT * FROM t",
        'SELECT "email" COLLATE "C" FROM public.customers',
    ):
        (only,) = outputs(sql, catalog)
        assert only.direct == EMAIL, sql
        assert only.deps == {EMAIL}


def test_transforms_depend_on_the_column_but_are_never_direct(catalog):
    for sql in (
        "SELECT reverse(email) FROM public.customers",
        'SELECT upper(U&"\\0065mail") FROM public.customers',
        "SELECT email::varchar FROM public.customers",
        "SELECT (SELECT max(email) FROM public.customers)",
        "SELECT CASE WHEN id > 1 THEN email END FROM public.customers",
    ):
        (only,) = outputs(sql, catalog)
        assert only.direct is None, sql
        assert EMAIL in only.deps, sql


def test_whole_rows_depend_on_every_column(catalog):
    for sql in (
        "SELECT c FROM public.customers c",
        "SELECT row_to_json(c) FROM public.customers c",
        "SELECT concat_ws('|', c.*) FROM public.customers c",
    ):
        (only,) = outputs(sql, catalog)
        assert {EMAIL, SSN, NAME} <= only.deps, sql
        assert only.direct is None


def test_star_expands_in_catalog_order_and_joins_merge_using_columns(catalog):
    names = [o.name for o in outputs("SELECT * FROM public.customers JOIN orders USING (id)", catalog)]
    assert names == ["id", "name", "email", "ssn", "customer_id", "status"]
    natural = outputs("SELECT * FROM public.customers NATURAL JOIN orders", catalog)
    assert [o.name for o in natural][:1] == ["id"]


def test_views_resolve_to_their_base_columns(catalog):
    who, mail = outputs("SELECT * FROM contacts", catalog)
    assert who.direct == NAME
    assert mail.deps == {EMAIL}
    assert mail.direct is None


def test_a_name_in_several_schemas_counts_every_candidate(catalog):
    """Without a schema, ``customers`` may be public's or other's (search_path is the session's)."""
    (only,) = outputs("SELECT * FROM customers", catalog)
    assert only.unknown
    assert EMAIL in only.deps


def test_what_cannot_be_traced_is_unknown(catalog):
    for sql in (
        "SELECT * FROM not_in_the_catalog",
        "SELECT leak()",
        "SELECT public.anything(id) FROM orders",
        "SELECT query_to_xml('select 1', true, false, '')",
        "SELECT most_common_vals FROM pg_stats",
    ):
        assert all(o.unknown for o in outputs(sql, catalog)), sql


def test_set_operations_merge_branches(catalog):
    (only,) = outputs("SELECT email FROM public.customers UNION SELECT status FROM orders", catalog)
    assert only.direct is None
    assert EMAIL in only.deps


def test_recursive_ctes_reach_a_fixed_point(catalog):
    sql = (
        "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM public.customers UNION ALL SELECT n + 1, e FROM r) "
        "SELECT n, e FROM r"
    )
    n, e = outputs(sql, catalog)
    assert not n.deps
    assert e.deps == {EMAIL}


def test_sinks_are_reported(catalog):
    cases = {
        "UPDATE orders SET status = (SELECT email FROM public.customers LIMIT 1)": "UPDATE SET status",
        "INSERT INTO orders SELECT id, id, ssn FROM public.customers": "INSERT INTO orders",
        "SELECT set_config('x.y', email, false) FROM public.customers": "set_config()",
        "SELECT pg_notify('c', ssn) FROM public.customers": "pg_notify()",
        "SELECT leak(email) FROM public.customers": "leak()",
        "CREATE TABLE copy AS SELECT email FROM public.customers": "CREATE TABLE AS",
        "COPY public.customers TO STDOUT": "COPY",
    }
    for sql, what in cases.items():
        (statement,) = analyze(sql, catalog).statements
        assert any(s.what == what and s.lineage.deps & {EMAIL, SSN} for s in statement.sinks), sql


def test_cursors_and_prepared_statements_name_their_source(catalog):
    declare, fetch, prepare, execute = analyze(
        "DECLARE c CURSOR WITH HOLD FOR SELECT email FROM public.customers; FETCH ALL FROM c;"
        " PREPARE p AS SELECT ssn FROM public.customers; EXECUTE p",
        catalog,
    ).statements
    assert declare.declares == "c"
    assert declare.holds
    assert declare.outputs[0].direct == EMAIL
    assert fetch.fetches == "c"
    assert prepare.prepares == "p"
    assert prepare.outputs[0].direct == SSN
    assert execute.executes == "p"


def test_text_that_does_not_parse_is_an_error_not_an_exception(catalog):
    assert analyze("SELEC email FROM", catalog).error
    assert analyze("DO $$ BEGIN END $$", catalog).statements[0].opaque
