"""Masking: column selectors mapped to functions on text values.

A decision carries a rule's ``mask`` map (``{"customers.email": "email",
"*.ssn": "redact"}``). The proxy names each result column by table (from the
RowDescription's table OID) and column; the HTTP API has the names already.
:meth:`Masker.columns_to_mask` says which columns to mask with which function,
once per result shape; the functions then run on each value. Pure and fast.

Selectors are ``table.column``, ``schema.table.column``, ``*.column`` or a bare
``column`` (any table), globs allowed, matched without regard to case. A selector
without glob characters wins over one with them; otherwise the first in the map.
A column whose table is unknown (an expression) matches only ``*`` selectors; a
table named without its schema matches schema-qualified selectors by table name
(masking too much rather than too little).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from fnmatch import translate
from functools import partial

from sqlgate.errors import ConfigError

MaskFn = Callable[[str | None], str | None]
REDACTED = "****"


def redact(value: str | None) -> str | None:
    """Any value -> ``****`` (NULL stays NULL)."""
    return None if value is None else REDACTED


def email(value: str | None) -> str | None:
    """``alice@example.com`` -> ``a***@example.com``; a value without ``@`` is redacted."""
    if value is None:
        return None
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return REDACTED
    return f"{local[0]}***@{domain}"


def last4(value: str | None) -> str | None:
    """``4111111111111111`` -> ``****1111``; values of four characters or fewer are redacted whole."""
    if value is None:
        return None
    return f"{REDACTED}{value[-4:]}" if len(value) > 4 else REDACTED


def null(value: str | None) -> str | None:
    """Any value -> NULL."""
    del value
    return None


def keyed_hash(key: bytes, value: str | None) -> str | None:
    """HMAC-SHA256 of the value under the deployment's key, as hex: equal values stay joinable."""
    if value is None:
        return None
    return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


FUNCTIONS: dict[str, MaskFn] = {"redact": redact, "email": email, "last4": last4, "null": null}


class _Selector:
    """One compiled selector."""

    __slots__ = ("column", "exact", "function", "table", "table_any", "table_bare")

    def __init__(self, selector: str, function: MaskFn) -> None:
        table, _, column = selector.lower().rpartition(".")
        self.table_any = table in {"", "*"}
        self.table = re.compile(translate(table or "*"))
        self.table_bare = re.compile(translate(table.rpartition(".")[2] or "*"))
        self.column = re.compile(translate(column))
        self.exact = not any(ch in selector for ch in "*?[")
        self.function = function

    def matches(self, table: str | None, column: str) -> bool:
        if not self.column.match(column):
            return False
        if table is None:
            return self.table_any
        if "." not in table:  # schema unknown: a schema-qualified selector matches by table name (fail closed)
            return bool(self.table_bare.match(table))
        return bool(self.table.match(table) or self.table.match(table.rpartition(".")[2]))


class Masker:
    """The masking of one grant: built from a decision's ``mask`` map and the deployment's hash key."""

    def __init__(self, mask: Mapping[str, str], *, hash_key: bytes | None = None) -> None:
        selectors = []
        for selector, name in mask.items():
            selectors.append(_Selector(selector, self._function(name, hash_key)))
        self._selectors = sorted(selectors, key=lambda s: not s.exact)  # stable: file order within each group
        self._plans: dict[tuple[tuple[str | None, str], ...], dict[int, MaskFn]] = {}

    @staticmethod
    def _function(name: str, hash_key: bytes | None) -> MaskFn:
        if name == "hash":
            if not hash_key:
                raise ConfigError("masking function `hash` needs the deployment's hash key, and none was given")
            return partial(keyed_hash, hash_key)
        try:
            return FUNCTIONS[name]
        except KeyError:
            raise ConfigError(f"unknown masking function {name!r} (redact, email, last4, hash, null)") from None

    def __bool__(self) -> bool:
        return bool(self._selectors)

    def columns_to_mask(self, columns: Sequence[tuple[str | None, str]]) -> dict[int, MaskFn]:
        """Column index -> masking function, for a result whose columns are (table or None, column)."""
        if not self._selectors:
            return {}
        key = tuple((t.lower() if t else None, c.lower()) for t, c in columns)
        plan = self._plans.get(key)
        if plan is None:
            plan = {}
            for index, (table, column) in enumerate(key):
                chosen = next((s for s in self._selectors if s.matches(table, column)), None)
                if chosen is not None:
                    plan[index] = chosen.function
            if len(self._plans) < 1024:
                self._plans[key] = plan
        return plan


def apply(plan: Mapping[int, MaskFn], row: Sequence[str | None]) -> list[str | None]:
    """``row`` with the planned columns masked."""
    if not plan:
        return list(row)
    return [plan[i](value) if i in plan else value for i, value in enumerate(row)]
