"""Canonical JSON: the fast path gives exactly the bytes of the reference RFC 8785 encoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from sqlgate.audit.canonical import MAX_SAFE_INT, canonical_bytes, format_time, jsonable

safe_ints = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | safe_ints | floats | st.text()
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20
)


@given(json_values)
def test_matches_rfc8785_for_any_json(value):
    """Whatever path is taken, the bytes are the reference encoder's (after value-preserving conversion)."""
    assert canonical_bytes(value) == rfc8785.dumps(jsonable(value))


@given(st.dictionaries(st.text(), scalars, max_size=6))
def test_key_order_does_not_matter(value):
    reordered = dict(reversed(list(value.items())))
    assert canonical_bytes(value) == canonical_bytes(reordered)


def test_numbers_follow_rfc8785():
    assert (
        canonical_bytes({"a": 2.0, "b": -0.0, "c": 1e21, "d": 1e-7, "e": 0.5})
        == b'{"a":2,"b":0,"c":1e+21,"d":1e-7,"e":0.5}'
    )


def test_out_of_range_values_become_strings():
    """Integers beyond I-JSON's range and non-finite floats are kept as text, not refused."""
    assert canonical_bytes([2**60, float("nan")]) == b'["1152921504606846976","nan"]'


def test_non_json_types_are_converted():
    class Color(str, Enum):  # noqa: UP042 - the str-mixin kind, whose str() is not its value
        RED = "red"

    moment = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    value = {"when": moment, "raw": b"\x00\x01", "color": Color.RED, "pair": (1, 2), "set": {3}}
    assert canonical_bytes(value) == (
        b'{"color":"red","pair":[1,2],"raw":"AAE=","set":[3],"when":"2026-01-31T12:00:00.000000Z"}'
    )


def test_lone_surrogates_are_escaped_not_refused():
    assert canonical_bytes({"s": "a\ud800b"}) == b'{"s":"a\\\\ud800b"}'


def test_format_time_is_utc_with_microseconds():
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 31, 14, 0, tzinfo=plus_two)) == "2026-01-31T12:00:00.000000Z"
    naive = datetime(2026, 1, 31, 12, 0, 0, 5)  # noqa: DTZ001 - naive times are taken as UTC
    assert format_time(naive) == "2026-01-31T12:00:00.000005Z"
