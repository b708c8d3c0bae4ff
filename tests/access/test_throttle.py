"""Failed-login throttling: back-off per source and per claimed subject, and summaries instead of floods."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import httpx
import psycopg
import pytest

from sqlgate.access.throttle import FailureThrottle, claimed_subject
from sqlgate.config import FailuresConfig
from tests.gateway import DEMO_POLICY
from tests.proxy.tuned import TunedGateway, records, wait_for


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(**settings) -> tuple[FailureThrottle, Clock]:
    clock = Clock()
    defaults = {"threshold": 3, "base_delay": timedelta(seconds=1), "max_delay": timedelta(seconds=8)}
    return FailureThrottle(FailuresConfig(**{**defaults, **settings}), clock), clock


def test_a_source_backs_off_after_threshold_failures_doubling_to_the_maximum():
    """Three failures are free; then 1 s, 2 s, 4 s, 8 s, 8 s."""
    throttle, clock = _throttle()
    waits = []
    for _ in range(8):
        throttle.failed("10.0.0.1", None)
        waiting = throttle.wait("10.0.0.1", None)
        waits.append(waiting[1] if waiting else 0)
    assert waits == [0, 0, 1, 2, 4, 8, 8, 8]
    assert throttle.wait("10.0.0.2", None) is None  # another source is not affected
    clock.now += 8
    assert throttle.wait("10.0.0.1", None) is None


def test_a_subject_backs_off_from_any_source_and_a_success_clears_it():
    """Failures of one claimed subject from many addresses add up; its verified login clears them."""
    throttle, _clock = _throttle()
    for n in range(4):
        throttle.failed(f"10.0.0.{n}", "iss#bob")
    assert throttle.wait("10.0.0.9", "iss#bob") == ("subject", 2.0)
    throttle.succeeded("iss#bob")
    assert throttle.wait("10.0.0.9", "iss#bob") is None


def test_an_old_failure_is_forgotten():
    """A source quiet for forget_after starts afresh."""
    throttle, clock = _throttle(forget_after=timedelta(minutes=1))
    for _ in range(3):
        throttle.failed("10.0.0.1", None)
    clock.now += 61
    throttle.failed("10.0.0.1", None)
    assert throttle.wait("10.0.0.1", None) is None


def test_failures_past_the_threshold_are_summarised_once_per_window():
    """The first three are recorded one by one; the rest become one summary per window with the count."""
    throttle, clock = _throttle(summary_window=timedelta(seconds=60))
    own = []
    for _ in range(10):
        throttle.failed("10.0.0.1", None)
        own.append(not throttle.summarised("10.0.0.1", "bad signature"))
    assert throttle.summarised("10.0.0.1", "backing off", throttled=True)
    assert own == [True] * 3 + [False] * 7
    assert throttle.due() == []
    assert throttle.next_due == 60
    clock.now += 60
    (summary,) = throttle.due()
    assert (summary.source, summary.failures, summary.throttled) == ("10.0.0.1", 7, 1)
    assert summary.reasons == {"bad signature": 7, "backing off": 1}
    assert throttle.due() == []


def test_the_tracked_keys_are_bounded():
    """A flood of distinct sources keeps at most max_tracked keys."""
    throttle, _clock = _throttle(max_tracked=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", None)
    assert len(throttle._tracks) == 100  # the bound itself is what is tested


def _jwt(claims: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{body}.c2ln"


def test_the_claimed_subject_is_read_without_verification_and_never_fails():
    """iss#sub from the payload; None for anything that is not a JWT with a string sub."""
    assert claimed_subject(_jwt({"iss": "https://idp", "sub": "bob"})) == "https://idp#bob"
    assert claimed_subject(_jwt({"sub": 7})) is None
    assert claimed_subject("not a token") is None
    assert claimed_subject("a.%%%.c") is None
    assert claimed_subject("a." + "x" * 20000 + ".c") is None


@pytest.fixture
def throttled_gateway(pg_server, pg_database, tmp_path):
    """A gateway that backs off after 3 failures and summarises per second."""
    running = TunedGateway(
        pg_server,
        tmp_path,
        DEMO_POLICY,
        pg_database,
        secrets.token_hex(3),
        extra="auth: {failures: {threshold: 3, base_delay: 30s, summary_window: 1s}}\n",
    )
    yield running
    running.stop()


def test_repeated_failed_logins_are_throttled_and_summarised(throttled_gateway):
    """A source failing 12 times: 3 audited on their own, then 429/28000 'too many failed logins', one summary."""
    gateway = throttled_gateway
    bad = gateway.token("mallory", ("engineers",)) + "x"
    for _ in range(3):
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(**gateway.conninfo("mallory", bad), connect_timeout=10)
        assert "too many failed logins" not in str(caught.value)
    messages = []
    for _ in range(5):
        with pytest.raises(psycopg.OperationalError) as caught:
            psycopg.connect(**gateway.conninfo("mallory", bad), connect_timeout=10)
        messages.append(str(caught.value))
    assert all("too many failed logins" in m for m in messages)
    answer = httpx.post(
        f"{gateway.http_url}/v1/query",
        json={"database": "demo", "sql": "SELECT 1"},
        headers={"Authorization": f"Bearer {bad}"},
        timeout=30,
    )
    assert answer.status_code == 429
    assert "too many failed logins" in answer.text

    def summaries():
        return [r for r in records(gateway, "auth.failure") if r["data"].get("summary")]

    wait_for(lambda: sum(r["data"]["count"] for r in summaries()) == 6)
    own = [r for r in records(gateway, "auth.failure") if not r["data"].get("summary")]
    assert len(own) == 3
    assert {r["source"] for r in summaries()} == {"127.0.0.1"}
    good = gateway.token("erin", ("engineers",))
    with pytest.raises(psycopg.OperationalError, match="too many failed logins"):  # the source still backs off
        psycopg.connect(**gateway.conninfo("erin", good), connect_timeout=10)
    metrics = httpx.get(f"{gateway.http_url}/metrics", timeout=30).text
    assert 'sqlgate_logins_throttled_total{scope="source"}' in metrics
    assert "sqlgate_login_failures_summarised_total" in metrics
