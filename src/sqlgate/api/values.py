r"""Result values as JSON, and masking of result columns by name.

asyncpg decodes each column to a Python value; :func:`converters` picks, once
per result shape, how each column becomes JSON (most need nothing). Values JSON
cannot hold exactly are sent as text: numeric (``Decimal``) keeps every digit,
``bytea`` is ``\\x``-prefixed hex, times are ISO 8601, non-finite floats are
``"NaN"``/``"Infinity"``.

Composite values (a whole row) become JSON objects. Masking follows the plan
:mod:`sqlgate.access.masking` makes from the statement's column lineage, the same
plan the wire proxy applies; masked values are sent as text (or null).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from functools import partial
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from sqlgate.access.masking import TEXT_LIKE_TYPE_NAMES, ColumnMask, Plan, mask_value

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
    (asyncpg.Record, lambda value: {str(key): to_json(item) for key, item in value.items()}),  # a composite value
)


def converters(columns: Sequence[Column], plan: Plan) -> list[Converter | None]:
    """Per column: None when the value is JSON as it is, else the function that makes it JSON (or masks it)."""
    result: list[Converter | None] = []
    for index, (_name, type_name) in enumerate(columns):
        mask = plan.get(index)
        if mask is not None:
            result.append(partial(_masked, mask))
        else:
            result.append(None if type_name in _PLAIN_TYPES else to_json)
    return result


def _masked(mask: ColumnMask, value: Any) -> Any:
    return mask_value(mask, value, value if isinstance(value, str) else None)


def text_like(type_name: str) -> bool:
    """True for the types whose values masking functions can rewrite as text."""
    return type_name in TEXT_LIKE_TYPE_NAMES


def row_to_json(row: Sequence[Any], plan: Sequence[Converter | None]) -> list[Any]:
    """One row as a JSON array, converted (and masked) per ``plan``."""
    return [value if convert is None else convert(value) for value, convert in zip(row, plan, strict=True)]
