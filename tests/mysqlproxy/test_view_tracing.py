"""View columns traced to base columns from view texts as MariaDB writes them (pure: no server).

The definitions below are what MariaDB 10.11 puts in information_schema.VIEWS.VIEW_DEFINITION
(canonical form: backquoted, schema-qualified names, ``ucase`` for UPPER, view-over-view
columns qualified by the view's name only).
"""

from __future__ import annotations

import sqlglot

from sqlgate.access.mysql.catalog import MysqlCatalog
from sqlgate.access.mysql.masking import MysqlMasking
from sqlgate.access.mysql.tracing import MAX_VIEW_DEPTH, Tracer
from sqlgate.mywire.results import ColumnDefinition
from sqlgate.policy.sql.lineage import Column

EMAIL = Column("shop.customers", "email")
NAME = Column("shop.customers", "name")
SSN = Column("shop.customers", "ssn")
NOTE = Column("shop.orders", "note")
VIEWS: dict[str, str | None] = {
    "shop.renamed": "select `shop`.`customers`.`id` AS `id`,`shop`.`customers`.`email` AS `contact`,"
    "ucase(`shop`.`customers`.`name`) AS `who` from `shop`.`customers`",
    "shop.over": "select `renamed`.`contact` AS `mail`,concat(`renamed`.`who`,`renamed`.`contact`) AS `both`"
    " from `shop`.`renamed` where `renamed`.`id` > 0",
    "shop.joined": "select `o`.`note` AS `note`,`c`.`email` AS `email` from (`shop`.`orders` `o`"
    " join `shop`.`customers` `c` on(`c`.`id` = `o`.`customer_id`))",
    "shop.nested_joins": "select `shop`.`orders`.`note` AS `note`,`x`.`name` AS `name`,`y`.`ssn` AS `ssn`"
    " from ((`shop`.`orders` join `shop`.`customers` on(`shop`.`customers`.`id` = `shop`.`orders`.`customer_id`))"
    " left join `shop`.`customers` `x` on(`x`.`id` = `shop`.`orders`.`id`)) join `shop`.`customers` `y`",
    "shop.unioned": "select `shop`.`customers`.`name` AS `n` from `shop`.`customers` union"
    " select `shop`.`customers`.`email` AS `email` from `shop`.`customers`",
    "shop.scalar": "select `shop`.`customers`.`email` AS `a`,(select `a`) AS `b` from `shop`.`customers`",
    "shop.derived": "select `d`.`x` AS `x` from (select reverse(`shop`.`customers`.`email`) AS `x`"
    " from `shop`.`customers`) `d`",
    "shop.correlated": "select (select `contact` from `shop`.`orders` limit 1) AS `x` from `shop`.`renamed`",
    "shop.stored": "select `shop`.`f`(`shop`.`customers`.`name`) AS `n` from `shop`.`customers`",
    "shop.hidden": None,
    "shop.broken": "select from where",
    "shop.clean": "select `shop`.`customers`.`id` AS `id`,`shop`.`customers`.`name` AS `name` from `shop`.`customers`",
    "shop.loop_a": "select `loop_b`.`x` AS `x` from `shop`.`loop_b`",
    "shop.loop_b": "select `loop_a`.`x` AS `x` from `shop`.`loop_a`",
    "shop.cte": "with w as (select `shop`.`customers`.`email` AS `m` from `shop`.`customers`)"
    " select ucase(`w`.`m`) AS `m` from `w`",
}
CATALOG = MysqlCatalog(frozenset({"shop.customers", "shop.orders"}), VIEWS)


def traced(view: str) -> dict[str, tuple[frozenset[Column], Column | None, bool]]:
    columns = Tracer(CATALOG, "shop").view(view)
    assert columns is not None
    return {name: (lineage.deps, lineage.direct, lineage.unknown) for name, lineage in columns}


def test_a_renamed_column_is_that_column_and_a_computed_one_depends_on_it():
    assert traced("shop.renamed") == {
        "id": (frozenset({Column("shop.customers", "id")}), Column("shop.customers", "id"), False),
        "contact": (frozenset({EMAIL}), EMAIL, False),
        "who": (frozenset({NAME}), None, False),
    }


def test_a_view_over_a_view_is_traced_to_the_base_columns():
    assert traced("shop.over") == {
        "mail": (frozenset({EMAIL}), EMAIL, False),
        "both": (frozenset({EMAIL, NAME}), None, False),
    }


def test_joins_unions_derived_tables_ctes_and_select_aliases_in_subqueries():
    assert traced("shop.joined") == {
        "note": (frozenset({NOTE}), NOTE, False),
        "email": (frozenset({EMAIL}), EMAIL, False),
    }
    assert traced("shop.nested_joins") == {
        "note": (frozenset({NOTE}), NOTE, False),
        "name": (frozenset({NAME}), NAME, False),
        "ssn": (frozenset({SSN}), SSN, False),
    }
    assert traced("shop.unioned") == {"n": (frozenset({NAME, EMAIL}), None, False)}
    assert traced("shop.derived") == {"x": (frozenset({EMAIL}), None, False)}
    assert traced("shop.cte") == {"m": (frozenset({EMAIL}), None, False)}
    assert EMAIL in traced("shop.scalar")["b"][0]  # (SELECT a) reads the output alias a, which is email


def test_a_name_a_base_table_may_lack_is_also_looked_up_outside():
    """The orders table has no contact column: MySQL reads the enclosing view's contact (email)."""
    assert EMAIL in traced("shop.correlated")["x"][0]


