"""The policy file schema: what it accepts, and errors that name the key and the line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from sqlgate.errors import ConfigError
from sqlgate.policy import PolicyFile, load_policy_file

EXAMPLE = """\
rules:
  - name: analysts-read-demo
    who: {groups: [analysts]}
    databases: [demo]
    role: read
    max_ttl: 1h
    when: {days: mon-fri, hours: "07:00-20:00", tz: Europe/Berlin}
    from: [127.0.0.0/8, 10.0.0.0/8]
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: oncall-write-with-approval
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    approval: {required: true, approvers: {groups: [dba]}, max_duration: 2h}
"""


def _problems(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy_file(path)
    return caught.value.problems


def test_the_example_from_the_issue_loads(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE)
    policy = load_policy_file(path)
    first, second = policy.rules
    assert first.max_ttl == timedelta(hours=1)
    assert first.from_ == ["127.0.0.0/8", "10.0.0.0/8"]
    assert first.when is not None
    assert first.when.tz == "Europe/Berlin"
    assert second.approval is not None
    assert second.approval.max_duration == timedelta(hours=2)
    assert second.needs_approval


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("tz: Europe/Berlin", "tz: Europe/Bxrlin"), "rules.0.when.tz: 'Europe/Bxrlin' is not a known time zone"),
        (("10.0.0.0/8", "10.0.0.0/33"), "rules.0.from.1: '10.0.0.0/33' is not an address or CIDR"),
        (("days: mon-fri", "days: mon-fry"), "rules.0.when.days: 'fry' is not a weekday"),
        (('"07:00-20:00"', '"07:00-7pm"'), "rules.0.when.hours: '07:00-7pm' is not an hour range"),
        (("max_ttl: 1h", "max_ttl: soon"), "rules.0.max_ttl: not a duration: 'soon'"),
        (("max_ttl: 1h", "max_ttl: 0s"), "rules.0.max_ttl: must be longer than zero"),
        (("role: read", "role: READ ME"), "rules.0.role: 'READ ME' is not a role name"),
        (("deny: [write,", "deny: [writes,"), "rules.0.guardrails.deny.0:"),
        (("email, ", "mailbox, "), "rules.0.mask.customers.email:"),
        (("    role: read\n", "    role: read\n    colour: red\n"), "rules.0.colour: unknown key"),
        (("{groups: [analysts]}", "{}"), "rules.0.who: names nobody"),
        (("approvers: {groups: [dba]}, ", ""), "rules.1.approval: approval is required but names no approvers"),
        (("name: oncall-write-with-approval", "name: analysts-read-demo"), "rules: rule name 'analysts-read-demo'"),
    ],
)
def test_mistakes_name_the_key_and_line(tmp_path, change, expected):
    old, new = change
    assert old in EXAMPLE
    problems = _problems(tmp_path, EXAMPLE.replace(old, new, 1))
    assert any(p.startswith(expected) for p in problems), problems
    assert all("(line " in p for p in problems), problems


def test_allow_rule_needs_a_role(tmp_path):
    problems = _problems(tmp_path, "rules:\n  - {name: r, who: {groups: [a]}, databases: [d]}\n")
    assert problems == ["rules.0: an allow rule needs a role (read, write, admin or a custom name) (line 2)"]


def test_deny_rule_takes_no_grant_settings(tmp_path):
    text = "rules:\n  - {name: r, effect: deny, who: {groups: [a]}, databases: [d], max_ttl: 1h}\n"
    assert "a deny rule takes no approval" in _problems(tmp_path, text)[0]


def test_not_a_mapping_and_bad_yaml(tmp_path):
    (tmp_path / "a.yaml").write_text("- 1\n")
    (tmp_path / "b.yaml").write_text("rules: [\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_policy_file(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy_file(tmp_path / "b.yaml")


def test_an_empty_file_is_an_empty_deny_everything_policy(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert load_policy_file(tmp_path / "empty.yaml").rules == []


def test_guardrails_mode_is_enforce_by_default_audit_or_refused(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE.replace("admin]}", "admin], mode: audit}"))
    audited = load_policy_file(path).rules[0].guardrails
    assert audited is not None
    assert audited.mode == "audit"
    path.write_text(EXAMPLE)
    enforced = load_policy_file(path).rules[0].guardrails
    assert enforced is not None
    assert enforced.mode == "enforce"
    problems = _problems(tmp_path, EXAMPLE.replace("admin]}", "admin], mode: dry-run}"))
    assert problems[0].startswith("rules.0.guardrails.mode: Input should be 'enforce' or 'audit'")


def test_direct_login_is_a_rule_key_deny_rules_refuse(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE.replace("    mask:", "    direct_login: true\n    mask:"))
    first, second = load_policy_file(path).rules
    assert first.direct_login is True
    assert first.allows_direct_login
    assert second.direct_login is None
    assert second.allows_direct_login  # no masks, no guardrails
    deny = "rules:\n  - {name: d, effect: deny, who: {groups: [g]}, databases: [x], direct_login: true}\n"
    assert "direct_login" in _problems(tmp_path, deny)[0]


def test_schema_documents_mode_and_direct_login():
    schema = json.dumps(PolicyFile.model_json_schema())
    assert "may also be used as a plain database login, without masking or guardrails" in schema
    assert "would_deny" in schema
