r"""Result values as JSON, and masking of result columns by name.

asyncpg decodes each column to a Python value; :func:`converters` picks, once
per result shape, how each column becomes JSON (most need nothing). Values JSON
cannot hold exactly are sent as text: numeric (``Decimal``) keeps every digit,
``bytea`` is ``\\x``-prefixed hex, times are ISO 8601, non-finite floats are
``"NaN"``/``"Infinity"``.

Masking: asyncpg does not expose the table OID of a result column, so the API
cannot tell which table a column came from. It fails closed: every mask rule
applies to every column of that name, whatever its table (``customers.email``
masks any column named ``email``). Masked values are sent as text (or null).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from sqlgate.policy.masking import Masker, MaskFn

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


def converters(columns: Sequence[Column], masker: Masker | None) -> list[Converter | None]:
    """Per column: None when the value is JSON as it is, else the function that makes it JSON (or masks it)."""
    plan = masker.columns_to_mask([(None, name) for name, _type in columns]) if masker else {}
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
