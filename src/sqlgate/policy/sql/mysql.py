"""Classify MySQL and MariaDB statements with sqlglot's MySQL dialect.

sqlglot parses what it knows into expressions and the rest into a ``Command``
keeping the leading keyword; commands are classed by that keyword and anything
unrecognised is opaque (refused unless the grant allows ddl). MySQL executes
``/*! ... */`` comments (MariaDB ``/*M! ... */`` too), so text holding one is opaque too.

Statements that would change whose session it is are identity changes, refused
whatever the grant: ``SET ROLE``, ``SET DEFAULT ROLE``, ``SET PASSWORD``, ``SET
SESSION AUTHORIZATION``, ``CHANGE USER`` and ``CREATE``/``ALTER USER ... IDENTIFIED``.
``LOAD DATA [LOCAL] INFILE`` and ``LOAD XML``, which sqlglot does not parse, are
recognised by their keywords: write and admin, with ``local_infile`` set for the
LOCAL form (the client sends a file of its own).
"""

from __future__ import annotations

import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlgate.policy.sql.catalog import ADMIN, DCL, DDL, READ, SESSION, TRANSACTION, WRITE
from sqlgate.policy.sql.result import Classification, Statement, unparsable

_EXPRESSION_CLASSES: tuple[tuple[type[exp.Expression], frozenset[str]], ...] = (
    (exp.Select, READ),
    (exp.Union, READ),
    (exp.Intersect, READ),
    (exp.Except, READ),
    (exp.Show, READ),
    (exp.Describe, READ),
    (exp.Insert, WRITE),
    (exp.Update, WRITE),
    (exp.Delete, WRITE),
    (exp.Merge, WRITE),
    (exp.TruncateTable, WRITE),
    (exp.Create, DDL),
    (exp.Drop, DDL),
    (exp.Alter, DDL),
    (exp.Transaction, TRANSACTION),
    (exp.Commit, TRANSACTION),
    (exp.Rollback, TRANSACTION),
    (exp.Use, SESSION),
    (exp.Kill, ADMIN),
)
_COMMAND_CLASSES = {
    "GRANT": DCL,
    "REVOKE": DCL,
    "REPLACE": WRITE,
    "CALL": WRITE,
    "LOAD": frozenset({"write", "admin"}),
    **dict.fromkeys(
        ("KILL", "SHUTDOWN", "FLUSH", "INSTALL", "UNINSTALL", "RESET", "PURGE", "CHANGE", "ANALYZE", "OPTIMIZE"),
        ADMIN,
    ),
    **dict.fromkeys(("REPAIR", "CHECK", "CHECKSUM", "START", "STOP", "LOCK", "UNLOCK"), ADMIN),
}


