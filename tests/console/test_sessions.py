"""Console sign-in state in the state database (SQLite and PostgreSQL): shared by replicas, never a usable cookie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sqlgate.console.sessions import SIGNED_IN_LIFETIME, ConsoleSessions, PendingLogin, session_key
from sqlgate.console.tables import console_sessions
from sqlgate.errors import IdentityError
from sqlgate.identity.principal import Principal
from sqlgate.store import StateStore

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def alice(expires_at=None):
    claims = {"groups": ["analysts"], "repository": "acme/app"}
    return Principal(
        "alice",
        "https://idp.example.com",
        "Alice",
        "a@example.com",
        ("analysts",),
        claims,
        "10.0.0.1",
        expires_at,
        "dev",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_server").dsn(request.getfixturevalue("pg_database"))
    opened = await StateStore.open(url)
    yield opened
    await opened.close()


async def test_a_sign_in_is_known_to_every_replica_and_keeps_the_principal(store, tmp_path):
    here, there = ConsoleSessions(store), ConsoleSessions(store)
    visitor = here.visitor()
    signed = await here.sign_in(visitor, alice(NOW + timedelta(hours=1)), NOW)
    assert signed.cookie != visitor.cookie
    assert signed.csrf != visitor.csrf
    seen = await there.get(signed.cookie, NOW)
    assert seen is not None
    assert seen.csrf == signed.csrf
    assert seen.principal is not None
    assert (seen.principal.key, seen.principal.name, seen.principal.email) == (alice().key, "Alice", "a@example.com")
    assert (seen.principal.groups, dict(seen.principal.claims), seen.principal.method) == (
        ("analysts",),
        {"groups": ["analysts"], "repository": "acme/app"},
        "dev",
    )
    assert seen.principal.expires_at == NOW + timedelta(hours=1)
    assert seen.principal.source is None  # the address is each request's own
    async with store.begin() as conn:
        keys = (await conn.execute(select(console_sessions.c.key))).scalars().all()
    assert keys == [session_key(signed.cookie)]  # the database holds no usable cookie
    assert signed.cookie not in keys


async def test_a_sign_in_ends_with_its_token_or_after_a_working_day(store):
    sessions = ConsoleSessions(store)
    short = await sessions.sign_in(None, alice(NOW + timedelta(minutes=10)), NOW)
    assert await sessions.get(short.cookie, NOW + timedelta(minutes=9)) is not None
    assert await sessions.get(short.cookie, NOW + timedelta(minutes=10)) is None
    long = await sessions.sign_in(None, alice(NOW + timedelta(days=3)), NOW)
    assert await sessions.get(long.cookie, NOW + SIGNED_IN_LIFETIME - timedelta(seconds=1)) is not None
    assert await sessions.get(long.cookie, NOW + SIGNED_IN_LIFETIME) is None


async def test_sign_out_and_replacement_forget_the_old_cookie(store):
    sessions = ConsoleSessions(store)
    first = await sessions.sign_in(None, alice(), NOW)
    second = await sessions.sign_in(first, alice(), NOW)
    assert await sessions.get(first.cookie, NOW) is None
    await sessions.end(second)
    await sessions.end(second)
    assert await sessions.get(second.cookie, NOW) is None


async def test_visitors_are_stored_nowhere_and_carry_a_derived_csrf_token(store):
    sessions = ConsoleSessions(store)
    visitor = sessions.visitor()
    again = await sessions.get(visitor.cookie)
    assert again is not None
    assert again.principal is None
    assert again.csrf == visitor.csrf != visitor.cookie
    assert visitor.csrf_ok(visitor.csrf)
    assert not visitor.csrf_ok(None)
    assert not visitor.csrf_ok("")
    assert not visitor.csrf_ok(sessions.visitor().csrf)
    for unknown in (None, "", "nope", "x" * 500):
        assert await sessions.get(unknown) is None


async def test_messages_are_shown_once_on_any_replica(store):
    here, there = ConsoleSessions(store), ConsoleSessions(store)
    signed = await here.sign_in(None, alice(), NOW)
    await here.flash(signed, "ok", "Request filed.")
    seen = await there.get(signed.cookie, NOW)
    assert seen is not None
    assert await there.take_messages(seen) == [("ok", "Request filed.")]
    again = await here.get(signed.cookie, NOW)
    assert again is not None
    assert again.messages == []


def pending(state="s1", binding="b1", expires_at=NOW + timedelta(minutes=10)):
    return PendingLogin("https://idp.example.com", state, "n", "v", "http://127.0.0.1/cb", binding, expires_at)


async def test_a_pending_login_is_taken_once_by_the_browser_that_started_it(store):
    here, there = ConsoleSessions(store), ConsoleSessions(store)
    await here.start_login(pending())
    assert await there.take_login("s1", "other browser", NOW) is None
    assert await there.take_login("s1", "b1", NOW) is None  # the wrong binding used it up
    await here.start_login(pending())
    assert await there.take_login("s1", None, NOW) is None
    await here.start_login(pending())
    assert await there.take_login("s1", "b1", NOW) == pending()  # on another replica
    assert await here.take_login("s1", "b1", NOW) is None
    await here.start_login(pending())
    assert await there.take_login("s1", "b1", NOW + timedelta(minutes=10)) is None
    assert await there.take_login("unknown", "b1", NOW) is None
    assert await there.take_login("", "b1", NOW) is None


async def test_sign_ins_under_way_are_bounded(store, monkeypatch):
    monkeypatch.setattr("sqlgate.console.sessions.MAX_LOGINS", 2)
    sessions = ConsoleSessions(store)
    await sessions.start_login(pending("a"), NOW)
    await sessions.start_login(pending("b"), NOW)
    with pytest.raises(IdentityError, match="too many sign-ins"):
        await sessions.start_login(pending("c"), NOW)
    await sessions.start_login(pending("c"), NOW + timedelta(minutes=10))  # the expired ones made room
