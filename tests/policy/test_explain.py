"""explain(): every rule, with why it applied or not."""

from __future__ import annotations

from sqlgate.policy import explain
from tests.policy.support import person, policy_from, utc

POLICY = policy_from("""
rules:
  - {name: other-db, who: {groups: [g]}, databases: [prod], role: read}
  - {name: other-group, who: {groups: [h]}, databases: [d], role: read}
  - {name: other-role, who: {groups: [g]}, databases: [d], role: admin}
  - {name: office, who: {groups: [g]}, databases: [d], role: write, when: {hours: "07:00-08:00"}}
  - {name: net, who: {groups: [g]}, databases: [d], role: write, from: [10.0.0.0/8]}
  - {name: ok, who: {groups: [g]}, databases: [d], role: write, approval: {approvers: {groups: [boss]}}}
  - {name: no-weekend, effect: deny, who: {groups: [g]}, databases: [d], when: {days: sat-sun}}
""")


def test_every_rule_is_traced_with_its_reason():
    result = explain(POLICY, person("x", "g"), "d", "write", utc("2026-11-25 12:00"), "192.0.2.1")
    why = {trace.rule: (trace.verdict, trace.why) for trace in result.rules}
    assert why == {
        "other-db": ("skipped", "database d is not in prod"),
        "other-group": ("skipped", "caller does not match who (groups h)"),
        "other-role": ("skipped", "grants role admin, not write"),
        "office": ("skipped", "outside 07:00-08:00 UTC"),
        "net": ("skipped", "source 192.0.2.1 is not in 10.0.0.0/8"),
        "ok": ("applies", "matches; needs an approved access request"),
        "no-weekend": ("skipped", "deny rule does not apply: outside sat-sun UTC"),
    }
    assert result.decision.outcome == "needs_approval"
    assert result.to_dict()["decision"]["outcome"] == "needs_approval"


def test_a_matching_deny_rule_is_shown_as_denying():
    result = explain(POLICY, person("x", "g"), "d", "write", utc("2026-11-28 12:00"), "10.0.0.1")
    traces = {trace.rule: trace for trace in result.rules}
    assert traces["no-weekend"].verdict == "denies"
    assert traces["net"].verdict == "applies"
    assert result.decision.reason == "denied by rule no-weekend"
