"""Views through the MySQL listener, against the machine's MariaDB: view columns traced to their base columns.

The read and write roles get SHOW VIEW here (without it the login reads empty view
definitions and every view column is masked whole: see test_masking.py). Rows are read
with PyMySQL (text protocol) and Connector/Python's prepared statements (binary protocol).
A third customer has an email and an SSN made of words found nowhere else, so the
attacker corpus can check that no piece of them comes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.mysqlproxy.conftest import MysqlGateway, mariadb_or_skip, root_sql

POLICY = """\
rules:
  - name: analysts-read
    who: {groups: [analysts]}
    databases: [shop]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: builders
    who: {groups: [builders]}
    databases: [shop]
    role: write
    max_ttl: 1h
    guardrails: {deny: [dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: engineers-read
    who: {groups: [engineers]}
    databases: [shop]
    role: read
    max_ttl: 1h
"""
VIEWS = {
    "v_renamed": "SELECT id, email AS contact, name FROM customers",
    "v_computed": "SELECT id, CONCAT(name, ':', email) AS tagged, UPPER(email) AS shout,"
    " SUBSTRING(email, 1, 5) AS head, LENGTH(email) AS n, UPPER(name) AS uname FROM customers",
    "v_over": "SELECT id, contact AS mail, UPPER(name) AS who FROM v_renamed",
    "v_join": "SELECT o.id, o.note, c.email, c.name, c.ssn FROM orders o JOIN customers c ON c.id = o.customer_id",
    "v_clean": "SELECT id, name FROM customers",
    "v_join_renamed": "SELECT c.email AS contact, c.ssn AS code, o.note"
    " FROM customers c JOIN orders o ON c.id = o.customer_id",
    # the attacker's views
    "v_union": "SELECT name AS n FROM customers UNION SELECT email FROM customers",
    "v_union_ssn": "SELECT ssn AS s FROM customers UNION ALL SELECT note FROM orders",
    "v_sub": "SELECT c.id, (SELECT c2.email FROM customers c2 WHERE c2.id = c.id) AS e FROM customers c",
    "v_derived": "SELECT d.x AS x FROM (SELECT REVERSE(email) AS x FROM customers) d",
    "v_alias_sub": "SELECT email AS a, (SELECT a) AS b FROM customers",
    "v_cte": "WITH w AS (SELECT email AS m FROM customers) SELECT UPPER(m) AS m FROM w",
    "v_corr": "SELECT (SELECT contact FROM orders LIMIT 1) AS x FROM v_renamed",
    "v_group": "SELECT GROUP_CONCAT(email) AS g, GROUP_CONCAT(ssn) AS s FROM customers",
    "v_json": "SELECT JSON_OBJECT('e', email) AS j FROM customers",
    "v_case": "SELECT id, CASE WHEN id > 0 THEN email END AS e FROM customers",
    "v_customers": "SELECT id, REVERSE(email) AS email, ssn AS name FROM customers",
    "v_func": "SELECT id, f_same(email) AS e, f_same(name) AS n FROM customers",
    "v_deep": "SELECT UPPER(e) AS e, id FROM v_sub",
}
INVOKER = (
    "CREATE SQL SECURITY INVOKER VIEW {db}.v_invoker AS SELECT id, REVERSE(email) AS r, email AS e FROM {db}.customers"
)
CORPUS = [
    *(f"SELECT * FROM {view}" for view in VIEWS),
    "SELECT * FROM v_invoker",
    "SELECT e AS email FROM v_invoker AS customers",
    "SELECT r, CONCAT(e, '') FROM v_invoker",
    "SELECT email FROM v_customers AS customers",
    "SELECT name FROM v_customers AS customers",
    "SELECT c.email, c.name FROM v_customers c",
    "SELECT contact FROM v_renamed AS customers",
    "SELECT contact AS email FROM v_renamed AS orders",
    "SELECT x.contact FROM v_renamed AS x",
    "SELECT UPPER(contact), REVERSE(contact), SUBSTRING(contact, 2, 4) FROM v_renamed",
    "SELECT CONCAT(x, '') FROM v_derived",
    "SELECT t.n FROM (SELECT n FROM v_union) t",
    "SELECT n FROM v_union WHERE n LIKE '%@%'",
    "WITH customers AS (SELECT * FROM v_invoker) SELECT e FROM customers",
    "SELECT (SELECT b FROM v_alias_sub LIMIT 1)",
    "SELECT a, (SELECT a) FROM v_alias_sub",
    "SELECT contact FROM v_renamed UNION SELECT r FROM v_invoker",
    "SELECT (SELECT contact FROM orders LIMIT 1) AS x FROM v_renamed",
    "SELECT mail, (SELECT mail) FROM v_over",
    "SELECT m FROM v_cte",
    "SELECT j FROM v_json",
    "SELECT * FROM v_join JOIN v_renamed ON v_join.id = v_renamed.id",
    "SELECT v_join.email AS note FROM v_join",
    "SELECT * FROM v_deep",
    "SELECT s FROM v_union_ssn",
    # sorted, grouped or distinct, MariaDB reports a join view's base table with the view's column name
    "SELECT contact, code FROM v_join_renamed ORDER BY note",
    "SELECT DISTINCT contact FROM v_join_renamed",
    "SELECT contact, code FROM v_join_renamed GROUP BY contact, code",
    "SELECT j.contact FROM v_join_renamed j JOIN customers ON customers.id = 1 ORDER BY j.note",
    "SELECT v_join_renamed.contact, customers.name FROM v_join_renamed, customers ORDER BY 1",
    "SELECT *, customers.name AS email FROM customers JOIN v_renamed ON customers.id = v_renamed.id",
    "SELECT *, customers.name AS n FROM v_union JOIN customers ORDER BY 1",
    "SELECT * FROM v_join_renamed ORDER BY note",
]


def _secret_pieces() -> list[str]:
    """Pieces of the masked values: the unique words of customer 3 and the other customers' values, reversed too."""
    pieces = ["alice@", "bob@", "ecila", "@bob", "123-45", "45-67", "6789", "987-65", "65-43", "4321", "1234-5", "9876"]
    for word in ("kx9quorra", "555-12-3434"):
        for text in (word, word[::-1]):
            pieces += [text[i : i + 3] for i in range(len(text) - 2)]
    return pieces


SECRET_PIECES = _secret_pieces()


@pytest.fixture(scope="module")
def views_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MysqlGateway]:
    """A gateway over a MariaDB database with the views above; its roles may read view definitions."""
    mariadb_or_skip()
    gateway = MysqlGateway(tmp_path_factory.mktemp("mysqlviews"), POLICY)
    db = gateway.database
    try:
        root_sql(
            f"INSERT INTO {db}.customers VALUES (3, 'Carol', 'kx9quorra@vault.test', '555-12-3434')",
            f"CREATE FUNCTION {db}.f_same(s VARCHAR(200)) RETURNS VARCHAR(200) DETERMINISTIC RETURN s",
            f"GRANT SHOW VIEW ON {db}.* TO {gateway.roles['read']}",
            f"GRANT SHOW VIEW, CREATE VIEW, EXECUTE ON {db}.* TO {gateway.roles['write']}",
            f"GRANT EXECUTE ON {db}.* TO {gateway.roles['read']}",
            *(f"CREATE VIEW {db}.{name} AS {body}" for name, body in VIEWS.items()),
            INVOKER.format(db=db),
            database=db,
        )
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def analyst(views_gateway: MysqlGateway) -> Iterator[pymysql.connections.Connection]:
    conn = views_gateway.connect(views_gateway.token("alice", ("analysts",)))
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def binary(views_gateway: MysqlGateway) -> Iterator[Any]:
    """A Connector/Python connection (prepared statements: binary rows) for an analyst."""
    mysql_connector = pytest.importorskip("mysql.connector")
    conn = mysql_connector.connect(
        host="127.0.0.1",
        port=views_gateway.mysql_port,
        user="alice",
        password=views_gateway.token("alice", ("analysts",)),
        database="shop",
        auth_plugin="mysql_clear_password",
        ssl_verify_cert=False,
        use_pure=True,
    )
    yield conn
    conn.close()


def text_rows(conn: pymysql.connections.Connection, sql: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [tuple(row) for row in cur.fetchall()]


def binary_rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor(prepared=True)
    try:
        cur.execute(sql)
        return [tuple(v.decode() if isinstance(v, bytes | bytearray) else v for v in row) for row in cur.fetchall()]
    finally:
        cur.close()


def both(analyst: pymysql.connections.Connection, binary: Any, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the text protocol, checked to be the same in the binary protocol."""
    rows = text_rows(analyst, sql)
    assert binary_rows(binary, sql) == rows, sql
    return rows


def leaked(rows: list[tuple[Any, ...]]) -> list[str]:
    """Every cell holding a piece of a masked value."""
    cells = [str(value).lower() for row in rows for value in row if value is not None]
    return [cell for cell in cells if any(piece in cell for piece in SECRET_PIECES)]


def test_a_view_renaming_email_shows_it_with_the_email_mask(analyst, binary):
    assert both(analyst, binary, "SELECT id, contact, name FROM v_renamed ORDER BY id") == [
        (1, "a***@example.com", "Alice"),
        (2, "b***@example.org", "Bob"),
        (3, "k***@vault.test", "Carol"),
    ]


def test_a_view_computing_from_email_is_replaced_whole_and_its_clean_columns_shown(analyst, binary):
    """CONCAT, UPPER and SUBSTRING of email: ****; LENGTH(email): NULL; UPPER(name): shown."""
    rows = both(analyst, binary, "SELECT id, tagged, shout, head, n, uname FROM v_computed ORDER BY id")
    assert rows == [
        (1, "****", "****", "****", None, "ALICE"),
        (2, "****", "****", "****", None, "BOB"),
        (3, "****", "****", "****", None, "CAROL"),
    ]


def test_a_view_over_a_view_is_traced_to_email(analyst, binary):
    assert both(analyst, binary, "SELECT id, mail, who FROM v_over ORDER BY id") == [
        (1, "a***@example.com", "ALICE"),
        (2, "b***@example.org", "BOB"),
        (3, "k***@vault.test", "CAROL"),
    ]


def test_a_view_joining_masked_and_unmasked_tables(analyst, binary):
    """Sorted, MariaDB names the view's base tables in org_table: the parse through the view agrees."""
    expected = [(1, "first", "a***@example.com", "Alice", "****"), (2, "second", "b***@example.org", "Bob", "****")]
    assert both(analyst, binary, "SELECT id, note, email, name, ssn FROM v_join ORDER BY id") == expected
    assert both(analyst, binary, "SELECT * FROM v_join ORDER BY id") == expected
    assert both(analyst, binary, "SELECT contact, code, note FROM v_join_renamed ORDER BY note") == [
        ("a***@example.com", "****", "first"),
        ("b***@example.org", "****", "second"),
    ]


def test_a_view_hiding_nothing_is_shown_in_clear(analyst, binary):
    assert both(analyst, binary, "SELECT * FROM v_clean ORDER BY id") == [(1, "Alice"), (2, "Bob"), (3, "Carol")]


def test_view_columns_in_computed_columns_and_under_aliases(analyst, binary):
    """The parse path resolves view columns the same way: aliases keep the mask, computations are replaced."""
    assert both(analyst, binary, "SELECT v.contact FROM v_renamed v WHERE id = 1") == [("a***@example.com",)]
    assert both(analyst, binary, "SELECT UPPER(contact), UPPER(name) FROM v_renamed WHERE id = 1") == [
        ("****", "ALICE")
    ]
    assert both(analyst, binary, "SELECT contact FROM v_renamed AS customers WHERE id = 1") == [("a***@example.com",)]


def test_an_unmasked_grant_reads_views_in_clear(views_gateway):
    conn = views_gateway.connect(views_gateway.token("alice", ("engineers",)))
    try:
        assert text_rows(conn, "SELECT contact, UPPER(contact) FROM v_renamed WHERE id = 1") == [
            ("alice@example.com", "ALICE@EXAMPLE.COM")
        ]
    finally:
        conn.close()


def test_a_security_invoker_view_is_traced_like_any_other(analyst, binary):
    assert both(analyst, binary, "SELECT e, r FROM v_invoker WHERE id = 1") == [("a***@example.com", "****")]


@pytest.mark.parametrize("sql", CORPUS)
def test_attacker_corpus_gets_no_masked_value_out_through_views(analyst, binary, sql):
    """Every statement either is refused or returns no piece of an email or SSN, in either protocol."""
    for read in (text_rows, binary_rows):
        conn = analyst if read is text_rows else binary
        try:
            rows = read(conn, sql)
        except Exception as exc:  # a refusal or a server error (PyMySQL's or Connector/Python's)
            refused = str(exc)
        else:
            assert rows, sql
            assert leaked(rows) == [], sql
            continue
        assert "1142" in refused or "hidden" in refused, refused
        assert leaked([(refused,)]) == [], refused


def test_a_view_created_after_the_catalog_was_read_is_masked_whole(views_gateway, analyst, binary):
    """The session read its catalog at login: a view made since is unknown, masked whole (not with the mask)."""
    db = views_gateway.database
    root_sql(f"CREATE VIEW {db}.v_late AS SELECT id, email AS contact, name FROM {db}.customers")
    rows = both(analyst, binary, "SELECT contact, UPPER(contact), name FROM v_late WHERE id = 3")
    assert rows == [("****", "****", "****")]


def test_a_view_created_in_the_session_masks_everything_after(views_gateway):
    """DDL in the session: every column it reads afterwards is masked, views and tables alike."""
    conn = views_gateway.connect(views_gateway.token("bob", ("builders",)), user="bob")
    try:
        with pytest.raises(pymysql.err.MySQLError) as caught, conn.cursor() as cur:
            cur.execute("CREATE VIEW v_copy AS SELECT id, email AS contact FROM customers")
        assert caught.value.args[0] == 1142  # CREATE VIEW ... AS SELECT email would copy the value: refused
        assert text_rows(conn, "SELECT name FROM v_clean WHERE id = 1") == [("Alice",)]
        with conn.cursor() as cur:
            cur.execute("CREATE SQL SECURITY INVOKER VIEW v_session AS SELECT id, name FROM customers")
        assert text_rows(conn, "SELECT id, name FROM v_session WHERE id = 1") == [(None, "****")]
        assert text_rows(conn, "SELECT name FROM v_clean WHERE id = 1") == [("****",)]
        assert text_rows(conn, "SELECT contact FROM v_renamed WHERE id = 1") == [("****",)]
    finally:
        conn.close()


def test_copying_a_view_column_into_a_table_is_refused(views_gateway):
    conn = views_gateway.connect(views_gateway.token("bob", ("builders",)), user="bob")
    try:
        with pytest.raises(pymysql.err.MySQLError) as caught, conn.cursor() as cur:
            cur.execute("INSERT INTO orders (customer_id, note) SELECT id, contact FROM v_renamed")
        assert caught.value.args[0] == 1142
        assert "email" in caught.value.args[1]
    finally:
        conn.close()
