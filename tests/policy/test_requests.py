"""Access requests on SQLite and PostgreSQL: file, approve with distinct approvers, deny, use, expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.errors import AccessDenied, AccessRequestError, AuditError, RequestConflict, RequestNotFound
from sqlgate.policy import PolicyHolder, decide
from sqlgate.policy.requests import RequestService
from sqlgate.store import StateStore
from tests.policy.support import person, utc

POLICY = """
rules:
  - name: oncall-write
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    max_ttl: 4h
    approval: {approvers: {groups: [dba]}, min_approvals: 2, max_duration: 2h}
  - name: oncall-read
    who: {groups: [oncall]}
    databases: [demo]
    role: read
  - name: dev-admin
    who: {groups: [dev]}
    databases: [demo]
    role: admin
    approval: {approvers: {groups: [dba]}}
"""
T0 = utc("2026-11-25 12:00")
BOB = person("bob", "oncall")
ALICE = person("alice", "dba")
CAROL = person("carol", "dba")
EVE = person("eve", "oncall")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    pg_server = request.getfixturevalue("pg_server")
    return pg_server.dsn(request.getfixturevalue("pg_database"))


@pytest.fixture
async def env(state_url, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    auditor = MemoryAuditor()
    holder = PolicyHolder(path, auditor)
    await holder.load()
    auditor.events.clear()
    store = await StateStore.open(state_url)
    yield RequestService(store, auditor, holder), auditor, holder, path
    await store.close()


async def test_full_flow_with_two_approvers(env):
    service, auditor, holder, _ = env
    request = await service.create(BOB, "demo", "write", timedelta(hours=2), "fix incident 42", at=T0)
    assert (request.status, request.duration, request.min_approvals) == ("pending", timedelta(hours=2), 2)

    request = await service.approve(request.id, ALICE, at=T0 + timedelta(minutes=1))
    assert (request.status, request.approvals) == ("pending", 1)
    with pytest.raises(RequestConflict, match="already approved"):
        await service.approve(request.id, ALICE, at=T0 + timedelta(minutes=2))

    approved_at = T0 + timedelta(minutes=5)
    request = await service.approve(request.id, CAROL, at=approved_at)
    assert (request.status, request.approvals) == ("approved", 2)
    assert request.expires_at == approved_at + timedelta(hours=2)

    grants = await service.active_grants(BOB, "demo", at=approved_at + timedelta(minutes=1))
    assert [(g.role, g.request_id) for g in grants] == [("write", request.id)]
    decision = decide(holder.policy, BOB, "demo", "write", approved_at, grants=grants)
    assert decision.outcome == "allow"
    assert decision.ttl == timedelta(hours=2)

    assert await service.expire_due(at=approved_at + timedelta(hours=1)) == 0
    assert await service.expire_due(at=approved_at + timedelta(hours=2, seconds=1)) == 1
    assert (await service.get(request.id)).status == "expired"
    assert await service.active_grants(BOB, "demo", at=approved_at + timedelta(hours=3)) == []
    assert auditor.types() == ["request.create", "request.approve", "request.approve", "request.expire"]
    assert auditor.events[0].principal is not None
    assert auditor.events[0].principal.subject == "bob"
    assert auditor.events[2].data["status"] == "approved"


async def test_requester_and_non_approvers_cannot_approve(env):
    service, auditor, _, _ = env
    both = person("bob", "oncall", "dba")
    request = await service.create(both, "demo", "write", None, "deploy", at=T0)
    with pytest.raises(AccessDenied, match="your own"):
        await service.approve(request.id, both, at=T0)
    with pytest.raises(AccessDenied, match="only members of group dba"):
        await service.approve(request.id, EVE, at=T0)
    with pytest.raises(AccessDenied, match="your own"):
        await service.deny(request.id, both, "no", at=T0)
    unchanged = await service.get(request.id)
    assert (unchanged.status, unchanged.approvals) == ("pending", 0)
    assert auditor.types() == ["request.create"]


async def test_single_approval_and_default_duration(env):
    service, _, _, _ = env
    dev = person("dan", "dev")
    request = await service.create(dev, "demo", "admin", None, "migration", at=T0)
    assert request.duration == timedelta(hours=1)  # the policy's default_max_ttl
    request = await service.approve(request.id, ALICE, at=T0)
    assert request.status == "approved"
    assert request.expires_at == T0 + timedelta(hours=1)


async def test_an_approval_comment_is_kept_with_each_step_and_as_the_decisions_reason(env):
    service, auditor, _, _ = env
    request = await service.create(BOB, "demo", "write", timedelta(minutes=30), "incident 42", at=T0)
    request = await service.approve(request.id, ALICE, comment="  checked the ticket  ", at=T0)
    assert (request.status, request.decision_reason) == ("pending", None)  # one of two approvals
    request = await service.approve(request.id, CAROL, comment="ok for 30 minutes", at=T0)
    assert (request.status, request.decision_reason) == ("approved", "ok for 30 minutes")
    approvals = [e for e in auditor.events if e.type == "request.approve"]
    assert [e.reason for e in approvals] == ["checked the ticket", "ok for 30 minutes"]
    other = await service.create(BOB, "demo", "write", timedelta(minutes=30), "again", at=T0)
    with pytest.raises(AccessRequestError, match="longer than"):
        await service.approve(other.id, ALICE, comment="x" * 2001, at=T0)
    unchanged = await service.get(other.id)
    assert unchanged.approvals == 0


async def test_deny_ends_the_request(env):
    service, auditor, _, _ = env
    request = await service.create(BOB, "demo", "write", timedelta(minutes=30), "look at prod", at=T0)
    request = await service.deny(request.id, CAROL, "use the replica", at=T0)
    assert (request.status, request.decision_reason, request.decided_by) == ("denied", "use the replica", "Carol")
    with pytest.raises(RequestConflict, match="is denied"):
        await service.approve(request.id, ALICE, at=T0)
    assert auditor.types() == ["request.create", "request.deny"]
    assert auditor.events[-1].outcome == "denied"


@pytest.mark.parametrize(
    "case",
    [
        (person("ann", "analysts"), "write", "x", AccessDenied, "no rule grants group analysts role write on demo"),
        (BOB, "read", "x", RequestConflict, "already granted"),
        (BOB, "write", "  ", AccessRequestError, "rule oncall-write requires a reason: give a reason"),
        (BOB, "write", "x" * 3000, AccessRequestError, "longer than"),
    ],
)
async def test_bad_requests_are_refused_and_store_nothing(env, case):
    who, role, reason, error, match = case
    service, auditor, _, _ = env
    with pytest.raises(error, match=match):
        await service.create(who, "demo", role, None, reason, at=T0)
    assert await service.list() == []
    assert auditor.events == []


async def test_pending_requests_expire_after_a_day(env):
    service, auditor, _, _ = env
    request = await service.create(BOB, "demo", "write", None, "later", at=T0)
    with pytest.raises(RequestConflict, match="waited too long"):
        await service.approve(request.id, ALICE, at=T0 + timedelta(days=1, seconds=1))
    assert await service.expire_due(at=T0 + timedelta(days=1, seconds=1)) == 1
    assert (await service.get(request.id)).status == "expired"
    assert auditor.events[-1].reason == "was pending"


async def test_an_approval_checks_the_policy_in_force(env):
    service, _, holder, path = env
    request = await service.create(BOB, "demo", "write", None, "fix", at=T0)
    path.write_text(POLICY.replace("oncall-write", "oncall-write-v2"))
    assert await holder.reload()
    with pytest.raises(RequestConflict, match="no longer grants"):
        await service.approve(request.id, ALICE, at=T0)


async def test_unknown_id(env):
    service, _, _, _ = env
    with pytest.raises(RequestNotFound):
        await service.approve("nope", ALICE, at=T0)


async def test_list_filters(env):
    service, _, _, _ = env
    first = await service.create(BOB, "demo", "write", None, "one", at=T0)
    await service.create(person("dan", "dev"), "demo", "admin", None, "two", at=T0 + timedelta(seconds=1))
    await service.deny(first.id, ALICE, "no", at=T0)
    assert [r.reason for r in await service.list()] == ["two", "one"]
    assert [r.reason for r in await service.list(principal_key=BOB.key)] == ["one"]
    assert [r.reason for r in await service.list(status="pending")] == ["two"]
    assert (await service.list(status="denied"))[0].to_dict()["status"] == "denied"


class FailingAuditor(MemoryAuditor):
    async def record(self, event):
        raise AuditError(f"audit log unavailable for {event.type}")


async def test_a_step_whose_audit_fails_does_not_happen(env):
    service, _, holder, _ = env
    broken = RequestService(service._store, FailingAuditor(), holder)
    with pytest.raises(AuditError):
        await broken.create(BOB, "demo", "write", None, "x", at=T0)
    assert await service.list() == []


async def test_concurrent_approvals_count_both(env, state_url):
    """Two approvers at once: the row lock serialises them, so the second sees the first (PostgreSQL)."""
    if state_url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers itself; the row lock matters on PostgreSQL")
    service, _, _, _ = env
    request = await service.create(BOB, "demo", "write", None, "incident", at=T0)
    results = await asyncio.gather(service.approve(request.id, ALICE, at=T0), service.approve(request.id, CAROL, at=T0))
    assert sorted(r.approvals for r in results) == [1, 2]
    final = await service.get(request.id)
    assert (final.status, final.approvals) == ("approved", 2)


class Recorder:
    """A RequestListener that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []

    def request_event(self, event, request, actor):
        self.events.append((event, request.status, actor.subject if actor else None))


