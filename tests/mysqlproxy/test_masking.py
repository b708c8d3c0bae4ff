"""Masking through the MySQL listener: by column origin, computed columns fail closed, laundering refused."""

from __future__ import annotations

import pymysql
import pytest


@pytest.fixture(scope="module")
def analyst(mysql_gateway):
    """An analyst session (email and ssn masked)."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("analysts",)))
    yield conn
    conn.close()


def rows(conn, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


def test_aliases_and_qualified_names_keep_the_mask_function(analyst, mysql_gateway):
    """A masked column under an alias, or named with its database, is the same column."""
    db = mysql_gateway.database
    assert rows(analyst, f"SELECT c.email AS contact FROM {db}.customers c WHERE id = 1") == [("a***@example.com",)]


def test_computed_columns_over_a_masked_column_are_replaced_whole(analyst):
    """Transforms, concatenations and subqueries over email: text becomes ****, numbers NULL."""
    assert rows(analyst, "SELECT REVERSE(email), CONCAT(name, email), LENGTH(email) FROM customers WHERE id = 1") == [
        ("****", "****", None)
    ]
    assert rows(analyst, "SELECT (SELECT email FROM customers WHERE id = 2)") == [("****",)]


def test_computed_columns_proven_clean_are_kept(analyst):
    """Expressions over unmasked columns and constants pass unchanged."""
    assert rows(analyst, "SELECT UPPER(name), id * 10, 'x' FROM customers ORDER BY id") == [
        ("ALICE", 10, "x"),
        ("BOB", 20, "x"),
    ]


def test_views_whose_definition_the_login_cannot_read_are_masked_whole(analyst):
    """Without SHOW VIEW the login reads an empty view definition: the view's columns are unknown, all masked.

    (Views the login can read are traced to their base columns: test_view_masking.py.)
    """
    assert rows(analyst, "SELECT id, email FROM customer_view ORDER BY id") == [(None, "****"), (None, "****")]


def test_derived_table_aliases_and_select_aliases_are_traced(analyst):
    """Email as x under a derived table's alias; (SELECT a) reads the output alias a: both replaced whole."""
    assert rows(analyst, "SELECT UPPER(x) FROM (SELECT email AS x FROM customers) d WHERE x LIKE 'a%'") == [("****",)]
    assert rows(analyst, "SELECT email AS a, (SELECT a) AS b FROM customers WHERE id = 1") == [
        ("a***@example.com", "****")
    ]
    assert rows(analyst, "SELECT UPPER(email) FROM customer_view WHERE id = 1") == [("****",)]


def test_grouped_derived_tables_and_ctes_are_traced_not_taken_at_their_word(analyst):
    """Grouped or distinct, MariaDB reports customers.name for a derived table's name that is email.

    Traced, it is email (its mask), or may be (joined with orders, which might have a name column: ****).
    """
    for sql in (
        "SELECT name FROM (SELECT email AS name FROM customers) d GROUP BY name",
        "WITH d AS (SELECT email AS name FROM customers) SELECT DISTINCT name FROM d",
        "SELECT DISTINCT name FROM (SELECT email AS name FROM customers) AS d JOIN orders",
    ):
        assert {value for (value,) in rows(analyst, sql)} <= {"a***@example.com", "b***@example.org", "****"}, sql


def test_warnings_do_not_reveal_masked_values(analyst):
    """A warning quoting a value (Truncated incorrect DOUBLE value: '...') is masked like any computed column."""
    rows(analyst, "SELECT email + 0 FROM customers")
    for level, _code, message in rows(analyst, "SHOW WARNINGS"):
        assert "example" not in str(message)
        assert level in {"****", "Warning"}


def test_moving_a_masked_value_elsewhere_is_refused(analyst):
    """User variables and stored functions would carry email out unmasked: refused."""
    for sql in ("SELECT @v := email FROM customers", "SELECT my_function(email) FROM customers"):
        with pytest.raises(pymysql.err.MySQLError) as caught, analyst.cursor() as cur:
            cur.execute(sql)
        assert caught.value.args[0] == 1142
        assert "email" in caught.value.args[1]


def test_an_unmasked_grant_sees_the_values(mysql_gateway):
    """The engineers' grant masks nothing."""
    conn = mysql_gateway.connect(mysql_gateway.token("alice", ("engineers",)))
    try:
        assert rows(conn, "SELECT email, ssn FROM customers WHERE id = 1") == [("alice@example.com", "123-45-6789")]
    finally:
        conn.close()


def test_a_derived_table_or_cte_posing_as_a_base_table_is_masked_whole(analyst):
    """A derived table or CTE named customers hides REVERSE(email) as customers.email: masked whole.

    MariaDB reports the alias as org_table; trusting it, the email mask would show the reversed local part.
    """
    derived = "SELECT email FROM (SELECT REVERSE(email) AS email FROM customers) AS customers ORDER BY 1"
    assert rows(analyst, derived) == [("****",), ("****",)]
    cte = "WITH customers AS (SELECT REVERSE(email) AS email FROM customers) SELECT email FROM customers"
    assert {value for (value,) in rows(analyst, cte)} == {"****"}
