r"""Result values as JSON, and masking of result columns by name.

asyncpg decodes each column to a Python value; :func:`converters` picks, once
per result shape, how each column becomes JSON (most need nothing). Values JSON
cannot hold exactly are sent as text: numeric (``Decimal``) keeps every digit,
``bytea`` is ``\\x``-prefixed hex, times are ISO 8601, non-finite floats are
``"NaN"``/``"Infinity"``.

Masking: each result column is matched by its origin (``schema.table`` and the
column's real name, from :mod:`sqlgate.api.origins`), so an alias does not hide
it. A column without an origin (an expression) fails closed: it is masked when
its own name matches any rule's column, or when the statement's text names a
masked column (``SELECT upper(email) ...``). Masked values are sent as text (or null).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from sqlgate.api.origins import Origin
from sqlgate.policy.masking import FUNCTIONS, Masker, MaskFn

Converter = Callable[[Any], Any]
Column = tuple[str, str]
"""(name, type name) of a result column."""

_PLAIN_TYPES = frozenset(
    {
        "int2",
        "int4",
        "int8",
        "text",
        "varchar",
        "bpchar",
        "name",
        "bool",
        "char",
        "oid",
        "json",
        "jsonb",
        "xml",
    }
)


def to_json(value: Any) -> Any:
    """One decoded value as JSON-ready data."""
    if value is None or isinstance(value, str | bool | int):
        return value
    for kinds, convert in _CONVERSIONS:
        if isinstance(value, kinds):
            return convert(value)
    return str(value)


def _float(value: float) -> Any:
    return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace("nan", "NaN")


_CONVERSIONS: tuple[tuple[type | tuple[type, ...], Converter], ...] = (
    (float, _float),
    ((datetime, date, time), lambda value: value.isoformat()),
    ((bytes, bytearray, memoryview), lambda value: "\\x" + bytes(value).hex()),
    ((list, tuple), lambda value: [to_json(item) for item in value]),
    (dict, lambda value: {str(key): to_json(item) for key, item in value.items()}),
)


def _masked(function: MaskFn) -> Converter:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        return function(value if isinstance(value, str) else str(to_json(value)))

    return convert


def column_masker(mask: Mapping[str, str], hash_key: bytes) -> Masker | None:
    """A masker whose rules match by column name only (see the module docstring); None without rules."""
    if not mask:
        return None
    key = (tuple(mask.items()), hash_key)
    masker = _MASKERS.get(key)
    if masker is None:
        by_column: dict[str, str] = {}
        for selector, function in mask.items():
            by_column.setdefault("*." + selector.rpartition(".")[2], function)
        masker = Masker(by_column, hash_key=hash_key)
        if len(_MASKERS) >= _MAX_MASKERS:
            _MASKERS.clear()
        _MASKERS[key] = masker
    return masker


_MASKERS: dict[tuple[tuple[tuple[str, str], ...], bytes], Masker] = {}
_MAX_MASKERS = 256


def mask_plan(
    columns: Sequence[Column], origins: Sequence[Origin] | None, mask: Mapping[str, str], hash_key: bytes, sql: str
) -> dict[int, MaskFn]:
    """Column index -> masking function for one result (see the module docstring for unattributed columns)."""
    by_name = column_masker(mask, hash_key)
    if by_name is None:
        return {}
    by_origin = table_masker(mask, hash_key)
    plan: dict[int, MaskFn] = {}
    for index, (name, _type) in enumerate(columns):
        origin = origins[index] if origins is not None and index < len(origins) else None
        if origin is not None:
            function = by_origin.columns_to_mask([origin]).get(0)
        else:
            function = by_name.columns_to_mask([(None, name)]).get(0) or _mentioned(sql, mask, by_name)
        if function is not None:
            plan[index] = function
    return plan


def _mentioned(sql: str, mask: Mapping[str, str], by_name: Masker) -> MaskFn | None:
    """The function of the first masked column the statement's text names (a computed column may hold it)."""
    for selector in mask:
        column = selector.rpartition(".")[2]
        if any(ch in column for ch in "*?["):
            return FUNCTIONS["redact"]
        if re.search(rf"(?<![\w$]){re.escape(column)}(?![\w$])", sql, re.IGNORECASE):
            return by_name.columns_to_mask([(None, column)]).get(0)
    return None


def table_masker(mask: Mapping[str, str], hash_key: bytes) -> Masker:
    """The grant's masker matching ``schema.table``/column origins (cached per mask map)."""
    key = (tuple(mask.items()), hash_key, "table")
    masker = _BY_TABLE.get(key)
    if masker is None:
        if len(_BY_TABLE) >= _MAX_MASKERS:
            _BY_TABLE.clear()
        masker = _BY_TABLE[key] = Masker(mask, hash_key=hash_key)
    return masker


_BY_TABLE: dict[tuple[tuple[tuple[str, str], ...], bytes, str], Masker] = {}


def converters(columns: Sequence[Column], plan: Mapping[int, MaskFn]) -> list[Converter | None]:
    """Per column: None when the value is JSON as it is, else the function that makes it JSON (or masks it)."""
    result: list[Converter | None] = []
    for index, (_name, type_name) in enumerate(columns):
        function = plan.get(index)
        if function is not None:
            result.append(_masked(function))
        else:
            result.append(None if type_name in _PLAIN_TYPES else to_json)
    return result


def row_to_json(row: Sequence[Any], plan: Sequence[Converter | None]) -> list[Any]:
    """One row as a JSON array, converted (and masked) per ``plan``."""
    return [value if convert is None else convert(value) for value, convert in zip(row, plan, strict=True)]
