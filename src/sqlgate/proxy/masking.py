"""Masking of result rows in flight: a plan per RowDescription, applied to each DataRow.

The plan names the columns to rewrite and the function for each. Columns are
matched by table and column name; the table comes from the column's table OID,
resolved through a catalog snapshot taken when the session starts. A column the
server cannot attribute to a table (an expression, or a table created after the
snapshot) is matched by its name alone, so masking errs towards hiding.

Binary results: text-like types (text, varchar, char, name) have the same bytes in
binary and text format, so they are masked the same way; any other type of a
masked column is sent as NULL, which is valid in every format.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlgate.pgwire.backend import FieldDescription, data_row_values
from sqlgate.policy.masking import Masker as RuleMasker

MaskFunction = Callable[[str], str | None]
Selector = Callable[[str | None, str], MaskFunction | None]
"""``(table or None when unknown, column) -> the mask function, or None to leave the column alone``."""

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


class Masker:
    """Builds plans for one session from its grant's mask rules and the database's table names."""

    def __init__(self, select: Selector, table_names: Mapping[int, str]) -> None:
        self.select = select
        self.table_names = table_names

    def plan(self, fields: Iterable[FieldDescription]) -> MaskPlan | None:
        """The plan for rows described by ``fields``; None when no column is masked."""
        columns: dict[int, MaskedColumn] = {}
        for index, column in enumerate(fields):
            table = self.table_names.get(column.table_oid) if column.table_oid else None
            function = self.select(table, column.name)
            if function is not None:
                columns[index] = MaskedColumn(index, function, column.type_oid in TEXT_LIKE_TYPES)
        return MaskPlan(columns) if columns else None


def selector_for(rules: Mapping[str, str], *, key: bytes) -> Selector:
    """A selector for a grant's mask rules; a column of unknown table matches every rule on its name."""
    rule_masker = RuleMasker(rules, hash_key=key)
    tables = {selector.rsplit(".", 1)[0] for selector in rules if "." in selector}
    chosen: dict[tuple[str | None, str], MaskFunction | None] = {}

    def select(table: str | None, column: str) -> MaskFunction | None:
        if (table, column) not in chosen:
            candidates = [(table, column)] if table is not None else [(None, column), *((t, column) for t in tables)]
            plans = (rule_masker.columns_to_mask([candidate]) for candidate in candidates)
            chosen[(table, column)] = next((plan[0] for plan in plans if 0 in plan), None)
        return chosen[(table, column)]

    return select


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
