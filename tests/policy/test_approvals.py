"""The request lifecycle's rules, pure: what may be filed, who may decide, what an approval grants, the preview."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from sqlgate.errors import AccessDenied, AccessRequestError, RequestConflict
from sqlgate.policy.approvals import check_approvable, check_filing, duration_cap, find_rule, preview_of
from tests.notify.test_payload import filed_request
from tests.policy.support import person, policy_from, utc

POLICY = policy_from("""
rules:
  - name: oncall-write
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    max_ttl: 4h
    guardrails: {deny: [ddl]}
    approval: {approvers: {groups: [dba]}, min_approvals: 2, max_duration: 2h}
  - name: dev-admin
    who: {groups: [dev]}
    databases: [demo]
    role: admin
    max_ttl: 30m
    approval: {approvers: {groups: [dba]}, require_reason: false}
""")
WRITE, ADMIN = find_rule(POLICY, "oncall-write"), find_rule(POLICY, "dev-admin")
T0 = utc("2026-11-25 12:00")
DAY = timedelta(hours=24)
BOB, DORA, CAROL = person("bob", "oncall"), person("dora", "dba"), person("carol", "dba")


def test_the_cap_is_max_duration_else_max_ttl():
    """approval.max_duration caps within max_ttl; without it, max_ttl is the cap."""
    assert WRITE is not None
    assert ADMIN is not None
    assert (duration_cap(WRITE), duration_cap(ADMIN)) == (timedelta(hours=2), timedelta(minutes=30))


@pytest.mark.parametrize(
    ("rule", "reason", "duration", "expected"),
    [
        (WRITE, " incident 9 ", None, ("incident 9", timedelta(hours=2))),
        (WRITE, "x", timedelta(minutes=45), ("x", timedelta(minutes=45))),
        (WRITE, "x", timedelta(hours=2), ("x", timedelta(hours=2))),
        (ADMIN, "", None, ("", timedelta(minutes=30))),
    ],
    ids=["default-is-the-cap", "shorter", "exactly-the-cap", "reason-optional"],
)
def test_what_may_be_filed(rule, reason, duration, expected):
    """The reason is trimmed; no duration asks for the cap; a rule with require_reason: false takes none."""
    assert check_filing(rule, reason, duration) == expected


@pytest.mark.parametrize(
    ("rule", "reason", "duration", "message"),
    [
        (WRITE, "   ", None, "rule oncall-write requires a reason: give a reason"),
        (WRITE, "x", timedelta(hours=2, seconds=1), "rule oncall-write grants role write for at most 2h; ask for 2h"),
        (ADMIN, "", timedelta(hours=1), "rule dev-admin grants role admin for at most 30m"),
        (WRITE, "x", timedelta(0), "longer than zero"),
        (ADMIN, "y" * 2001, None, "longer than 2000 characters"),
    ],
    ids=["no-reason", "over-the-cap", "over-max-ttl", "zero", "reason-too-long"],
)
def test_what_is_refused_names_the_rule(rule, reason, duration, message):
    """Each refusal says what to change, naming the rule when the rule is why."""
    with pytest.raises(AccessRequestError, match=message):
        check_filing(rule, reason, duration)


def test_who_may_decide():
    """Pending, within pending_ttl, not the requester, a member of an approver group of the rule in force."""
    request = filed_request()
    assert check_approvable(request, WRITE, DORA, T0, DAY) is WRITE
    with pytest.raises(AccessDenied, match="your own"):
        check_approvable(request, WRITE, person("bob", "oncall", "dba"), T0, DAY)
    with pytest.raises(AccessDenied, match="only members of group dba"):
        check_approvable(request, WRITE, person("eve", "oncall"), T0, DAY)
    with pytest.raises(RequestConflict, match="waited too long"):
        check_approvable(request, WRITE, DORA, T0 + timedelta(hours=2), timedelta(hours=2))
    with pytest.raises(RequestConflict, match="is denied, not pending"):
        check_approvable(filed_request("denied"), WRITE, DORA, T0, DAY)
    with pytest.raises(RequestConflict, match="no longer grants"):
        check_approvable(request, None, DORA, T0, DAY)


def test_the_preview_starts_the_window_at_approval_under_the_rule_in_force():
    """Approving 3h after filing grants from then; a rule tightened since filing caps the grant again."""
    request = filed_request(duration=timedelta(hours=2), min_approvals=2, approvals=1)
    at = T0 + timedelta(hours=3)
    preview = preview_of(request, POLICY, DORA, at, DAY)
    assert (preview.starts_at, preview.duration) == (at, timedelta(hours=2))
    assert preview.expires_at == at + timedelta(hours=2)
    assert (preview.may_approve, preview.why_not, preview.completes) == (True, None, True)
    assert (preview.approvals, preview.min_approvals, preview.pending_until) == (1, 2, T0 + DAY)
    assert preview.guardrails is not None
    assert preview.guardrails["deny"] == ["ddl"]
    tightened = policy_from(
        "rules:\n  - name: oncall-write\n    who: {groups: [oncall]}\n    databases: [demo]\n    role: write\n"
        "    approval: {approvers: {groups: [dba]}, min_approvals: 3, max_duration: 20m}\n"
    )
    later = preview_of(request, tightened, DORA, at, DAY)
    assert (later.requested, later.duration, later.min_approvals) == (timedelta(hours=2), timedelta(minutes=20), 3)
    assert later.completes is False
    assert later.to_dict()["duration"] == "20m"


@pytest.mark.parametrize(
    ("access_request", "approver", "already", "why_not"),
    [
        (filed_request(), BOB, False, "you cannot approve or deny your own access request"),
        (filed_request(), person("eve", "oncall"), False, "only members of group dba may decide this request"),
        (filed_request(), CAROL, True, "you have already approved request"),
        (filed_request("approved"), CAROL, False, "is approved, not pending"),
        (replace(filed_request(), rule="gone"), CAROL, False, "rule gone no longer grants role write"),
    ],
    ids=["requester", "not-an-approver", "already-approved", "decided", "rule-gone"],
)
def test_the_preview_says_why_an_approver_may_not(access_request, approver, already, why_not):
    """may_approve is False with the same sentence approve() would refuse with."""
    preview = preview_of(access_request, POLICY, approver, T0, DAY, already_approved=already)
    assert preview.may_approve is False
    assert preview.completes is False
    assert preview.why_not is not None
    assert why_not in preview.why_not
