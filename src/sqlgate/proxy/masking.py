"""Masking of result rows in flight: a plan per RowDescription, applied to each DataRow.

The plan names the columns to rewrite and the function for each. A column is
matched by its origin, not by the name it carries in the result: the table OID
and column number of the RowDescription are resolved through a catalog snapshot
taken when the session starts, so ``SELECT email AS e`` is still
``customers.email``. A column the server cannot attribute to a table (an
expression such as ``upper(email)``, or a table created after the snapshot) is
masked when its own name matches a rule, or when the statement's text mentions a
masked column: masking errs towards hiding.

Binary results: text-like types (text, varchar, char, name) have the same bytes in
binary and text format, so they are masked the same way; any other type of a
masked column is sent as NULL, which is valid in every format.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sqlgate.pgwire.backend import FieldDescription, data_row_values
from sqlgate.policy.masking import Masker as RuleMasker

MaskFunction = Callable[[str], str | None]

TEXT_LIKE_TYPES = frozenset({25, 1043, 1042, 19, 18})
_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_NULL = _INT32.pack(-1)


@dataclass(frozen=True, slots=True)
class MaskedColumn:
    """One column of a result to rewrite."""

    index: int
    function: MaskFunction
    text_like: bool


@dataclass(frozen=True, slots=True)
class MaskPlan:
    """The masked columns of one result shape, by position."""

    columns: Mapping[int, MaskedColumn]


class Catalog(NamedTuple):
    """Table names by OID and column names by (table OID, column number), from one database."""

    tables: Mapping[int, str]
    columns: Mapping[tuple[int, int], str]


class RuleSelector:
    """A grant's mask rules as a column selector (``hash`` keyed per deployment)."""

    def __init__(self, rules: Mapping[str, str], *, key: bytes) -> None:
        self._masker = RuleMasker(rules, hash_key=key)
        self._tables = {selector.rsplit(".", 1)[0] for selector in rules if "." in selector}
        names = sorted({s.rsplit(".", 1)[-1].lower() for s in rules if "*" not in s.rsplit(".", 1)[-1]})
        self._mention = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE) if names else None
        self._chosen: dict[tuple[str | None, str], MaskFunction | None] = {}

    def __call__(self, table: str | None, column: str) -> MaskFunction | None:
        """The function for ``table.column``; an unknown table matches every rule on the column's name."""
        key = (table, column)
        if key not in self._chosen:
            tables = [table] if table is not None else [None, *self._tables]
            plans = (self._masker.columns_to_mask([(t, column)]) for t in tables)
            self._chosen[key] = next((plan[0] for plan in plans if 0 in plan), None)
        return self._chosen[key]

    def mentioned(self, sql: str) -> MaskFunction | None:
        """The function of the first masked column whose name ``sql`` mentions, if any."""
        match = self._mention.search(sql) if self._mention is not None and sql else None
        return self(None, match.group(1).lower()) if match else None


class Masker:
    """Builds plans for one session from its grant's mask rules and the database's catalog."""

    def __init__(self, select: RuleSelector, catalog: Catalog) -> None:
        self.select = select
        self.catalog = catalog

    def plan(self, fields: Iterable[FieldDescription], sql: str) -> MaskPlan | None:
        """The plan for rows described by ``fields`` of statement ``sql``; None when no column is masked."""
        columns: dict[int, MaskedColumn] = {}
        for index, column in enumerate(fields):
            function = self._function(column, sql)
            if function is not None:
                columns[index] = MaskedColumn(index, function, column.type_oid in TEXT_LIKE_TYPES)
        return MaskPlan(columns) if columns else None

    def _function(self, column: FieldDescription, sql: str) -> MaskFunction | None:
        table = self.catalog.tables.get(column.table_oid) if column.table_oid else None
        if table is not None:
            name = self.catalog.columns.get((column.table_oid, column.column_attnum), column.name)
            return self.select(table, name)
        return self.select(None, column.name) or self.select.mentioned(sql)


def mask_data_row(payload: memoryview, plan: MaskPlan) -> bytes:
    """The whole DataRow message (type byte and length included) with the plan's columns rewritten."""
    values = data_row_values(payload)
    parts = [_INT16.pack(len(values))]
    for index, value in enumerate(values):
        column = plan.columns.get(index)
        out = _masked(column, value) if column is not None and value is not None else value
        parts.append(_NULL if out is None else _INT32.pack(len(out)) + out)
    body = b"".join(parts)
    return b"D" + _INT32.pack(len(body) + 4) + body


def _masked(column: MaskedColumn, value: bytes) -> bytes | None:
    if not column.text_like:
        return None
    result = column.function(value.decode("utf-8", "replace"))
    return None if result is None else result.encode()
