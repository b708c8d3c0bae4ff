"""The compiled policy: source parsing, glob matchers, the rule index and its memo."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlgate.policy import decide
from sqlgate.policy.compiled import Matcher, claim_values, parse_source
from tests.policy.support import person, policy_from, utc


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("10.0.0.1:5432", "10.0.0.1"),
        ("[2001:db8::1]:6543", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("", None),
        (None, None),
        ("example.com", None),
        ("10.0.0.256", None),
    ],
)
def test_parse_source(raw, expected):
    parsed = parse_source(raw)
    assert parsed == (ipaddress.ip_address(expected) if expected else None)


def test_matcher_exact_and_globs():
    matcher = Matcher.of(["alice", "svc-*", "team-[ab]"])
    assert matcher.matches("alice")
    assert matcher.matches("svc-api")
    assert matcher.matches_any(["x", "team-b"])
    assert not matcher.matches("Alice")
    assert not matcher.matches_any(["team-c", "svc"])


def test_claim_values():
    claims = {"a": {"b": ["x", 2, None, True]}, "c": "y"}
    assert claim_values(claims, ("a", "b")) == ["x", "2", "true"]
    assert claim_values(claims, ("c",)) == ["y"]
    assert claim_values(claims, ("a", "missing")) == []
    assert claim_values(claims, ("c", "deeper")) == []


POLICY = policy_from("""
rules:
  - {name: by-group, who: {groups: [g1]}, databases: [d1], role: read}
  - {name: by-subject, who: {subjects: [sam]}, databases: [d1], role: write}
  - {name: by-glob-group, who: {groups: ["team-*"]}, databases: [d1], role: admin}
  - {name: glob-db, who: {groups: [g1]}, databases: ["reports-*"], role: read}
""")


def test_index_puts_rules_where_they_can_apply():
    index = POLICY.index_for("d1")
    assert [r.name for r in index.by_group["g1"]] == ["by-group"]
    assert [r.name for r in index.by_subject["sam"]] == ["by-subject"]
    assert [r.name for r in index.general] == ["by-glob-group"]
    assert POLICY.index_for("nowhere").candidates(person("x", "g1")) == ()


def test_candidates_are_memoised_per_identity_and_stay_correct():
    index = POLICY.index_for("d1")
    sam = person("sam", "g1", "team-x")
    first = index.candidates(sam)
    assert [r.name for r in first] == ["by-group", "by-subject", "by-glob-group"]
    assert index.candidates(sam) is first
    assert [r.name for r in index.candidates(person("other", "g1"))] == ["by-group", "by-glob-group"]


def test_glob_only_databases_are_indexed_and_memoised():
    at = utc("2026-11-25 12:00")
    assert decide(POLICY, person("x", "g1"), "reports-eu", at=at).role == "read"
    assert POLICY.index_for("reports-eu") is POLICY.index_for("reports-eu")
    assert not decide(POLICY, person("x", "g1"), "other", at=at).allowed


GROUPS = st.lists(st.sampled_from(["g1", "team-x", "analysts", "contractors", "dba"]), max_size=4, unique=True)
SOURCES = st.one_of(st.none(), st.ip_addresses().map(str), st.text(max_size=20))
DENY_ALL = policy_from("""
rules:
  - {name: read, who: {groups: ["*"]}, databases: ["*"], role: read, from: [10.0.0.0/8]}
  - {name: admin, who: {groups: [dba]}, databases: [d1], role: admin}
  - {name: no-contractors, effect: deny, who: {groups: [contractors]}, databases: ["*"]}
""")


@settings(max_examples=200, deadline=None)
@given(
    GROUPS,
    st.sampled_from(["d1", "d2"]),
    st.sampled_from([None, "read", "admin", "x"]),
    SOURCES,
    st.datetimes(timezones=st.just(utc("2026-01-01 00:00").tzinfo)),
)
def test_decide_never_raises_and_deny_always_wins(groups, database, role, source, at):
    """For any caller, request and source: a decision with a reason on denial; contractors never get in."""
    decision = decide(DENY_ALL, person("p", *groups), database, role, at, source)
    assert decision.outcome in {"allow", "deny", "needs_approval"}
    if decision.outcome == "deny":
        assert decision.reason
        assert decision.ttl is None
    if "contractors" in groups:
        assert decision.reason == "denied by rule no-contractors"
    if decision.allowed:
        assert decision.role in {"read", "admin"}
        assert decision.ttl is not None
