"""Several rules granting one role: every rule's masks and the strictest guardrails apply; direct login."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.policy import Guardrails, decide, explain
from sqlgate.policy.combine import MASK_STRICTNESS, combine_guardrails, combine_masks, stricter
from tests.policy.support import person, policy_from, utc

NOON = utc("2026-11-25 12:00")


class _Rule(NamedTuple):
    name: str
    mask: dict[str, str]
    guardrails: Any = None


TWO_RULES = """
rules:
  - name: pii
    who: {groups: [analysts]}
    databases: [d]
    role: read
    guardrails: {deny: [write], require_where: false, deny_functions: [pg_sleep], mode: audit}
    mask: {"customers.email": email, "*.ssn": last4, "cards.number": null}
  - name: finance
    who: {groups: [finance]}
    databases: [d]
    role: read
    guardrails: {deny: [ddl, write], require_where: true, deny_tables: [salaries]}
    mask: {"*.SSN": redact, "orders.total": hash}
"""


def _decide(text, *groups, role=None):
    return decide(policy_from(text), person("x", *groups), "d", role, at=NOON)


def test_every_granting_rules_masks_apply_and_the_stricter_function_wins():
    decision = _decide(TWO_RULES, "analysts", "finance")
    assert decision.matched_rules == ("pii", "finance")
    assert dict(decision.mask) == {
        "customers.email": "email",
        "*.ssn": "redact",  # redact (finance, spelt *.SSN) is stricter than last4 (pii)
        "cards.number": "null",
        "orders.total": "hash",
    }


def test_the_strictest_guardrails_win():
    decision = _decide(TWO_RULES, "analysts", "finance")
    assert decision.guardrails == Guardrails(
        deny=["write", "ddl"],
        require_where=True,
        deny_functions=["pg_sleep"],
        deny_tables=["salaries"],
        mode="enforce",  # finance enforces, so the combination does
    )


def test_a_rule_without_guardrails_does_not_loosen_another():
    policy = """
rules:
  - {name: open, who: {groups: [g]}, databases: [d], role: read}
  - {name: careful, who: {groups: [g]}, databases: [d], role: read, guardrails: {deny: [write]}, mask: {"t.c": null}}
"""
    decision = _decide(policy, "g")
    assert decision.matched_rules == ("open", "careful")
    assert decision.guardrails == Guardrails(deny=["write"])
    assert dict(decision.mask) == {"t.c": "null"}


def test_audit_mode_stays_only_when_every_rule_audits():
    policy = """
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, guardrails: {deny: [write], mode: audit}}
  - {name: b, who: {groups: [g]}, databases: [d], role: read, guardrails: {deny: [ddl], mode: audit}}
  - {name: c, who: {groups: [g]}, databases: [d], role: read}
"""
    decision = _decide(policy, "g")
    assert decision.guardrails is not None
    assert decision.guardrails.mode == "audit"
    assert decision.guardrails.deny == ["write", "ddl"]


def test_combined_limits_also_shown_while_approval_is_needed():
    policy = """
rules:
  - name: a
    who: {groups: [g]}
    databases: [d]
    role: write
    approval: {approvers: {groups: [boss]}}
    mask: {"t.c": email}
  - name: b
    who: {groups: [g]}
    databases: [d]
    role: write
    approval: {approvers: {groups: [boss]}}
    guardrails: {deny: [ddl]}
    mask: {"t.c": redact}
"""
    decision = _decide(policy, "g")
    assert decision.outcome == "needs_approval"
    assert dict(decision.mask) == {"t.c": "redact"}
    assert decision.guardrails == Guardrails(deny=["ddl"])


@pytest.mark.parametrize(
    ("stronger", "weaker"),
    [(MASK_STRICTNESS[i], MASK_STRICTNESS[j]) for i in range(5) for j in range(i + 1, 5)],
)
def test_mask_strictness_order(stronger, weaker):
    """The order is null > redact > hash > last4 > email, whichever rule comes first."""
    assert MASK_STRICTNESS == ("null", "redact", "hash", "last4", "email")
    assert stricter(stronger, weaker) == stronger
    assert stricter(weaker, stronger) == stronger
    assert combine_masks([_Rule("a", {"t.c": weaker}), _Rule("b", {"T.C": stronger})]) == {"t.c": stronger}


def test_one_rule_repeating_a_selector_in_another_case_keeps_the_stricter():
    policy = policy_from("""
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, mask: {"t.c": email, "T.C": null}}
""")
    assert dict(decide(policy, person("x", "g"), "d", at=NOON).mask) == {"t.c": "null"}


def test_an_exact_selector_never_weakens_another_rules_glob():
    """The masker prefers exact selectors: one that another rule's stricter glob covers takes the glob's function."""
    policy = """
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, mask: {"customers.ssn": last4, "orders.note": email}}
  - {name: b, who: {groups: [g]}, databases: [d], role: read, mask: {"*.ssn": null, "cust*.note": redact}}
  - {name: c, who: {groups: [g]}, databases: [d], role: read, mask: {"public.orders.note": hash}}
