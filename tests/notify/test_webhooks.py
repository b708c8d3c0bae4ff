"""Webhook delivery against a real HTTP receiver on 127.0.0.1: payload, signature, retries, failures counted."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.config import Settings
from sqlgate.errors import AccessRequestError, ConfigError
from sqlgate.notify.payload import verify
from sqlgate.notify.webhooks import WebhookNotifier
from sqlgate.policy import PolicyHolder
from sqlgate.policy.requests import RequestService
from sqlgate.store import StateStore
from tests.notify.receiver import Receiver
from tests.notify.test_payload import BOB, DORA, filed_request
from tests.policy.support import utc

SECRET = "s3cret-webhook-key-0123456789"
POLICY = """
rules:
  - name: oncall-write
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    max_ttl: 4h
    approval: {approvers: {groups: [dba]}, max_duration: 2h}
"""


@pytest.fixture
def receiver():
    """A receiver answering 200 unless a test scripts otherwise."""
    running = Receiver()
    yield running
    running.close()


def notifier_for(receiver: Receiver, monkeypatch, **hook) -> WebhookNotifier:
    """A started notifier with one webhook to ``receiver`` (fast backoff), its key in $TEST_WEBHOOK_KEY."""
    monkeypatch.setenv("TEST_WEBHOOK_KEY", SECRET)
    config = {"url": receiver.url(), "secret_env": "TEST_WEBHOOK_KEY", "backoff": 0.01, **hook}
    notifier = WebhookNotifier.from_settings(Settings(notify={"webhooks": [config]}), gateway="urn:sqlgate:test")
    notifier.start()
    return notifier


def count(name: str, **labels: str) -> float:
    """The current value of a counter sample (0 when never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_payload_and_signature_reach_the_receiver(receiver, monkeypatch):
    """One POST: JSON with event, Slack text and the request; the signature verifies over the raw body."""
    notifier = notifier_for(receiver, monkeypatch)
    delivered = count("sqlgate_webhook_deliveries_total", event="filed", outcome="delivered")
    request = filed_request()
    notifier.request_event("filed", request, BOB)
    await notifier.drain()
    await notifier.aclose()
    [post] = receiver.received
    assert post.path == "/hooks/T000/B000/secretpart"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-Sqlgate-Event"] == "request.filed"
    assert verify(SECRET.encode(), post.body, post.headers["X-Sqlgate-Signature"])
    assert not verify(b"another key", post.body, post.headers["X-Sqlgate-Signature"])
    body = post.json()
    assert body["event"] == "request.filed"
    assert body["request"]["id"] == request.id
    assert body["gateway"] == "urn:sqlgate:test"
    assert "Bob asks for role *write* on *demo* for 30m" in body["text"]
    assert count("sqlgate_webhook_deliveries_total", event="filed", outcome="delivered") == delivered + 1


async def test_retries_after_500s_with_one_delivery_id(receiver, monkeypatch):
    """500, 503, then 200: three attempts with the same delivery id, two retries counted, delivered."""
    receiver.script = [500, 503, 200]
    notifier = notifier_for(receiver, monkeypatch)
    retries = count("sqlgate_webhook_retries_total", event="approved")
    notifier.request_event("approved", filed_request(status="approved"), DORA)
    await notifier.drain()
    await notifier.aclose()
    assert len(receiver.received) == 3
    assert len({post.headers["X-Sqlgate-Delivery"] for post in receiver.received}) == 1
    assert len({post.body for post in receiver.received}) == 1
    assert count("sqlgate_webhook_retries_total", event="approved") == retries + 2


async def test_a_delivery_failing_for_good_is_counted_and_logged_without_secrets(receiver, monkeypatch, caplog):
    """Always 500: 1 + retries attempts, then one failure counted and a warning naming only scheme and host."""
    receiver.script = [500]
    notifier = notifier_for(receiver, monkeypatch, retries=2)
    failed = count("sqlgate_webhook_deliveries_total", event="denied", outcome="failed")
    with caplog.at_level(logging.WARNING, logger="sqlgate.notify"):
        notifier.request_event("denied", filed_request(status="denied"), DORA)
        await notifier.drain()
    await notifier.aclose()
    assert len(receiver.received) == 3
    assert count("sqlgate_webhook_deliveries_total", event="denied", outcome="failed") == failed + 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "not delivered after 3 attempt(s): HTTP 500" in warning
    assert f"http://127.0.0.1:{receiver.server.server_address[1]}:" in warning
    assert "secretpart" not in warning
    assert SECRET not in caplog.text


async def test_a_4xx_is_not_retried(receiver, monkeypatch):
    """A receiver's 404 will not change: one attempt, counted as failed."""
    receiver.script = [404]
    notifier = notifier_for(receiver, monkeypatch)
    failed = count("sqlgate_webhook_deliveries_total", event="filed", outcome="failed")
    notifier.request_event("filed", filed_request(), BOB)
    await notifier.drain()
    await notifier.aclose()
    assert len(receiver.received) == 1
    assert count("sqlgate_webhook_deliveries_total", event="filed", outcome="failed") == failed + 1


async def test_an_unreachable_receiver_fails_and_is_counted(receiver, monkeypatch):
    """Connection refused on every attempt: failed, the request side never saw an error."""
    url = receiver.url()
    receiver.close()
    monkeypatch.setenv("TEST_WEBHOOK_KEY", SECRET)
    settings = Settings(notify={"webhooks": [{"url": url, "retries": 1, "backoff": 0.01}]})
    notifier = WebhookNotifier.from_settings(settings)
    notifier.start()
    failed = count("sqlgate_webhook_deliveries_total", event="expired", outcome="failed")
    notifier.request_event("expired", filed_request(status="expired"), None)
    await notifier.drain()
    await notifier.aclose()
    assert count("sqlgate_webhook_deliveries_total", event="expired", outcome="failed") == failed + 1


async def test_only_the_chosen_events_are_sent_and_unsigned_without_a_key(receiver):
    """events: [approved] skips filed; without secret_env/secret_file no signature header is sent."""
    settings = Settings(notify={"webhooks": [{"url": receiver.url(), "events": ["approved"]}]})
    notifier = WebhookNotifier.from_settings(settings)
    notifier.start()
    notifier.request_event("filed", filed_request(), BOB)
    notifier.request_event("approved", filed_request(status="approved"), DORA)
    await notifier.drain()
    await notifier.aclose()
    assert [post.json()["event"] for post in receiver.received] == ["request.approved"]
    assert "X-Sqlgate-Signature" not in receiver.received[0].headers


async def test_a_full_queue_drops_and_counts_without_blocking(receiver):
    """Queue of one, worker not started: the second event is dropped (counted), request_event returns."""
    settings = Settings(notify={"webhooks": [{"url": receiver.url()}]})
    notifier = WebhookNotifier(WebhookNotifier.from_settings(settings).webhooks, queue_size=1)
    dropped = count("sqlgate_webhook_deliveries_total", event="filed", outcome="dropped")
    notifier.request_event("filed", filed_request(), BOB)
    notifier.request_event("filed", filed_request(), BOB)
    assert count("sqlgate_webhook_deliveries_total", event="filed", outcome="dropped") == dropped + 1
    notifier.start()
    await notifier.drain()
    await notifier.aclose()
    assert len(receiver.received) == 1


def test_a_missing_or_inline_key_fails_at_start(tmp_path, monkeypatch):
    """An unset secret_env or unreadable secret_file stops start-up; an inline secret is refused by the settings."""
    monkeypatch.delenv("NO_SUCH_WEBHOOK_KEY", raising=False)
    unset = Settings(notify={"webhooks": [{"url": "https://hooks.example.com/x", "secret_env": "NO_SUCH_WEBHOOK_KEY"}]})
    with pytest.raises(ConfigError, match="NO_SUCH_WEBHOOK_KEY"):
        WebhookNotifier.from_settings(unset)
    missing = Settings(notify={"webhooks": [{"url": "https://hooks.example.com/x", "secret_file": tmp_path / "nope"}]})
    with pytest.raises(ConfigError, match="cannot read webhook secret_file"):
        WebhookNotifier.from_settings(missing)
    key = tmp_path / "key"
    key.write_text(SECRET + "\n")
    read = Settings(notify={"webhooks": [{"url": "https://hooks.example.com/x", "secret_file": key}]})
    assert WebhookNotifier.from_settings(read).webhooks[0].secret == SECRET.encode()
    with pytest.raises(ValueError, match="inline secrets are refused"):
        Settings(notify={"webhooks": [{"url": "https://hooks.example.com/x", "secret": SECRET}]})
    with pytest.raises(ValueError, match="https://"):
        Settings(notify={"webhooks": [{"url": "http://hooks.example.com/x"}]})


async def test_the_request_service_tells_the_webhook_each_step(receiver, monkeypatch, tmp_path):
    """Filed, approved, a pending request expiring after pending_ttl: each committed step is one POST."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    holder = PolicyHolder(path, MemoryAuditor())
    await holder.load()
    store = await StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    notifier = notifier_for(receiver, monkeypatch)
    service = RequestService(store, MemoryAuditor(), holder, pending_ttl=timedelta(hours=2), listener=notifier)
    t0 = utc("2026-11-25 12:00")
    try:
        first = await service.create(BOB, "demo", "write", timedelta(minutes=30), "incident 42", at=t0)
        await service.approve(first.id, DORA, at=t0 + timedelta(minutes=10))
        second = await service.create(BOB, "demo", "write", None, "later", at=t0)
        with pytest.raises(AccessRequestError, match="rule oncall-write requires a reason"):
            await service.create(BOB, "demo", "write", None, " ", at=t0)
        assert await service.expire_due(at=t0 + timedelta(hours=2)) == 2  # the pending one and the ended grant
        await notifier.drain()
    finally:
        await notifier.aclose()
        await store.close()
    events = [(post.json()["event"], post.json()["request"]["id"]) for post in receiver.received]
    assert sorted(events) == sorted(
        [
            ("request.filed", first.id),
            ("request.approved", first.id),
            ("request.filed", second.id),
            ("request.expired", second.id),
            ("request.expired", first.id),
        ]
    )
    bodies = [post.json() for post in receiver.received]
    expired = {body["request"]["id"]: body for body in bodies if body["event"] == "request.expired"}
    assert expired[second.id]["request"]["status"] == "expired"
    assert (
        "Bob's request for role *write* on *demo* expired: nobody approved or denied it within 2h"
        in (expired[second.id]["text"])
    )
    assert "Bob's access to role *write* on *demo* has ended" in expired[first.id]["text"]
    approved = next(post.json() for post in receiver.received if post.json()["event"] == "request.approved")
    assert approved["request"]["expires_at"] == (t0 + timedelta(minutes=40)).isoformat()
    assert approved["actor"]["name"] == "Dora"
