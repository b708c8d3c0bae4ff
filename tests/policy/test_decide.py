"""decide(), table-driven: roles, time zones and DST, IPv4 and IPv6 sources, deny over allow, TTLs, grants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from sqlgate.policy import Grant, decide
from tests.policy.support import person, policy_from, utc

GITHUB = "https://token.actions.githubusercontent.com"
POLICY = policy_from(f"""
rules:
  - name: analysts-read-demo
    who: {{groups: [analysts]}}
    databases: [demo]
    role: read
    max_ttl: 1h
    when: {{days: mon-fri, hours: "07:00-20:00", tz: Europe/Berlin}}
    from: [127.0.0.0/8, 10.0.0.0/8, "2001:db8::/32"]
    guardrails: {{deny: [write, ddl, dcl, admin]}}
    mask: {{"customers.email": email}}
  - name: oncall-write-with-approval
    who: {{groups: [oncall]}}
    databases: [demo]
    role: write
    approval: {{required: true, approvers: {{groups: [dba]}}, max_duration: 2h}}
  - name: oncall-read
    who: {{groups: [oncall]}}
    databases: [demo]
    role: read
    max_ttl: 30m
  - name: dba-admin
    who: {{groups: [dba]}}
    databases: ["*"]
    role: admin
    max_ttl: 8h
  - name: dba-write
    who: {{groups: [dba]}}
    databases: [demo]
    role: write
  - name: no-contractors
    effect: deny
    who: {{groups: [contractors]}}
    databases: ["*"]
  - name: no-admin-on-weekends
    effect: deny
    who: {{groups: [dba]}}
    databases: ["*"]
    role: admin
    when: {{days: sat-sun, tz: UTC}}
  - name: ci-migrate
    who: {{issuers: ["{GITHUB}"], claims: {{repository: "acme/*", ref: refs/heads/main}}}}
    databases: [demo]
    role: migrator
    max_ttl: 15m
  - name: bob-reporting
    who: {{subjects: [bob]}}
    databases: [reporting]
    role: read
  - name: berlin-office-hours
    who: {{groups: [berliners]}}
    databases: [office]
    role: read
    when: {{hours: "07:00-20:00", tz: Europe/Berlin}}
  - name: night-shift
    who: {{groups: [night]}}
    databases: [office]
    role: write
    when: {{days: mon-fri, hours: "22:00-06:00", tz: Europe/Berlin}}
  - name: block-bad-net
    effect: deny
    who: {{groups: ["*"]}}
    databases: [demo]
    from: ["192.0.2.0/24", "2001:db8:bad::/48"]
