"""`sqlgate creds`, `request`, `requests`, `approve` and `deny` against a running gateway."""

from __future__ import annotations

import json
import secrets

import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from tests.gateway import DEMO_POLICY, RunningGateway

runner = CliRunner()


@pytest.fixture
def gateway(pg_server, pg_database, tmp_path):
    """A gateway serving ``demo`` with the demo policy."""
    running = RunningGateway(pg_server, tmp_path, DEMO_POLICY, pg_database, secrets.token_hex(3))
    yield running
    running.stop()


def sqlgate(gateway, token, *args):
    """Run a command against ``gateway`` with ``token`` (no settings file: defaults)."""
    return runner.invoke(app, [*args, "--gateway", gateway.http_url, "--token", token], catch_exceptions=False)


def test_creds_prints_a_login(gateway):
    """`sqlgate creds demo --json` prints the login; the text form names every field."""
    token = gateway.token("erin", ("engineers",))
    result = sqlgate(gateway, token, "creds", "demo", "--ttl", "5m", "--json")
    assert result.exit_code == 0, result.output
    issued = json.loads(result.output)
    assert issued["dbname"] == gateway.database
    assert issued["dsn"].startswith("postgresql://")
    text = sqlgate(gateway, token, "creds", "demo")
    assert "password:" in text.output
    assert "expires_at:" in text.output


def test_creds_refused_says_why(gateway, monkeypatch):
    """A refusal prints the gateway's reason and exits 1; SQLGATE_TOKEN is read too."""
    monkeypatch.setenv("SQLGATE_TOKEN", gateway.token("mallory", ("interns",)))
    result = runner.invoke(app, ["creds", "demo", "--gateway", gateway.http_url])
    assert result.exit_code == 1
    assert "403" in str(result.exception)
    assert "no rule grants" in str(result.exception)


def test_request_approve_and_list(gateway):
    """File a request, see it as the approver, approve it; the requester sees it approved."""
    olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
    filed = sqlgate(
        gateway, olga, "request", "demo", "--role", "write", "--duration", "30m", "--reason", "incident 7", "--json"
    )
    assert filed.exit_code == 0, filed.output
    request_id = json.loads(filed.output)["id"]
    listed = sqlgate(gateway, dora, "requests")
    assert request_id in listed.output
    assert "pending (0/1)" in listed.output
    approved = sqlgate(gateway, dora, "approve", request_id)
    assert approved.exit_code == 0, approved.output
    assert "approved until" in approved.output
    mine = json.loads(sqlgate(gateway, olga, "requests", "--json").output)
    assert mine[0]["status"] == "approved"


def test_deny_needs_a_reason_and_an_approver(gateway):
    """Deny requires --reason; the requester cannot decide their own request."""
    olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
    filed = json.loads(sqlgate(gateway, olga, "request", "demo", "--role", "write", "--reason", "x", "--json").output)
    missing = runner.invoke(app, ["deny", filed["id"], "--gateway", gateway.http_url, "--token", dora])
    assert missing.exit_code == 2
    own = runner.invoke(app, ["deny", filed["id"], "--reason", "no", "--gateway", gateway.http_url, "--token", olga])
    assert own.exit_code == 1
    assert "403" in str(own.exception)
    denied = sqlgate(gateway, dora, "deny", filed["id"], "--reason", "not now")
    assert denied.exit_code == 0, denied.output
    assert "denied" in denied.output


def test_request_refusals_name_the_rule(gateway):
    """No reason, or longer than the rule allows: exit 1 with the gateway's sentence; a bad duration: exit 2."""
    olga = gateway.token("olga", ("oncall",))
    missing = runner.invoke(app, ["request", "demo", "--role", "write", "--gateway", gateway.http_url, "--token", olga])
    assert missing.exit_code == 1
    assert "rule oncall-write-with-approval requires a reason" in str(missing.exception)
    too_long = sqlgate_raw(gateway, olga, "request", "demo", "--role", "write", "--reason", "x", "--duration", "3h")
    assert too_long.exit_code == 1
    assert "grants role write for at most 2h; ask for 2h or less (asked: 3h)" in str(too_long.exception)
    garbled = sqlgate_raw(gateway, olga, "request", "demo", "--role", "write", "--reason", "x", "--duration", "soon")
    assert garbled.exit_code == 2
    assert "not a duration" in garbled.output


def test_requests_shows_approvers_what_approving_grants(gateway):
    """The list's last column and `sqlgate requests ID` say what approving now grants; the requester sees no preview."""
    olga, dora = gateway.token("olga", ("oncall",)), gateway.token("dora", ("dba",))
    filed = sqlgate(gateway, olga, "request", "demo", "--role", "write", "--reason", "incident 8", "--duration", "90m")
    assert filed.exit_code == 0, filed.output
    request_id = json.loads(sqlgate(gateway, olga, "requests", "--json").output)[0]["id"]
    shown = sqlgate(gateway, dora, "requests", request_id)
    assert shown.exit_code == 0, shown.output
    assert "if you approve now: write on demo for 1h30m, until" in shown.output
    assert "expires undecided at:" in shown.output
    as_json = json.loads(sqlgate(gateway, dora, "requests", request_id, "--json").output)
    assert as_json["preview"]["duration_seconds"] == 5400
    own = json.loads(sqlgate(gateway, olga, "requests", request_id, "--json").output)
    assert own["preview"] is None
    mine = sqlgate(gateway, olga, "requests", request_id)
    assert "if you approve now" not in mine.output


def sqlgate_raw(gateway, token, *args):
    """Like :func:`sqlgate`, keeping the exception for the test to read."""
    return runner.invoke(app, [*args, "--gateway", gateway.http_url, "--token", token])
