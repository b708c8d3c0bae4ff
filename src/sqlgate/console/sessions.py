"""Console sign-in state, kept by the gateway: a random cookie value names it, nothing else leaves the server.

A :class:`ConsoleSession` holds the verified :class:`~sqlgate.identity.principal.Principal`
(never a token), the CSRF token its forms carry and one-shot messages for the next page.
Visitors who are not signed in get a session too, so the sign-in form has a CSRF token;
signing in replaces it with a new one (a fixed session id is never promoted).

A browser login under way (:class:`PendingLogin`: PKCE verifier, state, nonce) is kept by its
``state``, not in the session: the issuer sends the browser back from another site, and a
SameSite=Strict cookie does not come along on that request. The callback is tied to the browser
that started it by ``binding``, the value of a short-lived SameSite=Lax cookie set at the start.

Sessions live in this replica's memory: behind a load balancer, route the console sticky by
cookie, or sign in again on another replica.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlgate.identity.principal import Principal

COOKIE = "sqlgate_console"
LOGIN_COOKIE = "sqlgate_console_login"
LOGIN_LIFETIME = timedelta(minutes=10)  # from "Sign in with" to the issuer's redirect back
SIGNED_IN_LIFETIME = timedelta(hours=8)  # the longest a console sign-in lasts (the token's expiry ends it sooner)
ANONYMOUS_LIFETIME = timedelta(minutes=30)  # a sign-in page left open this long needs a reload
MAX_SESSIONS = 10_000


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
    """One browser's state: who signed in (if anyone), its CSRF token, a pending login and messages."""

    id: str
    csrf: str
    expires_at: datetime
    principal: Principal | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)  # (kind: ok | error, text)

    def flash(self, kind: str, text: str) -> None:
        """Show ``text`` once on the next page."""
        self.messages.append((kind, text))

    def take_messages(self) -> list[tuple[str, str]]:
        """The messages waiting for this page (they are shown once)."""
        messages, self.messages = self.messages, []
        return messages

    def csrf_ok(self, presented: str | None) -> bool:
        """True when ``presented`` is this session's CSRF token (compared in constant time)."""
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class ConsoleSessions:
    """The console sessions of this replica, by cookie value; expired ones are dropped when met.

    Visitors' sessions and signed-in ones are kept apart, each bounded (oldest dropped first):
    anyone can make visitor sessions by loading the sign-in page, and that must never push a
    signed-in person out.
    """

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self._visitors: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._signed_in: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._logins: OrderedDict[str, PendingLogin] = OrderedDict()
        self._max = max_sessions

    def start_login(self, pending: PendingLogin) -> None:
        """Keep ``pending`` until its callback (or its expiry)."""
        self._logins[pending.state] = pending
        while len(self._logins) > self._max:
            self._logins.popitem(last=False)

    def take_login(self, state: str, binding: str | None, now: datetime | None = None) -> PendingLogin | None:
        """The login ``state`` names, once, if unexpired and started by the browser holding ``binding``."""
        pending = self._logins.pop(state, None)
        if pending is None or pending.expires_at <= (now or datetime.now(UTC)):
            return None
        if binding is None or not hmac.compare_digest(binding.encode(), pending.binding.encode()):
            return None
        return pending

    def get(self, session_id: str | None, now: datetime | None = None) -> ConsoleSession | None:
        """The live session of this cookie value, or None."""
        if not session_id:
            return None
        for kept in (self._signed_in, self._visitors):
            session = kept.get(session_id)
            if session is None:
                continue
            if session.expires_at <= (now or datetime.now(UTC)):
                kept.pop(session_id, None)
                return None
            return session
        return None

    def anonymous(self, now: datetime | None = None) -> ConsoleSession:
        """A new session for a visitor who has not signed in (it carries the sign-in form's CSRF token)."""
        return self._add(self._visitors, None, (now or datetime.now(UTC)) + ANONYMOUS_LIFETIME)

    def sign_in(self, old: ConsoleSession | None, principal: Principal, now: datetime | None = None) -> ConsoleSession:
        """A new session for ``principal`` replacing ``old``; it ends with the token or after a working day."""
        now = now or datetime.now(UTC)
        if old is not None:
            self.end(old.id)
        ends = now + SIGNED_IN_LIFETIME
        if principal.expires_at is not None:
            ends = min(ends, principal.expires_at)
        return self._add(self._signed_in, principal, ends)

    def end(self, session_id: str) -> None:
        """Forget a session (sign-out); idempotent."""
        self._signed_in.pop(session_id, None)
        self._visitors.pop(session_id, None)

    def _add(
        self, kept: OrderedDict[str, ConsoleSession], principal: Principal | None, expires_at: datetime
    ) -> ConsoleSession:
        session = ConsoleSession(
            id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), expires_at=expires_at, principal=principal
        )
        kept[session.id] = session
        while len(kept) > self._max:
            kept.popitem(last=False)
        return session

    def __len__(self) -> int:
        return len(self._signed_in) + len(self._visitors)