""")

WED_NOON = "2026-11-25 12:00"  # a Wednesday; 13:00 in Berlin


@dataclass
class Case:
    """One request and what policy must answer."""

    id: str
    groups: tuple[str, ...]
    database: str
    outcome: str
    role: str | None = None
    want_role: str | None = None
    at: str = WED_NOON
    source: str | None = "10.0.0.5"
    reason: str | None = None
    ttl: timedelta | None = None
    subject: str = "alice"
    claims: dict = field(default_factory=dict)
    issuer: str = "https://idp.example.com"


CASES = [
    Case("analyst-reads", ("analysts",), "demo", "allow", want_role="read", ttl=timedelta(hours=1)),
    Case(
        "analyst-cannot-write",
        ("analysts",),
        "demo",
        "deny",
        role="write",
        reason="no rule grants group analysts role write on demo (granted: read)",
    ),
    Case(
        "after-hours-berlin",
        ("analysts",),
        "demo",
        "deny",
        at="2026-11-25 19:30",
        reason="outside 07:00-20:00 Europe/Berlin (rule analysts-read-demo)",
    ),
    Case("before-hours-berlin", ("analysts",), "demo", "deny", at="2026-11-25 05:59", reason="outside 07:00-20:00"),
    Case("saturday", ("analysts",), "demo", "deny", at="2026-11-28 12:00", reason="outside mon-fri Europe/Berlin"),
    Case(
        "ipv4-outside",
        ("analysts",),
        "demo",
        "deny",
        source="172.16.0.1",
        reason="source 172.16.0.1 is not in 127.0.0.0/8, 10.0.0.0/8, 2001:db8::/32",
    ),
    Case("ipv4-with-port", ("analysts",), "demo", "allow", source="10.9.9.9:51234", want_role="read"),
    Case("ipv6-inside", ("analysts",), "demo", "allow", source="2001:db8::1", want_role="read"),
    Case("ipv6-bracketed", ("analysts",), "demo", "allow", source="[2001:db8::7]:6543", want_role="read"),
    Case("ipv4-mapped-ipv6", ("analysts",), "demo", "allow", source="::ffff:10.0.0.9", want_role="read"),
    Case("ipv6-outside", ("analysts",), "demo", "deny", source="2001:db9::1", reason="source 2001:db9::1 is not in"),
    Case("ipv4-denied-net", ("analysts",), "demo", "deny", source="192.0.2.1", reason="denied by rule block-bad-net"),
    Case("ipv6-denied-net", ("analysts",), "demo", "deny", source="2001:db8:bad::1", reason="denied by rule block-bad"),
    Case("unknown-source-fails-closed", ("analysts",), "demo", "deny", source=None, reason="denied by rule block-bad"),
    Case("garbage-source-fails-closed", ("analysts",), "demo", "deny", source="nowhere", reason="denied by rule"),
    Case("oncall-default-prefers-usable", ("oncall",), "demo", "allow", want_role="read", ttl=timedelta(minutes=30)),
    Case(
        "oncall-write-needs-approval",
        ("oncall",),
        "demo",
        "needs_approval",
        role="write",
        want_role="write",
        reason="needs approval from group dba",
        ttl=timedelta(hours=2),
    ),
    Case("dba-best-role-is-admin", ("dba",), "demo", "allow", want_role="admin", ttl=timedelta(hours=8)),
    Case("dba-asks-write", ("dba",), "demo", "allow", role="write", want_role="write", ttl=timedelta(hours=1)),
    Case("dba-glob-database", ("dba",), "prod", "allow", want_role="admin"),
    Case(
        "deny-role-on-weekend",
        ("dba",),
        "demo",
        "deny",
        role="admin",
        at="2026-11-28 12:00",
        reason="denied by rule no-admin-on-weekends",
    ),
    Case("weekend-falls-back", ("dba",), "demo", "allow", at="2026-11-28 12:00", want_role="write"),
    Case("weekend-nothing-left", ("dba",), "prod", "deny", at="2026-11-28 12:00", reason="denied by rule no-admin"),
    Case("deny-beats-allow", ("analysts", "contractors"), "demo", "deny", reason="denied by rule no-contractors"),
    Case("unknown-db", ("analysts",), "nowhere", "deny", reason="no rule grants group analysts any role on nowhere"),
    Case("no-groups", (), "demo", "deny", reason="no rule grants subject alice any role on demo"),
    Case(
        "ci-claims-glob",
        (),
        "demo",
        "allow",
        want_role="migrator",
        subject="repo:acme/api:ref:refs/heads/main",
        issuer=GITHUB,
        claims={"repository": "acme/api", "ref": "refs/heads/main"},
        ttl=timedelta(minutes=15),
    ),
    Case(
        "ci-wrong-repo",
        (),
        "demo",
        "deny",
        subject="repo:evil/api",
        issuer=GITHUB,
        claims={"repository": "evil/api", "ref": "refs/heads/main"},
        reason="no rule grants subject repo:evil/api any role on demo",
    ),
    Case(
        "ci-wrong-issuer",
        (),
        "demo",
        "deny",
        subject="x",
        claims={"repository": "acme/api", "ref": "refs/heads/main"},
        reason="no rule grants",
    ),
    Case("subject-rule", (), "reporting", "allow", subject="bob", want_role="read"),
    Case("subject-rule-other", (), "reporting", "deny", subject="carol", reason="no rule grants subject carol"),
    # Daylight saving: Europe/Berlin moves from CET (+1) to CEST (+2) on Sunday 2026-03-29, back on 2026-10-25.
    Case("dst-spring-before-change", ("berliners",), "office", "deny", at="2026-03-28 05:30", reason="outside"),
    Case("dst-spring-after-change", ("berliners",), "office", "allow", at="2026-03-29 05:30", want_role="read"),
    Case("dst-spring-night", ("berliners",), "office", "deny", at="2026-03-29 00:30", reason="outside 07:00-20:00"),
    Case("dst-autumn-before-change", ("berliners",), "office", "allow", at="2026-10-24 05:30", want_role="read"),
    Case("dst-autumn-after-change", ("berliners",), "office", "deny", at="2026-10-25 05:30", reason="outside"),
    Case("dst-autumn-evening", ("berliners",), "office", "allow", at="2026-10-25 18:59", want_role="read"),
    Case("dst-autumn-late", ("berliners",), "office", "deny", at="2026-10-25 19:00", reason="outside 07:00-20:00"),
    Case("overnight-friday-into-saturday", ("night",), "office", "allow", at="2026-11-28 01:00", want_role="write"),
    Case("overnight-sunday-into-monday", ("night",), "office", "deny", at="2026-11-30 01:00", reason="mon-fri"),
    Case("overnight-monday-evening", ("night",), "office", "allow", at="2026-11-30 21:30", want_role="write"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_decide(case: Case):
    principal = person(case.subject, *case.groups, issuer=case.issuer, claims=case.claims)
    decision = decide(POLICY, principal, case.database, case.role, utc(case.at), case.source)
    assert decision.outcome == case.outcome, decision.reason
    if case.want_role:
        assert decision.role == case.want_role
    if case.reason:
        assert case.reason in (decision.reason or ""), decision.reason
    else:
        assert decision.reason is None
    if case.ttl is not None:
        assert decision.ttl == case.ttl
    if decision.outcome == "deny":
        assert decision.guardrails is None
        assert decision.mask == {}


def test_allow_carries_guardrails_mask_and_rules():
    decision = decide(POLICY, person("alice", "analysts"), "demo", at=utc(WED_NOON), source="10.0.0.1")
    assert decision.guardrails is not None
    assert decision.guardrails.deny == ["write", "ddl", "dcl", "admin"]
    assert decision.mask == {"customers.email": "email"}
    assert decision.matched_rules == ("analysts-read-demo",)


def test_token_life_shorter_than_max_ttl_wins():
    at = utc(WED_NOON)
    principal = person("alice", "analysts", expires_at=at + timedelta(minutes=10))
    assert decide(POLICY, principal, "demo", at=at, source="10.0.0.1").ttl == timedelta(minutes=10)
    explicit = decide(POLICY, principal, "demo", at=at, source="10.0.0.1", token_expires_at=at + timedelta(minutes=3))
    assert explicit.ttl == timedelta(minutes=3)


def test_expired_token_is_denied():
    at = utc(WED_NOON)
    principal = person("alice", "analysts", expires_at=at - timedelta(seconds=1))
    decision = decide(POLICY, principal, "demo", at=at, source="10.0.0.1")
    assert decision.outcome == "deny"
    assert "expired" in (decision.reason or "")


def test_source_defaults_to_the_principals():
    principal = person("alice", "analysts", source="10.1.2.3")
    assert decide(POLICY, principal, "demo", at=utc(WED_NOON)).allowed


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        decide(POLICY, person("alice", "analysts"), "demo", at=utc(WED_NOON).replace(tzinfo=None))


def _grant(key, *, database="demo", role="write", expires_in=timedelta(minutes=45)):
    return Grant(key, database, role, utc(WED_NOON) + expires_in, request_id="r1")


@pytest.mark.parametrize(
    ("grant", "outcome", "ttl"),
    [
        (_grant(person("bob").key), "allow", timedelta(minutes=45)),
        (_grant(person("bob").key, expires_in=timedelta(hours=5)), "allow", timedelta(hours=2)),
        (_grant(person("bob").key, expires_in=timedelta(0)), "needs_approval", timedelta(hours=2)),
        (_grant(person("mallory").key), "needs_approval", timedelta(hours=2)),
        (_grant(person("bob").key, database="prod"), "needs_approval", timedelta(hours=2)),
        (_grant(person("bob").key, role="admin"), "needs_approval", timedelta(hours=2)),
    ],
    ids=["active", "capped-by-max-duration", "expired", "other-person", "other-db", "other-role"],
)
def test_approved_grants(grant, outcome, ttl):
    bob = person("bob", "oncall")
    decision = decide(POLICY, bob, "demo", "write", utc(WED_NOON), "10.0.0.1", grants=[grant])
    assert decision.outcome == outcome
    assert decision.ttl == ttl
    assert decision.grant_id == ("r1" if outcome == "allow" else None)


def test_active_grant_makes_the_approved_role_the_default():
    bob = person("bob", "oncall")
    decision = decide(POLICY, bob, "demo", at=utc(WED_NOON), source="10.0.0.1", grants=[_grant(bob.key)])
    assert decision.role == "write"


def test_custom_roles_rank_above_builtin_and_by_rule_order():
    policy = policy_from("""
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: admin}
  - {name: b, who: {groups: [g]}, databases: [d], role: reporting}
  - {name: c, who: {groups: [g]}, databases: [d], role: etl}