class Broken:
    """A RequestListener that fails."""

    def request_event(self, event, request, actor):
        del actor
        raise RuntimeError(f"listener down for {event} of {request.id}")


async def test_the_window_starts_when_the_last_approval_lands(env):
    """Filed at T0, approved five hours later: the grant runs from the approval for the duration filed."""
    service, _, holder, _ = env
    request = await service.create(BOB, "demo", "write", timedelta(minutes=90), "incident 43", at=T0)
    await service.approve(request.id, ALICE, at=T0 + timedelta(hours=4))
    last = T0 + timedelta(hours=5)
    approved = await service.approve(request.id, CAROL, at=last)
    assert (approved.decided_at, approved.expires_at) == (last, last + timedelta(minutes=90))
    grants = await service.active_grants(BOB, "demo", at=last + timedelta(minutes=89))
    assert decide(holder.policy, BOB, "demo", "write", last + timedelta(minutes=89), grants=grants).allowed
    assert await service.active_grants(BOB, "demo", at=last + timedelta(minutes=90)) == []


async def test_pending_requests_expire_after_pending_ttl_and_the_requester_is_told(env):
    """pending_ttl 2h: expired with a reason, audited, told to the listener, listed as expired for the requester."""
    service, auditor, holder, _ = env
    recorder = Recorder()
    short = RequestService(service._store, auditor, holder, pending_ttl=timedelta(hours=2), listener=recorder)
    request = await short.create(BOB, "demo", "write", None, "later", at=T0)
    assert await short.expire_due(at=T0 + timedelta(hours=1, minutes=59)) == 0
    preview = await short.preview(request.id, ALICE, at=T0 + timedelta(hours=1))
    assert preview.pending_until == T0 + timedelta(hours=2)
    with pytest.raises(RequestConflict, match="waited too long"):
        await short.approve(request.id, ALICE, at=T0 + timedelta(hours=2))
    assert await short.expire_due(at=T0 + timedelta(hours=2)) == 1
    assert await short.expire_due(at=T0 + timedelta(hours=3)) == 0  # expired once, told once
    [mine] = await short.list(principal_key=BOB.key)
    assert (mine.status, mine.decision_reason) == ("expired", "nobody approved or denied it within 2h")
    assert recorder.events == [("filed", "pending", "bob"), ("expired", "expired", None)]
    expiry = auditor.events[-1]
    assert (expiry.type, expiry.reason, expiry.data["was"]) == ("request.expire", "was pending", "pending")


