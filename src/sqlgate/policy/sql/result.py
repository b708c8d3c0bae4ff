"""What classification says about SQL: one :class:`Statement` per statement, in a :class:`Classification`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

Dialect = Literal["postgres", "mysql"]
CLASSES = ("read", "write", "ddl", "dcl", "admin", "transaction", "session")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement as the guardrails see it.

    ``classes`` may hold several (``SELECT pg_read_file(...)`` is read and admin).
    ``functions`` and ``tables`` are lower-cased, each both bare and schema-qualified
    when a schema was written. ``unbounded`` lists UPDATE/DELETE targets without a
    WHERE clause that names a column. ``identity`` says why a statement would change
    the session's identity (always refused); ``opaque`` why its effect cannot be seen
    (``DO`` blocks, dynamic SQL). ``prepares``/``executes``/``deallocates`` name
    prepared statements (``"*"`` for DEALLOCATE ALL). ``bound_settings`` lists the
    numbers of the bind parameters (``$1`` is 1) that name a setting ``set_config()``
    changes: only their values say whether the call changes the session's identity.
    """

    kind: str
    classes: frozenset[str]
    functions: frozenset[str] = frozenset()
    tables: frozenset[str] = frozenset()
    unbounded: tuple[str, ...] = ()
    identity: str | None = None
    opaque: str | None = None
    prepares: str | None = None
    executes: str | None = None
    deallocates: str | None = None
    cacheable: bool = True
    bound_settings: tuple[int, ...] = ()
    local_infile: bool = False  # MySQL LOAD DATA LOCAL INFILE: the client sends one of its files


@dataclass(frozen=True)
class Classification:
    """Every statement of one query string; ``error`` is set when the text does not parse."""

    statements: tuple[Statement, ...]
    dialect: Dialect = "postgres"
    error: str | None = None

    @property
    def parsed(self) -> bool:
        """True when the text parsed."""
        return self.error is None

    @cached_property
    def classes(self) -> frozenset[str]:
        """The union of the statements' classes."""
        return frozenset().union(*(s.classes for s in self.statements))

    @cached_property
    def functions(self) -> frozenset[str]:
        """Every function referenced anywhere."""
        return frozenset().union(*(s.functions for s in self.statements))

    @cached_property
    def tables(self) -> frozenset[str]:
        """Every table referenced anywhere."""
        return frozenset().union(*(s.tables for s in self.statements))

    @property
    def executes(self) -> tuple[str, ...]:
        """Names of prepared statements this text EXECUTEs (the caller looks up what they prepared)."""
        return tuple(s.executes for s in self.statements if s.executes)

    @property
    def cacheable(self) -> bool:
        """True when the classification may be reused for another text with the same shape (constants aside)."""
        return all(s.cacheable for s in self.statements)


def unparsable(message: str, dialect: Dialect) -> Classification:
    """The classification of text that does not parse."""
    first = (message.strip().splitlines() or ["syntax error"])[0][:200]
    return Classification((), dialect, error=first)