class _NoStatementText(logging.Filter):
    """Drop sqlglot's "contains unsupported syntax" warnings: they quote the statement, which may hold a password."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "unsupported syntax" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoStatementText())

_ADMIN_FUNCTIONS = frozenset({"load_file", "sys_exec", "sys_eval"})
_USER_OBJECT = re.compile(r"^\s*(USER|ROLE)\b", re.IGNORECASE)
_IDENTITY_SET = re.compile(r"^\s*(ROLE|DEFAULT\s+ROLE|PASSWORD|SESSION\s+AUTHORIZATION)\b", re.IGNORECASE)
_IDENTIFIED_USER = re.compile(r"^\s*USER\b.*\bIDENTIFIED\b", re.IGNORECASE | re.DOTALL)
_CHANGE_USER = re.compile(r"^\s*CHANGE\s+USER\b", re.IGNORECASE)
_LOAD = re.compile(r"^\s*LOAD\s+(?:DATA|XML)\s+(?:(?:LOW_PRIORITY|CONCURRENT)\s+)?(LOCAL\s+)?INFILE\b", re.IGNORECASE)
_EXECUTABLE_COMMENTS = ("/*!", "/*M!", "/*m!")


def classify_mysql(sql: str) -> Classification:
    """Classify every statement of ``sql`` for a MySQL or MariaDB target."""
    if any(marker in sql for marker in _EXECUTABLE_COMMENTS):
        return Classification(
            (Statement("Command", DDL, opaque="MySQL executable comments /*! */ cannot be checked"),), "mysql"
        )
    special = _special(sql)
    if special is not None:
        return Classification((special,), "mysql")
    try:
        expressions = sqlglot.parse(sql, read="mysql")
    except (SqlglotError, RecursionError, ValueError, TypeError) as exc:
        return unparsable(str(exc), "mysql")
    statements = []
    for node in expressions:
        if isinstance(node, exp.Expression):
            statements.append(_statement(node))
        elif node is not None:
            statements.append(Statement(type(node).__name__, DDL, opaque="an unrecognised statement cannot be checked"))
    return Classification(tuple(statements), "mysql")


def _statement(node: exp.Expression) -> Statement:
    if isinstance(node, exp.Command):
        return _command(node)
    known = next((c for kind, c in _EXPRESSION_CLASSES if isinstance(node, kind)), None)
    if known is None and isinstance(node, exp.Set):
        if "PASSWORD" in node.sql(dialect="mysql").upper().split("=", 1)[0]:
            return Statement("Set", DCL, identity="SET PASSWORD would change a login's password")
        known = _set_classes(node)
    if known is None:
        return Statement(type(node).__name__, DDL, opaque="a statement sqlglot does not recognise cannot be checked")
    classes = set(known)
    if any(isinstance(n, exp.Insert | exp.Update | exp.Delete | exp.Merge) for n in node.walk()):
        classes.add("write")
    if isinstance(node, exp.Select) and node.args.get("locks"):
        classes.add("write")
    functions = _functions(node)
    if functions & _ADMIN_FUNCTIONS:
        classes.add("admin")
    return Statement(
        type(node).__name__,
        frozenset(classes),
        functions=functions,
        tables=_tables(node),
        unbounded=_unbounded(node),
    )


def _special(sql: str) -> Statement | None:
    """Statements sqlglot does not parse, recognised by their leading keywords (one statement only)."""
    if _CHANGE_USER.match(sql):
        return Statement("Command", DCL, identity="CHANGE USER would change the session's identity")
    load = _LOAD.match(sql)
    if load is not None:
        if ";" in sql.strip().rstrip(";"):
            return Statement("Command", DDL, opaque="LOAD DATA must be sent alone, without other statements")
        local = load.group(1) is not None
        return Statement("Command", frozenset({"write", "admin"}), local_infile=local)
    return None


def _command(node: exp.Command) -> Statement:
    keyword = str(node.this).upper()
    rest = node.expression.sql() if isinstance(node.expression, exp.Expression) else str(node.expression or "")
    if keyword == "SET":
        found = _IDENTITY_SET.match(rest)
        if found is not None:
            what = " ".join(found.group(1).upper().split())
            return Statement("Command", SESSION, identity=f"SET {what} would change the session's identity")
        return Statement("Command", DCL)
    if keyword in {"CREATE", "ALTER"} and _IDENTIFIED_USER.match(rest):
        return Statement("Command", DCL, identity=f"{keyword} USER ... IDENTIFIED sets a login's password")
    if keyword in {"CREATE", "DROP", "ALTER", "RENAME"}:
        return Statement("Command", DCL if _USER_OBJECT.match(rest) else DDL)
    classes = _COMMAND_CLASSES.get(keyword)
    if classes is None:
        return Statement("Command", DDL, opaque=f"{keyword} statements cannot be checked")
    return Statement("Command", classes)


def _set_classes(node: exp.Set) -> frozenset[str]:
    text = node.sql(dialect="mysql").upper()
    if "GLOBAL" in text or "PERSIST" in text:
        return ADMIN
    if "PASSWORD" in text:
        return DCL
    return SESSION


def _functions(node: exp.Expression) -> frozenset[str]:
    names = set()
    for func in node.find_all(exp.Func):
        name = func.name if isinstance(func, exp.Anonymous) else func.sql_name()
        names.add(str(name).lower())
    return frozenset(names)


def _tables(node: exp.Expression) -> frozenset[str]:
    names = set()
    for table in node.find_all(exp.Table):
        if table.name:
            names.add(table.name.lower())
            if table.db:
                names.add(f"{table.db}.{table.name}".lower())
    return frozenset(names)


def _unbounded(node: exp.Expression) -> tuple[str, ...]:
    found = []
    for stmt in node.walk():
        if isinstance(stmt, exp.Update | exp.Delete):
            where = stmt.args.get("where")
            if where is None or where.find(exp.Column) is None:
                target = stmt.this.sql(dialect="mysql") if stmt.this else "?"
                found.append(f"{'UPDATE' if isinstance(stmt, exp.Update) else 'DELETE FROM'} {target}")
    return tuple(found)