async def test_the_service_preview_knows_who_approved_already(env):
    """Two approvals needed: after Alice approves, her preview says so and Carol's would complete it."""
    service, auditor, _, _ = env
    request = await service.create(BOB, "demo", "write", timedelta(hours=1), "deploy", at=T0)
    await service.approve(request.id, ALICE, at=T0)
    count = len(auditor.events)
    alice = await service.preview(request.id, ALICE, at=T0 + timedelta(minutes=1))
    carol = await service.preview(request.id, CAROL, at=T0 + timedelta(minutes=1))
    assert (alice.may_approve, alice.why_not) == (False, f"you have already approved request {request.id}")
    assert (carol.may_approve, carol.completes, carol.expires_at) == (True, True, T0 + timedelta(hours=1, minutes=1))
    both = await service.previews([await service.get(request.id)], ALICE, at=T0)
    assert both[request.id].may_approve is False
    assert len(auditor.events) == count  # a preview records nothing
    assert (await service.get(request.id)).approvals == 1


async def test_the_listener_hears_committed_steps_only_and_cannot_break_them(env, caplog):
    """A step whose audit fails tells nobody; a failing listener is logged and the step stands."""
    service, auditor, holder, _ = env
    recorder = Recorder()
    failing = RequestService(service._store, FailingAuditor(), holder, listener=recorder)
    with pytest.raises(AuditError):
        await failing.create(BOB, "demo", "write", None, "x", at=T0)
    assert recorder.events == []
    loud = RequestService(service._store, auditor, holder, listener=Broken())
    request = await loud.create(person("dan", "dev"), "demo", "admin", None, "migration", at=T0)
    denied = await loud.deny(request.id, ALICE, "not today", at=T0)
    assert denied.status == "denied"
    assert "could not queue the denied notification" in caplog.text
