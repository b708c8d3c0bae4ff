"""The webhook body, its Slack text, the signature and the retry schedule (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta

import pytest

from sqlgate.notify.payload import backoff_delay, build_payload, encode, event_text, retryable, sign, verify
from sqlgate.policy.request_rows import AccessRequest
from tests.policy.support import person, utc

T0 = utc("2026-11-25 12:00")
BOB = person("bob", "oncall")
DORA = person("dora", "dba")


def filed_request(status: str = "pending", **changes) -> AccessRequest:
    """A request Bob filed at T0 for write on demo, 30 minutes, in ``status``."""
    request = AccessRequest(
        id="0123456789abcdef0123456789abcdef",
        principal_key=BOB.key,
        subject="bob",
        issuer=BOB.issuer,
        requester_name="Bob",
        database="demo",
        role="write",
        rule="oncall-write",
        duration=timedelta(minutes=30),
        reason="incident 42",
        status=status,
        min_approvals=1,
        approvals=0,
        created_at=T0,
        decided_at=None,
        expires_at=None,
        decided_by=None,
        decision_reason=None,
    )
    if status == "approved":
        request = replace(request, approvals=1, decided_at=T0, expires_at=T0 + timedelta(minutes=30), decided_by="Dora")
    if status == "denied":
        request = replace(request, decided_at=T0, decided_by="Dora", decision_reason="not during the freeze")
    return replace(request, **changes)


def test_the_body_carries_event_text_request_and_actor():
    """Every field a receiver reads, JSON-ready; the gateway's own steps have no actor."""
    body = build_payload(
        "filed", filed_request(), BOB, sent_at=T0, gateway="urn:sqlgate:x", console_url="https://gw/ui/requests"
    )
    assert body["event"] == "request.filed"
    assert body["request"]["reason"] == "incident 42"
    assert body["actor"] == {"subject": "bob", "issuer": BOB.issuer, "name": "Bob"}
    assert (body["gateway"], body["url"]) == ("urn:sqlgate:x", "https://gw/ui/requests")
    assert body["sent_at"] == T0.isoformat()
    assert json.loads(encode(body)) == body
    assert build_payload("expired", filed_request(status="expired"), None, sent_at=T0)["actor"] is None


@pytest.mark.parametrize(
    ("event", "access_request", "actor", "expected"),
    [
        ("filed", filed_request(), BOB, "Bob asks for role *write* on *demo* for 30m: “incident 42”; 1 approval"),
        ("approved", filed_request("approved"), DORA, "Dora approved Bob's request for role *write* on *demo*: usable"),
        ("denied", filed_request("denied"), DORA, "Dora denied Bob's request for role *write* on *demo*: “not during"),
        (
            "expired",
            filed_request("expired", decision_reason="nobody approved or denied it within 1d"),
            None,
            "Bob's request for role *write* on *demo* expired: nobody approved or denied it within 1d",
        ),
        ("expired", replace(filed_request("approved"), status="expired"), None, "Bob's access to role *write* on"),
    ],
    ids=["filed", "approved", "denied", "pending-expired", "grant-ended"],
)
def test_each_event_reads_as_one_sentence(event, access_request, actor, expected):
    """The Slack text says who, what, the outcome, and which request under which rule."""
    text = event_text(event, access_request, actor, None)
    assert text.startswith(expected)
    assert text.endswith("(request `0123456789abcdef0123456789abcdef`, rule oncall-write)")


def test_peoples_words_cannot_ping_a_channel_or_forge_a_link():
    """&, < and > in a reason or a name are escaped; a long reason is shortened in the text only."""
    request = filed_request(reason="<!channel> see <https://evil|docs> & " + "x" * 500, requester_name="<@U1>")
    text = event_text("filed", request, BOB, "https://gw/ui/requests")
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; see &lt;https://evil|docs&gt; &amp;" in text
    assert "&lt;@U1&gt; asks" in text
    assert "x" * 500 not in text
    assert text.endswith("<https://gw/ui/requests|open>")
    assert build_payload("filed", request, BOB, sent_at=T0)["request"]["reason"] == request.reason


def test_signature_is_hmac_sha256_of_the_raw_body():
    """sha256=<hex>, as a receiver recomputes it; a changed body or key does not verify."""
    body = b'{"event":"request.filed"}'
    expected = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign(b"key", body) == f"sha256={expected}"
    assert verify(b"key", body, f"sha256={expected}")
    assert not verify(b"key", body + b" ", f"sha256={expected}")
    assert not verify(b"other", body, f"sha256={expected}")


def test_backoff_doubles_up_to_five_minutes_and_only_transient_answers_retry():
    """1s, 2s, 4s ... capped at 300s; 5xx, 408, 425 and 429 retry, other 4xx do not."""
    assert [backoff_delay(n, timedelta(seconds=1)) for n in range(4)] == [1, 2, 4, 8]
    assert backoff_delay(20, timedelta(seconds=1)) == 300
    assert [retryable(s) for s in (500, 503, 429, 408, 425, 400, 401, 404, 410)] == [True] * 5 + [False] * 4
