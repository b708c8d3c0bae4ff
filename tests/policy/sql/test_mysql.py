"""MySQL classification through sqlglot's MySQL dialect."""

from __future__ import annotations

import pytest

from sqlgate.policy import Guardrails
from sqlgate.policy.sql import check, classify

READ_ONLY = Guardrails(deny=["write", "ddl", "dcl", "admin"])

REFUSED = [
    "INSERT INTO t VALUES (1)",
    "REPLACE INTO t VALUES (1)",
    "UPDATE t SET a = 1 WHERE id = 1",
    "DELETE FROM t",
    "TRUNCATE t",
    "DROP TABLE t",
    "CREATE TABLE x (a INT)",
    "GRANT ALL ON *.* TO 'x'@'%'",
    "CREATE USER x IDENTIFIED BY 'y'",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT * INTO OUTFILE '/tmp/x' FROM t",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
    "KILL 12",
    "SET GLOBAL general_log = 1",
    "SET ROLE admin",
    "SELECT 1 /*!50000 ; DROP TABLE t */",
    "SELECT 1; DROP TABLE t",
    "FLUSH PRIVILEGES",
    "CALL p()",
    "PREPARE s FROM 'DELETE FROM t'",
    "SELECT * FROM t FOR UPDATE",
]
HARMLESS = [
    "SELECT 1",
    "SELECT * FROM db.t WHERE id = 1",
    "SHOW TABLES",
    "DESCRIBE t",
    "SET NAMES utf8mb4",
    "START TRANSACTION",
    "COMMIT",
    "SELECT 'DROP TABLE t' AS x # comment",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_refused(sql):
    assert check(READ_ONLY, classify(sql, dialect="mysql")) is not None


@pytest.mark.parametrize("sql", HARMLESS)
def test_harmless(sql):
    assert check(READ_ONLY, classify(sql, dialect="mysql")) is None, classify(sql, dialect="mysql")


def test_set_role_is_an_identity_escape_on_mysql_too():
    violation = check(None, classify("SET ROLE ALL", dialect="mysql"))
    assert violation is not None
    assert violation.kind == "identity"


@pytest.mark.parametrize(
    "sql",
    [
        "SET ROLE admin",
        "SET DEFAULT ROLE admin FOR 'x'@'%'",
        "SET PASSWORD = 'x'",
        "SET PASSWORD FOR 'x'@'%' = PASSWORD('y')",
        "SET SESSION AUTHORIZATION bob",
        "CHANGE USER bob",
        "ALTER USER x IDENTIFIED BY 'y'",
        "CREATE USER x IDENTIFIED BY 'y'",
    ],
)
def test_identity_changes_are_refused_whatever_the_grant(sql):
    """Statements that would change whose session it is, or a login's password, are refused even without guardrails."""
    violation = check(None, classify(sql, dialect="mysql"))
    assert violation is not None
    assert violation.kind == "identity"


def test_load_data_is_write_and_admin_and_local_is_marked():
    """LOAD DATA is recognised by its keywords; LOCAL is marked; other statements after it make it opaque."""
    (local,) = classify("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t", dialect="mysql").statements
    assert local.local_infile
    assert local.classes == {"write", "admin"}
    (server,) = classify("LOAD DATA INFILE 'x' INTO TABLE t", dialect="mysql").statements
    assert not server.local_infile
    (hidden,) = classify("LOAD DATA LOCAL INFILE 'a' INTO TABLE t; DROP TABLE u", dialect="mysql").statements
    assert hidden.opaque is not None
    assert check(READ_ONLY, classify("SELECT /*M! 1 */ 2", dialect="mysql")) is not None


def test_functions_tables_and_unbounded():
    result = classify("DELETE FROM shop.orders WHERE 1 = 1", dialect="mysql")
    assert result.statements[0].unbounded == ("DELETE FROM shop.orders",)
    assert {"orders", "shop.orders"} <= result.tables
    assert "load_file" in classify("SELECT UPPER(LOAD_FILE('x'))", dialect="mysql").functions


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        classify("SELECT 1", dialect="oracle")  # type: ignore[arg-type]


def test_statement_text_is_never_logged(caplog):
    """A password in a statement sqlglot cannot parse must not reach the log through its warning."""
    classify("CREATE USER x IDENTIFIED BY 'hunter2-secret'", dialect="mysql")
    classify("ALTER USER y IDENTIFIED BY 'hunter3-secret'", dialect="mysql")
    assert "secret" not in caplog.text
