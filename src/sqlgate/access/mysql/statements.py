"""What may run on a MySQL session: the grant's guardrails (shared), and the rules of this protocol.

Every COM_QUERY and COM_STMT_PREPARE text is classified with sqlglot's MySQL dialect
(:func:`sqlgate.policy.sql.classify`) and checked by the same
:func:`sqlgate.access.statements.guardrail_verdict` as every other front end, so
multi-statements, comments, executable comments and identity changes are handled
once. On top of that, for this protocol:

- ``USE`` and COM_INIT_DB may name only the granted database;
- ``LOAD DATA LOCAL INFILE`` runs only where the grant's guardrails allow both
  write and admin statements (the client sends one of its files; the server may
  ask for any file, so the gateway relays a file request only for such a statement);
- ``KILL [QUERY|CONNECTION] <id>`` is answered by the gateway itself (see
  :mod:`sqlgate.mysqlproxy.cancel`), never sent to the server as written;
- a grant that masks data refuses what masking cannot cover (:mod:`.masking`).

A refusal reaches the client as ERR 1142 with SQLSTATE 42000 naming the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlgate.access.statements import ALLOWED, Verdict, guardrail_verdict
from sqlgate.policy.model import Guardrails
from sqlgate.policy.sql import Classification, classify
from sqlgate.policy.sql.shape import literal_shape

_LOCAL_INFILE = "LOAD DATA LOCAL INFILE needs a grant that allows write and admin statements"
_CACHED = 1024
REFUSED_CODE = 1142
REFUSED_SQLSTATE = "42000"
_KILL = re.compile(
    r"^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(CONNECTION|QUERY)\s+)?(?:ID\s+)?(\d{1,19})\s*;?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Kill:
    """A KILL the gateway answers itself: the connection id the client saw, and whether only its query ends."""

    connection_id: int
    query_only: bool


@dataclass(frozen=True, slots=True)
class Checked:
    """The verdict on one text, with what the relay needs to know about it."""

    verdict: Verdict
    classification: Classification | None = None
    local_infile: bool = False
    kill: Kill | None = None


def shape_key(sql: str) -> str:
    """The text with its literals as markers where that is certain to keep its meaning (else the text itself).

    :func:`sqlgate.policy.sql.shape.literal_shape` reads one DML statement without
    comments, backslashes or ``$``; MySQL's ``#`` comments are refused here too, since a
    quote inside one would be read as a literal and hide what follows. Verdicts and
    masking analyses never depend on a literal's value, so texts of one shape share them.
    """
    if "#" in sql:
        return sql
    shape = literal_shape(sql)
    return sql if shape is None else "\0" + shape


class StatementPolicy:
    """One session's statement rules: its grant's guardrails, database and rule name."""

    def __init__(self, guardrails: Guardrails | None, *, database: str, rule: str | None, alias: str = "") -> None:
        self.guardrails = guardrails
        self.database = database  # the server's name for it: what USE and COM_INIT_DB may name
        self.alias = alias or database
        self.rule = rule
        self._cache: dict[str, Checked] = {}

    def check(self, sql: str) -> Checked:
        """The verdict on a COM_QUERY or COM_STMT_PREPARE text (remembered per text, or per literal shape)."""
        key = shape_key(sql)
        found = self._cache.get(key)
        if found is None:
            found = self._check(sql)
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[key] = found
        return found

    def _check(self, sql: str) -> Checked:
        kill = _KILL.match(sql)
        if kill is not None:
            return Checked(ALLOWED, kill=Kill(int(kill.group(2)), (kill.group(1) or "").upper() == "QUERY"))
        classification = classify(sql, "mysql")
        verdict = guardrail_verdict(self.guardrails, classification)
        if verdict.refusal is None and any(s.kind == "Use" for s in classification.statements):
            wrong = self._other_database(sql)
            if wrong is not None:
                verdict = Verdict(refusal=self.database_refusal(wrong))
        local = any(s.local_infile for s in classification.statements)
        if local and verdict.refusal is None and not self.allows_local_infile():
            verdict = Verdict(refusal=f"refused by guardrail: {_LOCAL_INFILE}")
        return Checked(verdict, classification, local_infile=local)

    def allows_local_infile(self) -> bool:
        """True when the grant's guardrails allow write and admin statements (LOAD DATA LOCAL INFILE may run)."""
        guardrails = self.guardrails
        if guardrails is None:
            return True
        return not {"write", "admin"} & set(guardrails.deny)

    def _other_database(self, sql: str) -> str | None:
        try:
            nodes = sqlglot.parse(sql, read="mysql")
        except (SqlglotError, RecursionError, ValueError, TypeError):
            return "?"
        for node in nodes:
            if isinstance(node, exp.Use):
                name = node.this.name if node.this is not None else ""
                if name != self.database:
                    return name
        return None

    def database_refusal(self, name: str) -> str:
        """Why a change to database ``name`` is refused."""
        return (
            f"refused by guardrail: this session may use its database {self.database} ({self.alias}) only, not {name}"
        )

    def message(self, refusal: str) -> str:
        """The ERR message for a refusal: the reason and the rule that granted the session."""
        return f"{refusal} (rule {self.rule})" if self.rule else refusal