def test_what_cannot_be_proven_is_unknown():
    tracer = Tracer(CATALOG, "shop")
    assert tracer.view("shop.hidden") is None  # no SHOW VIEW privilege: empty definition
    assert tracer.view("shop.broken") is None
    assert traced("shop.stored") == {"n": (frozenset(), None, True)}  # a stored function
    assert traced("shop.loop_a") == {"x": (frozenset(), None, True)}  # a cycle
    assert tracer.view_column("shop.renamed", "missing").unknown


def test_a_chain_deeper_than_the_bound_is_unknown():
    views = {"shop.v0": "select `shop`.`customers`.`email` AS `e` from `shop`.`customers`"}
    for depth in range(1, MAX_VIEW_DEPTH + 2):
        views[f"shop.v{depth}"] = f"select `v{depth - 1}`.`e` AS `e` from `shop`.`v{depth - 1}`"
    tracer = Tracer(MysqlCatalog(frozenset({"shop.customers"}), views), "shop")
    assert tracer.view_column(f"shop.v{MAX_VIEW_DEPTH + 1}", "e").unknown
    shallow = Tracer(MysqlCatalog(frozenset({"shop.customers"}), views), "shop")
    assert shallow.view_column(f"shop.v{MAX_VIEW_DEPTH - 2}", "e").direct == EMAIL


def test_statements_trace_derived_table_aliases_and_view_columns():
    """Items of a statement: a derived table's alias and a view's column are traced to email."""
    tracer = Tracer(CATALOG, "shop")
    for sql in (
        "SELECT UPPER(x) FROM (SELECT email AS x FROM customers) d",
        "SELECT UPPER(contact) FROM renamed",
        "SELECT v.mail FROM over v",
        "SELECT email AS a, (SELECT a) AS b FROM customers",
    ):
        select = sqlglot.parse_one(sql, read="mysql")
        assert isinstance(select, sqlglot.exp.Select)
        assert EMAIL in tracer.items(select)[-1][2].deps, sql


# -- through MysqlMasking: plans from column definitions ---------------------------------------------------------


def masking() -> MysqlMasking:
    return MysqlMasking(
        {"customers.email": "email", "*.ssn": "redact"},
        hash_key=b"k",
        base_tables=CATALOG.base_tables,
        views=VIEWS,
        database="shop",
    )


def definition(org_table: str, org_name: str, *, schema: str = "shop", name: str | None = None) -> ColumnDefinition:
    return ColumnDefinition(
        schema=schema,
        table=org_table,
        org_table=org_table,
        name=name or org_name,
        org_name=org_name,
        charset=45,
        length=400,
        type=253,
    )


def plan_of(sql: str, *columns: ColumnDefinition) -> dict[int, str]:
    """Each masked column's treatment: "function" (its mask function) or "whole" (replaced)."""
    engine = masking()
    analysis = engine.analyze(sql)
    assert analysis.refusal is None, analysis.refusal
    plan = engine.plan(analysis.shapes[0], list(columns))
    return {index: "function" if mask.function is not None else "whole" for index, mask in plan.items()}


def test_a_view_column_that_is_email_gets_the_email_mask_and_clean_ones_pass():
    """MariaDB reports the view (or its alias) in org_table and the view's column in org_name."""
    columns = (definition("renamed", "id"), definition("renamed", "contact"), definition("renamed", "who", schema=""))
    assert plan_of("SELECT * FROM renamed", *columns) == {1: "function"}
    assert plan_of("SELECT v.id, v.contact, v.who FROM renamed v", *(definition("v", c.org_name) for c in columns)) == {
        1: "function"
    }
    assert plan_of("SELECT * FROM over", definition("over", "mail"), definition("over", "both", schema="")) == {
        0: "function",
        1: "whole",
    }
    assert plan_of("SELECT * FROM clean", definition("clean", "id"), definition("clean", "name")) == {}


def test_a_view_aliased_as_a_base_table_is_not_taken_for_it():
    """FROM renamed AS customers: org_table says customers, org_name contact; the parse says it is the view."""
    assert plan_of("SELECT contact FROM renamed AS customers", definition("customers", "contact")) == {0: "function"}
    assert plan_of("SELECT contact FROM renamed AS orders", definition("orders", "contact")) == {0: "function"}


def test_computed_columns_over_views_and_hidden_views_are_replaced_whole():
    computed = ColumnDefinition("", "", "", "UPPER(contact)", "", 45, 400, 253)
    assert plan_of("SELECT UPPER(contact) FROM renamed", computed) == {0: "whole"}
    assert plan_of("SELECT * FROM hidden", definition("hidden", "id")) == {0: "whole"}
    assert plan_of("SELECT * FROM stored", definition("stored", "n", schema="")) == {0: "whole"}
    assert plan_of("SELECT n FROM unioned", ColumnDefinition("", "unioned", "", "n", "n", 45, 400, 253)) == {0: "whole"}


def test_a_select_alias_read_by_a_subquery_is_traced():
    """SELECT email AS a, (SELECT a) AS b: b is email (computed: replaced whole)."""
    b = ColumnDefinition("", "", "", "b", "", 45, 400, 253)
    assert plan_of("SELECT email AS a, (SELECT a) AS b FROM customers", definition("customers", "email"), b) == {
        0: "function",
        1: "whole",
    }


def test_copying_a_view_column_elsewhere_is_refused():
    engine = masking()
    refusal = engine.analyze("INSERT INTO orders (note) SELECT contact FROM renamed").refusal
    assert refusal is not None
    assert "shop.customers.email" in refusal
    assert engine.analyze("INSERT INTO orders (note) SELECT name FROM clean").refusal is None
    refusal = engine.analyze("INSERT INTO orders (note) SELECT contact FROM created_since").refusal
    assert refusal is not None
    assert "cannot be traced" in refusal
