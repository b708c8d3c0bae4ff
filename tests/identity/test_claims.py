"""Registered-claim rules: leeway, maximum token age, required claims, audience lists."""

from __future__ import annotations

import pytest

from sqlgate.config import IssuerConfig
from sqlgate.errors import TokenRejected
from sqlgate.identity.claims import ClaimRules, check_claims

NOW = 1_900_000_000.0
RULES = ClaimRules(issuer="https://idp", audiences=frozenset({"sqlgate", "api"}), leeway=30.0)


def claims(**changes):
    base = {"iss": "https://idp", "aud": "sqlgate", "sub": "alice", "iat": NOW - 10, "exp": NOW + 60}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_good_claims_pass():
    check_claims(claims(aud=["other", "api"], nbf=NOW), RULES, NOW)


@pytest.mark.parametrize(
    ("changes", "ok"),
    [
        ({"exp": NOW - 29}, True),
        ({"exp": NOW - 31}, False),
        ({"nbf": NOW + 29}, True),
        ({"nbf": NOW + 31}, False),
        ({"iat": NOW + 29}, True),
        ({"iat": NOW + 31}, False),
    ],
)
def test_leeway(changes, ok):
    if ok:
        check_claims(claims(**changes), RULES, NOW)
    else:
        with pytest.raises(TokenRejected):
            check_claims(claims(**changes), RULES, NOW)


def test_max_token_age():
    rules = ClaimRules.of(IssuerConfig(issuer="https://idp", audience="sqlgate", max_token_age=300, leeway=1))
    check_claims(claims(iat=NOW - 300), rules, NOW)
    with pytest.raises(TokenRejected, match="older than max_token_age"):
        check_claims(claims(iat=NOW - 302), rules, NOW)
    with pytest.raises(TokenRejected, match="no issue time"):
        check_claims(claims(iat=None), rules, NOW)


def test_required_claims():
    rules = ClaimRules.of(
        IssuerConfig(issuer="https://idp", audience="sqlgate", required_claims=["repository", "environment"])
    )
    check_claims(claims(repository="acme/shop", environment="prod"), rules, NOW)
    with pytest.raises(TokenRejected, match="'environment' is missing"):
        check_claims(claims(repository="acme/shop", environment=""), rules, NOW)


@pytest.mark.parametrize("aud", [[], [1], {"a": 1}, 7])
def test_malformed_audience(aud):
    with pytest.raises(TokenRejected, match="no valid audience"):
        check_claims(claims(aud=aud), RULES, NOW)


@pytest.mark.parametrize("sub", ["", 5, ["alice"]])
def test_malformed_subject(sub):
    with pytest.raises(TokenRejected, match="no subject"):
        check_claims(claims(sub=sub), RULES, NOW)


def test_nan_is_not_a_date():
    with pytest.raises(TokenRejected, match="NumericDate"):
        check_claims(claims(exp=float("nan")), RULES, NOW)