""")
    decision = decide(policy, person("x", "g"), "d", at=utc(WED_NOON))
    assert decision.role == "reporting"


def test_first_rule_for_a_role_decides_its_limits():
    policy = policy_from("""
rules:
  - {name: strict, who: {groups: [g]}, databases: [d], role: read, max_ttl: 5m, guardrails: {deny: [write]}}
  - {name: loose, who: {subjects: [x]}, databases: [d], role: read, max_ttl: 8h}
""")
    decision = decide(policy, person("x", "g"), "d", at=utc(WED_NOON))
    assert decision.matched_rules == ("strict", "loose")
    assert decision.ttl == timedelta(minutes=5)


def test_many_reasons_are_all_given():
    policy = policy_from("""
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, from: [10.0.0.0/8]}
  - {name: b, who: {groups: [g]}, databases: [d], role: read, when: {hours: "01:00-02:00"}}
""")
    decision = decide(policy, person("x", "g"), "d", at=utc(WED_NOON), source="192.0.2.9")
    assert decision.reason == "source 192.0.2.9 is not in 10.0.0.0/8 (rule a); outside 01:00-02:00 UTC (rule b)"


def test_nested_and_list_claims_match():
    policy = policy_from("""
rules:
  - {name: k8s, who: {claims: {"kubernetes.io.namespace": "prod-*", aud: [gateway]}}, databases: [d], role: read}
""")
    claims = {"kubernetes": {"io": {"namespace": "prod-api"}}, "aud": ["other", "gateway"]}
    assert decide(policy, person("svc", claims=claims), "d", at=utc(WED_NOON)).allowed
    claims["aud"] = ["other"]
    assert not decide(policy, person("svc", claims=claims), "d", at=utc(WED_NOON)).allowed


def test_empty_policy_denies_everything():
    decision = decide(policy_from("rules: []"), person("root", "admins"), "demo", at=utc(WED_NOON))
    assert decision.outcome == "deny"
    assert decision.reason == "no rule grants group admins any role on demo"
