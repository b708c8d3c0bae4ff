"""``sqlgate policy check|explain|test`` through the real command line (CliRunner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sqlgate.cli import app

runner = CliRunner()

POLICY = """\
rules:
  - name: analysts-read-demo
    who: {groups: [analysts]}
    databases: [demo]
    role: read
    max_ttl: 1h
    when: {days: mon-fri, hours: "07:00-20:00", tz: Europe/Berlin, from: 2026-01-01}
    from: [127.0.0.0/8, 10.0.0.0/8, "2001:db8::/32"]
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email}
  - name: oncall-write-with-approval
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    approval: {required: true, approvers: {groups: [dba]}, max_duration: 2h}
  - name: no-contractors
    effect: deny
    who: {groups: [contractors]}
    databases: ["*"]
  - name: ci
    who: {claims: {repository: "acme/*"}}
    databases: [demo]
    role: migrator
"""
WED = "2026-11-25T12:00:00Z"


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def _explain(policy, *args):
    result = runner.invoke(app, ["policy", "explain", "--policy", str(policy), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_check_valid_and_invalid(policy, tmp_path):
    result = runner.invoke(app, ["policy", "check", str(policy)])
    assert result.exit_code == 0
    assert "valid" in result.output
    assert "4 rules" in " ".join(result.output.split())  # the console wraps long paths at its width
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("tz: Europe/Berlin", "tz: Europe/Nowhere"))
    result = runner.invoke(app, ["policy", "check", str(bad), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    assert report["problems"] == [
        "rules.0.when.tz: 'Europe/Nowhere' is not a known time zone (use an IANA name such as Europe/Berlin) (line 7)"
    ]


@pytest.mark.parametrize(
    ("args", "outcome", "reason"),
    [
        (["--as", "alice", "--group", "analysts", "--db", "demo", "--at", WED, "--from", "10.0.0.1"], "allow", None),
        (
            [
                "--as",
                "alice",
                "--group",
                "analysts",
                "--db",
                "demo",
                "--role",
                "write",
                "--at",
                WED,
                "--from",
                "10.0.0.1",
            ],
            "deny",
            "no rule grants group analysts role write on demo (granted: read)",
        ),
        (["--as", "alice", "--db", "demo", "--at", WED], "deny", "no rule grants subject alice any role on demo"),
        (
            ["--as", "alice", "--group", "analysts", "--db", "demo", "--at", "2026-11-25T20:30:00+01:00"],
            "deny",
            "outside 07:00-20:00 Europe/Berlin",
        ),
        (["--as", "a", "--group", "analysts", "--db", "demo", "--at", "2026-11-28T12:00Z"], "deny", "outside mon-fri"),
        (
            ["--as", "a", "--group", "analysts", "--db", "demo", "--at", "2025-06-02T12:00Z"],
            "deny",
            "before 2026-01-01",
        ),
        (
            ["--as", "alice", "--group", "analysts", "--db", "demo", "--at", WED, "--from", "192.0.2.1"],
            "deny",
            "source 192.0.2.1 is not in 127.0.0.0/8, 10.0.0.0/8, 2001:db8::/32",
        ),
        (["--as", "alice", "--group", "analysts", "--db", "demo", "--at", WED], "deny", "no source address is known"),
        (
            ["--as", "c", "--group", "analysts", "--group", "contractors", "--db", "demo", "--at", WED],
            "deny",
            "denied by rule no-contractors",
        ),
        (["--as", "bob", "--group", "oncall", "--db", "demo", "--at", WED], "needs_approval", "needs approval"),
        (["--as", "ci", "--claim", "repository=acme/api", "--db", "demo", "--at", WED], "allow", None),
    ],
)
def test_explain_gives_the_reason_for_every_denial_kind(policy, args, outcome, reason):
    report = _explain(policy, *args)
    assert report["decision"]["outcome"] == outcome
    if reason:
        assert reason in report["decision"]["reason"]
    assert len(report["rules"]) == 4


def test_explain_text_output(policy):
    args = ["--as", "alice", "--group", "analysts", "--db", "demo", "--at", WED, "--from", "10.0.0.1"]
    result = runner.invoke(app, ["policy", "explain", "--policy", str(policy), *args])
    assert result.exit_code == 0, result.output
    assert "decision: allow on demo" in result.output
    assert "customers.email=email" in result.output
    assert "no-contractors" in result.output


def test_explain_uses_the_settings_policy_file(policy, tmp_path):
    settings = tmp_path / "sqlgate.yaml"
    settings.write_text(f"policy_file: {policy.name}\n")
    result = runner.invoke(app, ["policy", "explain", "-c", str(settings), "--as", "x", "--db", "demo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"]["outcome"] == "deny"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "is not an ISO 8601 time"),
        (["--claim", "novalue"], "is not key=value"),
    ],
)
def test_explain_bad_input(policy, args, message):
    result = runner.invoke(app, ["policy", "explain", "--policy", str(policy), "--as", "a", "--db", "d", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_explain_without_a_policy_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SQLGATE_CONFIG", raising=False)
    result = runner.invoke(app, ["policy", "explain", "--as", "a", "--db", "d"])
    assert result.exit_code == 1
    assert "no policy file" in result.output


CASES = """\
policy: policy.yaml
cases:
  - name: analysts read
    as: alice
    groups: [analysts]
    db: demo
    at: "2026-11-25T12:00:00Z"
    from: 10.0.0.1
    expect: {outcome: allow, role: read, ttl: 1h}
  - name: analysts cannot write
    as: alice
    groups: [analysts]
    db: demo
    role: write
    at: "2026-11-25T12:00:00Z"
    from: 10.0.0.1
    expect: {outcome: deny, reason: "no rule grants group analysts role write"}
  - name: oncall needs approval
    as: bob
    groups: [oncall]
    db: demo
    at: "2026-11-25T12:00:00Z"
    expect: {outcome: needs_approval, role: write, ttl: 2h}
