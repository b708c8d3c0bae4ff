"""Canonical JSON: the fast path gives exactly the bytes of the reference RFC 8785 encoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from enum import Enum

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.audit.canonical import (
    MAX_SAFE_INT,
    CanonicalDict,
    canonical_bytes,
    format_time,
    format_unix_time,
    jsonable,
)
from sqlgate.audit.chain import Chainer
from sqlgate.audit.events import AuditEvent, PrincipalRef
from sqlgate.audit.pipeline import Pipeline
from sqlgate.audit.redact import redact_data, redact_text, redact_value

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


keys = st.text() | safe_ints | st.sampled_from(["password", "api_key", "sql", "params", "Authorization", "é"])
event_data = st.dictionaries(
    keys,
    st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)),
    max_size=6,
)


@given(event_data, st.text(), st.text() | st.none())
def test_chained_record_body_is_rfc8785_of_the_redacted_record(data, subject, reason):
    """Redaction converts as it copies; the chain then encodes at once. The bytes are still the reference's."""
    event = AuditEvent(
        type="statement",
        principal=PrincipalRef(subject=subject, issuer="https://idp", groups=[subject]),
        reason=reason,
    ).model_copy(update={"data": data})  # unvalidated, as the proxy builds its events: keys of any type
    record = Pipeline().prepare(event)
    chained = Chainer("c1")(record)
    reference = {**record, "data": redact_value(data), "reason": None if reason is None else redact_text(reason)}
    assert chained.body.encode() == rfc8785.dumps(jsonable(reference))


def test_redacted_data_is_marked_canonical_only_when_it_is():
    assert type(redact_data({"b": 1, "a": [0.5, "x"], "c": {"z": None, "y": True}})) is CanonicalDict
    assert type(redact_data({"big": 1e300})) is not CanonicalDict  # Python spells it unlike RFC 8785
    assert type(redact_data({"ключ": 1})) is not CanonicalDict  # non-ASCII keys sort by UTF-16 units
    assert list(redact_data({"b": 1, "a": {"d": 1, "c": 2}})["a"]) == ["c", "d"]


@given(st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)))  # noqa: DTZ001 - hypothesis bounds are naive
def test_format_time_matches_isoformat(moment):
    assert format_time(moment) == moment.isoformat(timespec="microseconds")[:-6] + "Z"


@settings(max_examples=500)
@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))  # up to 2100
def test_a_posix_time_formats_as_its_datetime_does(seconds):
    fast = datetime.fromisoformat(format_unix_time(seconds))
    reference = datetime.fromisoformat(format_time(datetime.fromtimestamp(seconds, UTC)))
    assert abs((fast - reference).total_seconds()) <= 1e-6  # float rounding may differ by a microsecond
