"""/v1/requests: the rule's reason and duration limits, one request with the approver's preview, who sees what."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import httpx
import pytest

from tests.api.conftest import bearer
from tests.gateway import DEMO_POLICY, RunningGateway


def _file(client, token, **body):
    return client.post("/v1/requests", headers=bearer(token), json={"database": "demo", "role": "write", **body})


def test_reason_and_duration_limits_name_the_rule(gateway, client):
    """No reason, or longer than the rule's max_duration (2h): 400 naming the rule; nothing is filed."""
    olga = gateway.token("olga", ("oncall",))
    missing = _file(client, olga, reason="  ")
    assert missing.status_code == 400, missing.text
    assert "rule oncall-write-with-approval requires a reason" in missing.json()["detail"]
    too_long = _file(client, olga, reason="incident 9", duration="3h")
    assert too_long.status_code == 400, too_long.text
    assert (
        "rule oncall-write-with-approval grants role write for at most 2h; ask for 2h or less (asked: 3h)"
        in (too_long.json()["detail"])
    )
    assert client.get("/v1/requests", headers=bearer(olga)).json() == {"requests": []}
    default = _file(client, olga, reason="incident 9")
    assert default.status_code == 201, default.text
    assert default.json()["duration"] == "2h"


def test_an_approver_sees_what_approving_would_grant(gateway, client):
    """GET /v1/requests/{id}: the approver's preview (window from now, may approve); the requester gets none."""
    olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
    created = _file(client, olga, reason="incident 9", duration="45m").json()
    seen = client.get(f"/v1/requests/{created['id']}", headers=bearer(dora))
    assert seen.status_code == 200, seen.text
    preview = seen.json()["preview"]
    assert (preview["role"], preview["database"], preview["rule"]) == ("write", "demo", "oncall-write-with-approval")
    assert (preview["duration"], preview["duration_seconds"]) == ("45m", 2700)
    assert (preview["may_approve"], preview["why_not"], preview["completes"]) == (True, None, True)
    starts, ends = datetime.fromisoformat(preview["starts_at"]), datetime.fromisoformat(preview["expires_at"])
    assert ends - starts == timedelta(minutes=45)
    assert datetime.fromisoformat(preview["pending_until"]) == datetime.fromisoformat(
        created["created_at"]
    ) + timedelta(hours=24)
    listed = client.get("/v1/requests", headers=bearer(dora)).json()["requests"]
    assert listed[0]["preview"]["may_approve"] is True
    own = client.get(f"/v1/requests/{created['id']}", headers=bearer(olga)).json()
    assert own["preview"] is None
    stranger = client.get(f"/v1/requests/{created['id']}", headers=bearer(gateway.token("erin", ("engineers",))))
    assert stranger.status_code == 404

    approved = client.post(f"/v1/requests/{created['id']}/approve", headers=bearer(dora)).json()
    window = datetime.fromisoformat(approved["expires_at"]) - datetime.fromisoformat(approved["decided_at"])
    assert window == timedelta(minutes=45)  # the window starts at approval, not at filing
    after = client.get(f"/v1/requests/{created['id']}", headers=bearer(dora)).json()["preview"]
    assert after["may_approve"] is False
    assert "is approved, not pending" in after["why_not"]


def test_an_approval_comment_reaches_the_requester_and_the_audit_log(gateway, client):
    olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
    created = _file(client, olga, reason="incident 10", duration="30m").json()
    approved = client.post(
        f"/v1/requests/{created['id']}/approve", headers=bearer(dora), json={"comment": "fine for the incident"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision_reason"] == "fine for the incident"
    mine = client.get(f"/v1/requests/{created['id']}", headers=bearer(olga)).json()
    assert mine["decision_reason"] == "fine for the incident"
    auditor = gateway.token("audrey", ("auditors",))
    records = client.get("/v1/audit", params={"type": "request.approve"}, headers=bearer(auditor)).json()["records"]
    assert any(r["reason"] == "fine for the incident" for r in records), records


@pytest.fixture
def short_pending(pg_server, pg_database, tmp_path, monkeypatch):
    """The demo gateway with requests.pending_ttl 3h (from the environment)."""
    monkeypatch.setenv("SQLGATE_REQUESTS__PENDING_TTL", "3h")
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def test_pending_ttl_from_the_settings_expires_requests_and_the_requester_sees_it(short_pending):
    """The gateway's service uses requests.pending_ttl; once it passes, the requester's list says expired and why."""
    gateway = short_pending
    with httpx.Client(base_url=gateway.http_url, timeout=60) as client:
        olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
        created = _file(client, olga, reason="incident 10").json()
        preview = client.get(f"/v1/requests/{created['id']}", headers=bearer(dora)).json()["preview"]
        filed_at = datetime.fromisoformat(created["created_at"])
        assert datetime.fromisoformat(preview["pending_until"]) == filed_at + timedelta(hours=3)
        service = gateway.gateway.services.requests
        assert gateway.call(service.expire_due(at=filed_at + timedelta(hours=3))) == 1
        [mine] = client.get("/v1/requests", headers=bearer(olga)).json()["requests"]
        assert (mine["status"], mine["decision_reason"]) == ("expired", "nobody approved or denied it within 3h")
        late = client.post(f"/v1/requests/{created['id']}/approve", headers=bearer(dora))
        assert late.status_code == 409
