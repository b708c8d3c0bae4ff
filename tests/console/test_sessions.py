"""Console sign-in state: new ids on sign-in, expiry with the token, CSRF comparison, a bounded store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlgate.console.sessions import ANONYMOUS_LIFETIME, SIGNED_IN_LIFETIME, ConsoleSessions, PendingLogin
from sqlgate.identity.principal import Principal

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def alice(expires_at=None):
    return Principal("alice", "https://idp.example.com", "alice", groups=("analysts",), expires_at=expires_at)


def test_signing_in_replaces_the_anonymous_session():
    store = ConsoleSessions()
    visitor = store.anonymous(NOW)
    assert visitor.principal is None
    signed = store.sign_in(visitor, alice(), NOW)
    assert signed.id != visitor.id
    assert signed.csrf != visitor.csrf
    assert store.get(visitor.id, NOW) is None
    assert store.get(signed.id, NOW) is signed
    assert len(store) == 1


def test_a_sign_in_ends_with_its_token_or_after_a_working_day():
    store = ConsoleSessions()
    short = store.sign_in(None, alice(NOW + timedelta(minutes=10)), NOW)
    assert short.expires_at == NOW + timedelta(minutes=10)
    assert store.get(short.id, NOW + timedelta(minutes=9)) is short
    assert store.get(short.id, NOW + timedelta(minutes=10)) is None
    long = store.sign_in(None, alice(NOW + timedelta(days=3)), NOW)
    assert long.expires_at == NOW + SIGNED_IN_LIFETIME
    visitor = store.anonymous(NOW)
    assert store.get(visitor.id, NOW + ANONYMOUS_LIFETIME) is None


def test_csrf_and_messages():
    session = ConsoleSessions().anonymous(NOW)
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None)
    assert not session.csrf_ok("")
    assert not session.csrf_ok(session.csrf[:-1])
    session.flash("ok", "done")
    assert session.take_messages() == [("ok", "done")]
    assert session.take_messages() == []


def test_unknown_ids_and_sign_out():
    store = ConsoleSessions()
    assert store.get(None) is None
    assert store.get("") is None
    assert store.get("nope") is None
    session = store.sign_in(None, alice(), NOW)
    store.end(session.id)
    store.end(session.id)
    assert store.get(session.id, NOW) is None


def test_the_store_is_bounded_oldest_first():
    store = ConsoleSessions(max_sessions=3)
    made = [store.anonymous(NOW) for _ in range(5)]
    assert len(store) == 3
    assert [store.get(s.id, NOW) is not None for s in made] == [False, False, True, True, True]


def test_visitors_never_push_out_a_signed_in_person():
    store = ConsoleSessions(max_sessions=2)
    signed = store.sign_in(None, alice(), NOW)
    for _ in range(50):
        store.anonymous(NOW)
    assert store.get(signed.id, NOW) is signed
    assert len(store) == 3


def pending(state="s1", binding="b1", expires_at=NOW + timedelta(minutes=10)):
    return PendingLogin(
        "https://idp.example.com", state, "n", "v", "http://127.0.0.1/ui/login/callback", binding, expires_at
    )


def test_a_pending_login_is_taken_once_by_the_browser_that_started_it():
    store = ConsoleSessions()
    store.start_login(pending())
    assert store.take_login("s1", "other browser", NOW) is None
    assert store.take_login("s1", "b1", NOW) is None  # a wrong binding used it up
    store.start_login(pending())
    assert store.take_login("s1", None, NOW) is None
    store.start_login(pending())
    assert store.take_login("s1", "b1", NOW) == pending()
    assert store.take_login("s1", "b1", NOW) is None
    store.start_login(pending())
    assert store.take_login("s1", "b1", NOW + timedelta(minutes=10)) is None
    assert store.take_login("unknown", "b1", NOW) is None
