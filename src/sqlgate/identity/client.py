"""The signed-in user's side: cached logins per issuer, refreshed with their refresh token.

Logins are kept in ``user_cache_dir("sqlgate")/tokens/`` (directory 0700,
files 0600), one file per issuer. :func:`current_token` is what client
commands (``creds``, ``connect``, ``request``) call for a token to present.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from platformdirs import user_cache_dir

from sqlgate.config import IssuerConfig, Settings
from sqlgate.errors import IdentityError
from sqlgate.identity.deployment import resolve

REFRESH_MARGIN = 60.0
"""Refresh a token this many seconds before it expires."""


@dataclass(frozen=True, slots=True)
class CachedLogin:
    """One issuer's tokens as ``sqlgate login`` left them.

    ``access_token`` is the token to present: the access token, or the ID token
    when only the ID token carries an audience the gateway accepts for this issuer.
    """

    issuer: str
    client_id: str
    token_endpoint: str
    access_token: str
    id_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None
    subject: str | None = None

    def is_valid(self, now: float) -> bool:
        """True when the token lasts at least :data:`REFRESH_MARGIN` more seconds."""
        return self.expires_at is None or now + REFRESH_MARGIN < self.expires_at


def token_dir() -> Path:
    """Where logins are cached."""
    return Path(user_cache_dir("sqlgate")) / "tokens"


def _path(issuer: str) -> Path:
    return token_dir() / f"{hashlib.sha256(issuer.encode()).hexdigest()[:24]}.json"


def save_login(login: CachedLogin) -> None:
    """Write ``login`` atomically, readable by the user only."""
    directory = token_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = _path(login.issuer)
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(asdict(login), file)
    temporary.replace(target)


def load_login(issuer: str) -> CachedLogin | None:
    """The cached login for ``issuer``, or None."""
    try:
        data = json.loads(_path(issuer).read_text(encoding="utf-8"))
        return CachedLogin(**data)
    except (OSError, ValueError, TypeError):
        return None


def choose_issuer(settings: Settings, issuer: str | None) -> IssuerConfig:
    """The issuer named, else the only one with a ``client_id``, else the one used last."""
    candidates = [i for i in settings.identity.issuers if i.client_id]
    if issuer is not None:
        for config in settings.identity.issuers:
            if config.issuer.rstrip("/") == issuer.rstrip("/"):
                return config
        raise IdentityError(f"issuer {issuer!r} is not in identity.issuers")
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise IdentityError("no issuer in identity.issuers has a client_id to sign in with")
    cached = [(login.expires_at or 0, c) for c in candidates if (login := load_login(c.issuer))]
    if not cached:
        raise IdentityError("several issuers are configured: name one with --issuer")
    return max(cached, key=lambda pair: pair[0])[1]


def cached_login(settings: Settings, issuer: str | None = None, *, http: httpx.Client | None = None) -> CachedLogin:
    """A login whose token is valid now, refreshed if needed; IdentityError says to log in otherwise."""
    config = choose_issuer(resolve(settings, create=False), issuer)
    login = load_login(config.issuer)
    if login is None:
        raise IdentityError(f"not signed in to {config.issuer}: run `sqlgate login`")
    if login.is_valid(time.time()):
        return login
    if login.refresh_token is None:
        raise IdentityError(f"the login to {config.issuer} expired: run `sqlgate login`")
    refreshed = _refresh(config, login, http)
    save_login(refreshed)
    return refreshed


def _refresh(config: IssuerConfig, login: CachedLogin, http: httpx.Client | None) -> CachedLogin:
    form = {"grant_type": "refresh_token", "refresh_token": login.refresh_token, "client_id": login.client_id}
    try:
        if http is None:
            with httpx.Client(timeout=10.0) as own:
                response = own.post(login.token_endpoint, data=form)
        else:
            response = http.post(login.token_endpoint, data=form)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise IdentityError(f"the login to {config.issuer} could not be refreshed: run `sqlgate login`")
    return login_from_response(config, login.token_endpoint, body, login.refresh_token)


def current_token(settings: Settings, issuer: str | None = None) -> str:
    """A valid token of the signed-in user (refreshed when needed), to present to the gateway."""
    return cached_login(settings, issuer).access_token


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's claims read without verifying (for choosing among one's own tokens; the gateway verifies)."""
    try:
        payload = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _fits(claims: dict[str, Any], config: IssuerConfig) -> bool:
    """True when ``claims`` name an audience the gateway accepts (never when that audience is not known here)."""
    if config.audience is None:
        return False
    audiences = {config.audience} if isinstance(config.audience, str) else set(config.audience)
    aud = claims.get("aud")
    return bool(audiences & ({aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()))


def login_from_response(
    config: IssuerConfig, token_endpoint: str, body: dict[str, Any], old_refresh: str | None = None
) -> CachedLogin:
    """A CachedLogin from a token endpoint's answer; the token the gateway accepts (by ``aud``) is kept."""
    access, id_token = body.get("access_token"), body.get("id_token")
    if not isinstance(access, str):
        raise IdentityError("the identity provider answered without an access token")
    chosen = access
    id_fits = isinstance(id_token, str) and _fits(unverified_claims(id_token), config)
    if id_fits and not _fits(unverified_claims(access), config):
        chosen = str(id_token)
    claims = unverified_claims(chosen)
    expires_at = claims.get("exp") if isinstance(claims.get("exp"), int | float) else None
    if expires_at is None and isinstance(body.get("expires_in"), int):
        expires_at = time.time() + body["expires_in"]
    return CachedLogin(
        issuer=config.issuer,
        client_id=config.client_id or "",
        token_endpoint=token_endpoint,
        access_token=chosen,
        id_token=id_token if isinstance(id_token, str) else None,
        refresh_token=body.get("refresh_token") or old_refresh,
        expires_at=expires_at,
        subject=str(claims.get("sub")) if claims.get("sub") else None,
    )