"""
    decision = _decide(policy, "g")
    assert dict(decision.mask) == {
        "customers.ssn": "null",  # covered by b's *.ssn
        "*.ssn": "null",
        "cust*.note": "redact",
        "public.orders.note": "hash",
        "orders.note": "email",  # cust*.note cannot match orders; an exact selector (c's) is ordered instead
    }
    assert list(decision.mask) == ["customers.ssn", "*.ssn", "cust*.note", "public.orders.note", "orders.note"]
    [raised] = [s for s in explain(policy_from(policy), person("x", "g"), "d", at=NOON).masks if s.via]
    assert (raised.selector, raised.rule, raised.via, raised.overridden) == (
        "customers.ssn",
        "b",
        "*.ssn",
        (("a", "last4"),),
    )


def test_globs_of_several_rules_are_ordered_strictest_first():
    """Among glob selectors the masker takes the first: the strictest comes first, whichever rule wrote it."""
    policy = """
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, mask: {"*.card*": last4}}
  - {name: b, who: {groups: [g]}, databases: [d], role: read, mask: {"pay*.card_no": null}}
"""
    assert list(_decide(policy, "g").mask.items()) == [("pay*.card_no", "null"), ("*.card*", "last4")]


def test_one_rule_keeps_its_own_exceptions_and_order():
    """Within one rule the author's exact-over-glob exception and order stand."""
    policy = """
rules:
  - {name: a, who: {groups: [g]}, databases: [d], role: read, mask: {"customers.ssn": last4, "*.ssn": null}}
  - {name: b, who: {groups: [g]}, databases: [d], role: read}
"""
    assert list(_decide(policy, "g").mask.items()) == [("customers.ssn", "last4"), ("*.ssn", "null")]


def test_combine_guardrails_of_none_is_none():
    assert combine_guardrails([None, None]) is None
    only = Guardrails(deny_tables=["x"])
    assert combine_guardrails([None, only]) is only


DIRECT = """
rules:
  - {name: plain, who: {groups: [plain]}, databases: [d], role: read}
  - {name: masked, who: {groups: [masked]}, databases: [d], role: read, mask: {"t.c": null}}
  - {name: guarded, who: {groups: [guarded]}, databases: [d], role: read, guardrails: {}}
  - {name: trusted, who: {groups: [trusted]}, databases: [d], role: read, mask: {"t.c": null}, direct_login: true}
  - {name: never, who: {groups: [never]}, databases: [d], role: read, direct_login: false}
"""


@pytest.mark.parametrize(
    ("groups", "allowed", "refused_by"),
    [
        (("plain",), True, None),
        (("masked",), False, "masked"),
        (("guarded",), False, "guarded"),
        (("trusted",), True, None),
        (("never",), False, "never"),
        (("plain", "masked"), False, "masked"),
        (("plain", "trusted"), True, None),
        (("trusted", "guarded"), False, "guarded"),
    ],
)
def test_direct_login_needs_every_contributing_rule_to_allow_it(groups, allowed, refused_by):
    decision = _decide(DIRECT, *groups)
    assert decision.allowed
    assert decision.direct_login is allowed
    assert decision.direct_login_refused_by == refused_by
    assert decision.to_dict()["direct_login"] is allowed


def test_a_denial_allows_no_direct_login():
    decision = _decide(DIRECT, "nobody")
    assert decision.outcome == "deny"
    assert decision.direct_login is False


def test_explain_says_which_rule_contributed_what():
    result = explain(policy_from(TWO_RULES), person("x", "analysts", "finance"), "d", at=NOON)
    masks = {source.selector: (source.function, source.rule, source.overridden) for source in result.masks}
    assert masks == {
        "customers.email": ("email", "pii", ()),
        "*.ssn": ("redact", "finance", (("pii", "last4"),)),
        "cards.number": ("null", "pii", ()),
        "orders.total": ("hash", "finance", ()),
    }
    assert [rule for rule, _ in result.guardrails] == ["pii", "finance"]
    document = result.to_dict()
    assert [m["selector"] for m in document["contributions"]["mask"]] == [
        "cards.number",  # strictest first
        "*.ssn",
        "orders.total",
        "customers.email",
    ]
    assert document["contributions"]["mask"][1] == {
        "selector": "*.ssn",
        "function": "redact",
        "rule": "finance",
        "via": None,
        "overridden": [{"rule": "pii", "function": "last4"}],
    }
    assert document["contributions"]["guardrails"][0]["rule"] == "pii"
    assert document["contributions"]["guardrails"][0]["guardrails"]["mode"] == "audit"
    assert document["decision"]["guardrails"]["mode"] == "enforce"


def test_explain_of_a_denial_has_no_contributions():
    result = explain(policy_from(TWO_RULES), person("x", "interns"), "d", at=NOON)
    assert result.to_dict()["contributions"] == {"mask": [], "guardrails": []}


def test_policy_explain_command_shows_the_combination(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(TWO_RULES)
    args = ["policy", "explain", "--policy", str(path), "--as", "x", "--group", "analysts", "--group", "finance"]
    args += ["--db", "d", "--at", "2026-11-25T12:00:00Z"]
    text = CliRunner().invoke(app, args, terminal_width=200)
    assert text.exit_code == 0, text.output
    assert "*.ssn=redact  (rule finance; overrides last4 of rule pii)" in text.output
    assert "pii: deny write; no require_where; deny_functions pg_sleep; mode audit" in text.output
    assert "finance: deny ddl, write; require_where; deny_tables salaries; mode enforce" in text.output
    assert "direct login: refused: rule pii carries masks or guardrails" in text.output
    document = json.loads(CliRunner().invoke(app, [*args, "--json"]).output)
    assert document["contributions"]["mask"][0]["rule"] == "pii"
    assert document["decision"]["direct_login_refused_by"] == "pii"
