"""Canonical JSON (RFC 8785) for audit records, fast.

:func:`canonical_bytes` gives exactly the bytes of ``rfc8785.dumps`` but takes
``orjson`` whenever that is provably identical: :func:`jsonable`
first turns a record into plain JSON values (integral floats become integers,
integers beyond the I-JSON range become strings, other types become strings)
and notes anything whose canonical spelling ``orjson`` cannot produce (floats
outside 1e-4..1e16, non-ASCII object keys, which RFC 8785 orders by UTF-16
code units). Those rare records go through the ``rfc8785`` package.
Redaction builds its copy of an event's data in this plain, key-sorted form
(:class:`CanonicalDict`), so the hot path converts and checks each value once.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
import rfc8785

MAX_SAFE_INT = 2**53 - 1


class CanonicalDict(dict[str, Any]):
    """A dict already in canonical shape: plain JSON values, ASCII keys sorted at every level.

    Made by code that converts as it copies (redaction does); the encoder then
    writes it as it is, without walking it again to check.
    """


class Slow:
    """Set when a value needs the reference encoder."""

    __slots__ = ("needed",)

    def __init__(self) -> None:
        self.needed = False


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``value`` (converted by :func:`jsonable` first)."""
    if _is_plain(value):
        raw = encode_plain(value)
        if raw is not None:
            return raw
    slow = Slow()
    plain = _plain(value, slow)
    if slow.needed:
        return bytes(rfc8785.dumps(plain))
    return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)  # ASCII keys: code-point order is RFC 8785's


def encode_plain(value: Any) -> bytes | None:
    """Canonical bytes of ``value``, known to be plain and key-sorted; None when it holds a lone surrogate."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # a lone surrogate: _plain escapes it
        return None


def _is_plain(value: Any) -> bool:
    """True when ``json`` encodes ``value`` exactly as RFC 8785 does, keys in the order given (no copies)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is dict:
        return _is_plain_object(value)
    if kind is list:
        return _is_plain_list(value)
    if kind is int:
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT  # type: ignore[no-any-return]
    if kind is float:
        return math.isfinite(value) and not value.is_integer() and 1e-4 <= abs(value) < 1e16
    return False


def _is_plain_list(value: list[Any]) -> bool:
    for item in value:  # noqa: SIM110 - a plain loop is measurably faster than all() here
        if type(item) is not str and not _is_plain(item):
            return False
    return True


def _is_plain_object(value: dict[Any, Any]) -> bool:
    keys = list(value)
    try:
        if keys != sorted(keys) or not "".join(keys).isascii():
            return False
    except TypeError:  # keys that are not all strings
        return False
    for item in value.values():  # noqa: SIM110 - a plain loop is measurably faster than all() here
        if type(item) is not str and item is not None and not _is_plain(item):
            return False
    return True


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values that canonicalise the same way everywhere."""
    return _plain(value, Slow())


def format_time(moment: datetime) -> str:
    """A UTC timestamp with microseconds, ``2026-01-31T12:00:00.000000Z``: sortable as text."""
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    second = moment.timestamp() // 1
    prefix = _second_prefix.get(second)
    if prefix is None:  # a new second: ``2026-01-31T12:00:00.``, kept until the next one
        _second_prefix.clear()
        prefix = _second_prefix[second] = moment.replace(microsecond=0).isoformat()[:-6] + "."
    return f"{prefix}{moment.microsecond:06d}Z"


def format_unix_time(seconds: float) -> str:
    """:func:`format_time` of a POSIX timestamp (``time.time()``), without making a datetime per call."""
    whole = seconds // 1
    micro = round((seconds - whole) * 1_000_000)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    prefix = _second_prefix.get(whole)
    if prefix is None:
        _second_prefix.clear()
        prefix = _second_prefix[whole] = datetime.fromtimestamp(whole, UTC).isoformat()[:-6] + "."
    return f"{prefix}{micro:06d}Z"


_second_prefix: dict[float, str] = {}


def _plain(value: Any, slow: Slow) -> Any:  # noqa: PLR0911 - one branch per JSON type reads best
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return plain_text(value)
    if kind is int:
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if kind is float:
        return plain_number(value, slow)
    if isinstance(value, Mapping):
        return _object(value, slow)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item, slow) for item in value]
    return _plain(plain_other(value), slow)


def _object(value: Mapping[Any, Any], slow: Slow) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if type(key) is str else str(key)
        if not name.isascii():
            slow.needed = True
            name = plain_text(name)
        out[name] = _plain(item, slow)
    return out


def plain_text(value: str) -> str:
    """``value`` as UTF-8-safe text: lone surrogates become backslash escapes."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates cannot be stored as UTF-8
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def plain_number(value: float, slow: Slow) -> Any:
    """``value`` as a JSON number (integral floats as integers); sets ``slow`` when only RFC 8785 spells it right."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return int(value)
    if value.is_integer() or not 1e-4 <= abs(value) < 1e16:
        slow.needed = True  # Python spells these unlike ECMAScript (2e16 vs 20000000000000000)
    return value


def plain_other(value: Any) -> Any:  # noqa: PLR0911 - one branch per foreign type
    """A value of a non-JSON type as the JSON value that stands for it (text, mostly)."""
    if isinstance(value, int):  # bool is handled earlier; this is an int subclass such as IntEnum
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass such as an Enum member: its plain text
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)
