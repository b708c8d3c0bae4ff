"""The end user behind a request, carried into the database session for row-level security.

:class:`EndUsers` verifies a request's bearer token with a pluggable verifier
(``async (token) -> subject | claims | Principal``; :class:`JwtVerifier` for plain
OIDC JWTs, or sqlgate's own identity ``Authenticator``), then, inside the request's
transaction, optionally ``SET LOCAL ROLE <mapped role>`` and
``set_config('sqlgate.subject', <subject>, true)`` (and ``sqlgate.groups``), so
policies such as ``USING (owner = current_setting('sqlgate.subject', true))`` see
the end user, and the gateway's audit sees both the service and the user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from sqlgate.connector.errors import EndUserRejected

__all__ = ["EndUser", "EndUsers", "JwksVerifier", "JwtVerifier", "RoleMap", "Verifier", "quote_ident"]

_MIN_REFETCH = 10.0
Verifier = Callable[[str], Awaitable[Any]]
RoleMap = Mapping[str, str] | Callable[["EndUser"], str | None]


@dataclass(frozen=True)
class EndUser:
    """A verified end user: ``subject``, ``groups`` and the token's claims."""

    subject: str
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, verified: Any) -> EndUser:
        """Normalise what a verifier returned: a subject, a claims mapping, or an object with ``subject``."""
        if isinstance(verified, EndUser):
            return verified
        if isinstance(verified, str):
            return cls(verified)
        if isinstance(verified, Mapping):
            groups = verified.get("groups") or ()
            return cls(str(verified["sub"]), tuple(str(g) for g in groups), dict(verified))
        subject = getattr(verified, "subject", None)
        if isinstance(subject, str):
            groups = getattr(verified, "groups", ()) or ()
            claims = getattr(verified, "claims", {}) or {}
            return cls(subject, tuple(str(g) for g in groups), claims)
        raise TypeError(f"a verifier returned {type(verified).__name__}; expected str, a claims mapping or Principal")


class JwtVerifier:
    """Verifies a JWT with pinned algorithms, issuer and audience; returns its claims.

    ``key`` is a joserfc key or key set (e.g. ``KeySet.import_key_set(jwks)``).
    """

    def __init__(
        self,
        key: Any,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("ES256", "RS256"),
        leeway: int = 30,
    ) -> None:
        if not algorithms:
            raise ValueError("JwtVerifier needs at least one algorithm")
        self.key = key
        self.algorithms = list(algorithms)
        self._claims = JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )

    async def __call__(self, token: str) -> dict[str, Any]:
        """The claims of ``token``; raises :class:`EndUserRejected` saying why it failed."""
        try:
            decoded = jwt.decode(token, self.key, algorithms=self.algorithms)
            self._claims.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise EndUserRejected(f"the bearer token failed verification: {exc}") from None
        return dict(decoded.claims)


class JwksVerifier:
    """A :class:`JwtVerifier` whose keys come from a JWKS URL, cached for ``cache_for`` seconds.

    An unknown ``kid`` refetches the key set (at most every 10 s), so key rotation
    at the issuer needs no restart.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("ES256", "RS256"),
        cache_for: float = 300.0,
    ) -> None:
        self.jwks_url = jwks_url
        self._options: dict[str, Any] = {"issuer": issuer, "audience": audience, "algorithms": algorithms}
        self.cache_for = cache_for
        self._verifier: JwtVerifier | None = None
        self._fetched_at = -1e9
        self._lock = asyncio.Lock()

    async def __call__(self, token: str) -> dict[str, Any]:
        """The claims of ``token``; raises :class:`EndUserRejected` saying why it failed."""
        verifier = await self._current(refresh=False)
        try:
            return await verifier(token)
        except EndUserRejected:
            if time.monotonic() - self._fetched_at < _MIN_REFETCH:
                raise
        return await (await self._current(refresh=True))(token)

    async def _current(self, *, refresh: bool) -> JwtVerifier:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self.cache_for
            if self._verifier is None or stale or (refresh and time.monotonic() - self._fetched_at >= _MIN_REFETCH):
                self._verifier = JwtVerifier(await self._fetch(), **self._options)
                self._fetched_at = time.monotonic()
            return self._verifier

    async def _fetch(self) -> KeySet:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(self.jwks_url)
                response.raise_for_status()
                return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise EndUserRejected(f"cannot load the issuer's keys from {self.jwks_url}: {type(exc).__name__}") from None


class EndUsers:
    """How a request's end user is verified and applied to its transaction.

    ``roles`` maps a group to a database role (first match in mapping order), or is
    a callable ``(EndUser) -> role | None``; ``set_subject`` sets ``sqlgate.subject``
    and ``sqlgate.groups``; with ``required`` a request without a valid bearer token
    is answered 401 before any database work.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        roles: RoleMap | None = None,
        set_subject: bool = True,
        required: bool = True,
    ) -> None:
        self.verifier = verifier
        self.roles = roles
        self.set_subject = set_subject
        self.required = required

    async def identify(self, authorization: str | None) -> EndUser | None:
        """The end user named by an ``Authorization`` header (None when absent and not required)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            if self.required:
                raise EndUserRejected("this endpoint needs an end-user bearer token (Authorization: Bearer ...)")
            return None
        try:
            verified = await self.verifier(token.strip())
        except EndUserRejected:
            raise
        except Exception as exc:
            raise EndUserRejected(f"the bearer token failed verification: {exc}") from None
        return EndUser.of(verified)

    def role_for(self, user: EndUser) -> str | None:
        """The database role for ``user`` (None: stay the app's own role)."""
        if self.roles is None:
            return None
        if callable(self.roles):
            return self.roles(user)
        return next((role for group, role in self.roles.items() if group in user.groups), None)

    async def apply(self, con: Any, user: EndUser) -> None:
        """Put ``user`` into the current transaction of an asyncpg connection."""
        role = self.role_for(user)
        if role is not None:
            await con.execute(f"SET LOCAL ROLE {quote_ident(role)}")
        if self.set_subject:
            await con.execute(_SET_SUBJECT.format(subject="$1", groups="$2"), user.subject, ",".join(user.groups))

    async def apply_session(self, session: Any, user: EndUser) -> None:
        """Put ``user`` into the current transaction of a SQLAlchemy ``AsyncSession``."""
        from sqlalchemy import text  # noqa: PLC0415 - SQLAlchemy is optional

        role = self.role_for(user)
        if role is not None:
            await session.execute(text(f"SET LOCAL ROLE {quote_ident(role)}"))
        if self.set_subject:
            sql = text(_SET_SUBJECT.format(subject=":subject", groups=":groups"))
            await session.execute(sql, {"subject": user.subject, "groups": ",".join(user.groups)})


_SET_SUBJECT = "SELECT set_config('sqlgate.subject', {subject}, true), set_config('sqlgate.groups', {groups}, true)"


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, quoted."""
    if not name or "\x00" in name:
        raise ValueError("a role name must be non-empty and without NUL")
    return '"' + name.replace('"', '""') + '"'