"""


def test_policy_test_passes(policy):
    cases = policy.parent / "cases.yaml"
    cases.write_text(CASES)
    result = runner.invoke(app, ["policy", "test", str(cases)])
    assert result.exit_code == 0, result.output
    assert "3 passed, 0 failed" in result.output


def test_policy_test_fails_on_a_mismatch(policy):
    cases = policy.parent / "cases.yaml"
    cases.write_text(
        CASES.replace("expect: {outcome: allow, role: read, ttl: 1h}", "expect: {outcome: allow, role: admin}")
    )
    result = runner.invoke(app, ["policy", "test", str(cases), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["passed"], report["failed"]) == (2, 1)
    assert report["results"][0]["mismatches"] == ["role read, expected admin"]


def test_policy_test_reports_bad_cases_with_lines(policy):
    cases = policy.parent / "cases.yaml"
    cases.write_text(CASES.replace('at: "2026-11-25T12:00:00Z"', 'at: "2026-11-25T12:00:00"', 1))
    result = runner.invoke(app, ["policy", "test", str(cases)])
    assert result.exit_code == 1
    assert "cases.0.at" in str(result.exception) or "cases.0.at" in result.output


def test_check_warns_about_databases_and_roles_the_settings_lack(policy, tmp_path):
    settings = tmp_path / "sqlgate.yaml"
    settings.write_text(
        "databases:\n  demo: {dbname: d, admin_user: a, admin_password_env: X, roles: {read: demo_read}}\n"
    )
    result = runner.invoke(app, ["policy", "check", str(policy), "-c", str(settings), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["warnings"] == [
        "rules.1 (oncall-write-with-approval): role 'write' has no database role in databases.demo.roles",
        "rules.3 (ci): role 'migrator' has no database role in databases.demo.roles",
    ]
