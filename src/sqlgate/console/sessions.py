"""Console sign-in state, kept by the gateway in its state database: a random cookie value names it.

A signed-in :class:`ConsoleSession` holds the verified :class:`~sqlgate.identity.principal.Principal`
(never a token), the CSRF token its forms carry and one-shot messages for the next page. It is a
row of ``console_sessions`` found by the SHA-256 of the cookie value, so every replica sharing the
state database knows it (no sticky routing), and the database alone gives no usable cookie.
Signing in always makes a new cookie value (a value known before sign-in is never promoted).

A visitor who has not signed in gets a cookie too, stored nowhere: the sign-in form's CSRF token
is derived from it (a double-submit token), so loading the sign-in page writes nothing.

A browser login under way (:class:`PendingLogin`: PKCE verifier, state, nonce) is a row of
``console_logins`` found by its ``state``, not part of the session: the issuer sends the browser
back from another site, and a SameSite=Strict cookie does not come along on that request. The
callback is tied to the browser that started it by ``binding``, the value of a short-lived
SameSite=Lax cookie set at the start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from sqlgate.console.tables import console_logins, console_sessions
from sqlgate.errors import IdentityError
from sqlgate.identity.principal import Principal
from sqlgate.store import StateStore

COOKIE = "sqlgate_console"
LOGIN_COOKIE = "sqlgate_console_login"
LOGIN_LIFETIME = timedelta(minutes=10)  # from "Sign in with" to the issuer's redirect back
SIGNED_IN_LIFETIME = timedelta(hours=8)  # the longest a console sign-in lasts (the token's expiry ends it sooner)
MAX_LOGINS = 10_000  # browser logins under way at once, across replicas
VISITOR = "v."  # visitors' cookie values start with this; signed-in ones never do


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A browser login under way at an issuer: what the callback must match and send back."""

    issuer: str
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    binding: str  # the login cookie's value: the callback must come from the browser that started
    expires_at: datetime


