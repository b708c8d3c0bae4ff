"""Masking functions and selectors."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sqlgate.errors import ConfigError
from sqlgate.policy.masking import Masker, apply, email, keyed_hash, last4, null, redact


@pytest.mark.parametrize(
    ("function", "value", "expected"),
    [
        (redact, "secret", "****"),
        (redact, "", "****"),
        (redact, None, None),
        (email, "alice@example.com", "a***@example.com"),
        (email, "a.b+c@sub.example.org", "a***@sub.example.org"),
        (email, "x@y", "x***@y"),
        (email, "not-an-email", "****"),
        (email, "@example.com", "****"),
        (email, "odd@name@example.com", "o***@example.com"),
        (email, None, None),
        (last4, "4111111111111111", "****1111"),
        (last4, "12345", "****2345"),
        (last4, "1234", "****"),
        (last4, None, None),
        (null, "anything", None),
    ],
)
def test_functions(function, value, expected):
    assert function(value) == expected


def test_hash_is_hmac_sha256_and_keyed():
    expected = hmac.new(b"k1", b"alice", hashlib.sha256).hexdigest()
    assert keyed_hash(b"k1", "alice") == expected
    assert keyed_hash(b"k2", "alice") != expected
    assert keyed_hash(b"k1", None) is None


def test_selectors_choose_functions_by_column():
    masker = Masker(
        {
            "*.ssn": "redact",
            "customers.email": "email",
            "cust*.phone": "last4",
            "hr.salaries.amount": "null",
            "card": "last4",
        },
        hash_key=b"k",
    )
    columns = [
        ("customers", "id"),
        ("customers", "EMAIL"),
        ("public.customers", "email"),
        ("employees", "ssn"),
        (None, "ssn"),
        ("customers_eu", "phone"),
        ("hr.salaries", "amount"),
        ("salaries", "amount"),  # schema unknown: masked by the hr.salaries selector (fail closed)
        (None, "email"),
        ("orders", "card"),
    ]
    plan = masker.columns_to_mask(columns)
    assert {i: f.__name__ for i, f in plan.items()} == {
        1: "email",
        2: "email",
        3: "redact",
        4: "redact",
        5: "last4",
        6: "null",
        7: "null",
        9: "last4",
    }
    row = ["7", "bob@example.com", "c@d.e", "123-45-6789", "x", "5551234567", "100", "200", "e@f.g", "4242424242424242"]
    assert apply(plan, row) == [
        "7",
        "b***@example.com",
        "c***@d.e",
        "****",
        "****",
        "****4567",
        None,
        None,
        "e@f.g",
        "****4242",
    ]


def test_exact_selector_wins_over_glob():
    masker = Masker({"*.email": "redact", "customers.email": "email"})
    (function,) = masker.columns_to_mask([("customers", "email")]).values()
    assert function("a@b.c") == "a***@b.c"


def test_hash_needs_a_key():
    with pytest.raises(ConfigError, match="hash key"):
        Masker({"t.c": "hash"})
    masker = Masker({"t.c": "hash"}, hash_key=b"deployment")
    (function,) = masker.columns_to_mask([("t", "c")]).values()
    assert function("v") == keyed_hash(b"deployment", "v")


def test_unknown_function_is_refused():
    with pytest.raises(ConfigError, match="unknown masking function"):
        Masker({"t.c": "scramble"})


def test_no_mask_means_no_plan():
    masker = Masker({})
    assert not masker
    assert masker.columns_to_mask([("t", "c")]) == {}
    assert apply({}, ["a"]) == ["a"]