@dataclass(slots=True)
class ConsoleSession:
    """One browser's state: its cookie value, who signed in (None for a visitor), CSRF token, messages."""

    cookie: str
    csrf: str
    principal: Principal | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # (kind: ok | error, text)

    def csrf_ok(self, presented: str | None) -> bool:
        """True when ``presented`` is this session's CSRF token (compared in constant time)."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


def session_key(cookie: str) -> str:
    """What the database knows a session by: the SHA-256 of its cookie value."""
    return hashlib.sha256(cookie.encode()).hexdigest()


def _visitor_csrf(cookie: str) -> str:
    return hashlib.sha256(b"sqlgate console csrf\0" + cookie.encode()).hexdigest()


def principal_json(principal: Principal) -> str:
    """The principal as stored (its claims included, for policy; no token is ever part of it)."""
    return json.dumps(
        {
            "subject": principal.subject,
            "issuer": principal.issuer,
            "name": principal.name,
            "email": principal.email,
            "groups": list(principal.groups),
            "claims": dict(principal.claims),
            "expires_at": principal.expires_at.isoformat() if principal.expires_at else None,
            "method": principal.method,
        },
        default=str,
    )


def principal_of(text: str) -> Principal:
    """The principal stored by :func:`principal_json`."""
    value: dict[str, Any] = json.loads(text)
    expires = value.get("expires_at")
    return Principal(
        value["subject"],
        value["issuer"],
        value["name"],
        value.get("email"),
        tuple(value.get("groups") or ()),
        value.get("claims") or {},
        None,
        datetime.fromisoformat(expires) if expires else None,
        value.get("method", "oidc"),
    )


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ConsoleSessions:
    """Console sessions and pending browser logins in the state database."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    @staticmethod
    def visitor() -> ConsoleSession:
        """A new visitor (not signed in): a fresh cookie value, stored nowhere."""
        cookie = VISITOR + secrets.token_urlsafe(32)
        return ConsoleSession(cookie, _visitor_csrf(cookie))

    async def get(self, cookie: str | None, now: datetime | None = None) -> ConsoleSession | None:
        """The session of this cookie value: a visitor's, a live signed-in one, or None."""
        if not cookie or len(cookie) > 128:
            return None
        if cookie.startswith(VISITOR):
            return ConsoleSession(cookie, _visitor_csrf(cookie))
        query = select(console_sessions).where(console_sessions.c.key == session_key(cookie))
        async with self._store.begin() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None or _aware(row["expires_at"]) <= (now or datetime.now(UTC)):
            return None
        messages = [(str(kind), str(text)) for kind, text in json.loads(row["messages"])]
        return ConsoleSession(cookie, row["csrf"], principal_of(row["principal"]), messages)

    async def sign_in(
        self, old: ConsoleSession | None, principal: Principal, now: datetime | None = None
    ) -> ConsoleSession:
        """A new session for ``principal`` replacing ``old``; it ends with the token or after a working day."""
        now = now or datetime.now(UTC)
        ends = now + SIGNED_IN_LIFETIME
        if principal.expires_at is not None:
            ends = min(ends, principal.expires_at)
        session = ConsoleSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32), principal)
        async with self._store.begin() as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))
            await conn.execute(delete(console_logins).where(console_logins.c.expires_at <= now))
            if old is not None:
                await conn.execute(delete(console_sessions).where(console_sessions.c.key == session_key(old.cookie)))
            await conn.execute(
                insert(console_sessions).values(
                    key=session_key(session.cookie),
                    csrf=session.csrf,
                    principal=principal_json(principal),
                    messages="[]",
                    created_at=now,
                    expires_at=ends,
                )
            )
        return session

    async def end(self, session: ConsoleSession) -> None:
        """Forget a session (sign-out); idempotent."""
        async with self._store.begin() as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.key == session_key(session.cookie)))

    async def flash(self, session: ConsoleSession, kind: str, text: str) -> None:
        """Show ``text`` once on the next page of a signed-in session."""
        session.messages.append((kind, text))
        await self._save_messages(session)

    async def take_messages(self, session: ConsoleSession) -> list[tuple[str, str]]:
        """The messages waiting for this page (shown once)."""
        messages, session.messages = session.messages, []
        if messages:
            await self._save_messages(session)
        return messages

    async def _save_messages(self, session: ConsoleSession) -> None:
        if session.principal is None:
            return
        where = console_sessions.c.key == session_key(session.cookie)
        async with self._store.begin() as conn:
            await conn.execute(update(console_sessions).where(where).values(messages=json.dumps(session.messages)))

    async def start_login(self, pending: PendingLogin, now: datetime | None = None) -> None:
        """Keep ``pending`` until its callback (or its expiry); IdentityError while too many are under way."""
        body = {**asdict(pending), "expires_at": pending.expires_at.isoformat()}
        async with self._store.begin() as conn:
            await conn.execute(delete(console_logins).where(console_logins.c.expires_at <= (now or datetime.now(UTC))))
            under_way = (await conn.execute(select(func.count()).select_from(console_logins))).scalar_one()
            if under_way >= MAX_LOGINS:  # anyone may start a sign-in: never let that fill the state database
                raise IdentityError("too many sign-ins are under way; retry in a few minutes")
            await conn.execute(
                insert(console_logins).values(state=pending.state, body=json.dumps(body), expires_at=pending.expires_at)
            )

    async def take_login(self, state: str, binding: str | None, now: datetime | None = None) -> PendingLogin | None:
        """The login ``state`` names, once, if unexpired and started by the browser holding ``binding``."""
        if not state or len(state) > 64:
            return None
        async with self._store.begin() as conn:
            row = (await conn.execute(select(console_logins).where(console_logins.c.state == state))).first()
            if row is None:
                return None
            taken = await conn.execute(delete(console_logins).where(console_logins.c.state == state))
        if taken.rowcount != 1:  # another request took it first
            return None
        value = json.loads(row.body)
        pending = PendingLogin(**{**value, "expires_at": datetime.fromisoformat(value["expires_at"])})
        if pending.expires_at <= (now or datetime.now(UTC)):
            return None
        if binding is None or not hmac.compare_digest(binding.encode(), pending.binding.encode()):
            return None
        return pending
