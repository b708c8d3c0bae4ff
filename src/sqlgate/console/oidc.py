"""Sign in with an issuer: authorization code with PKCE, for `identity.issuers` that have a `client_id`.

The browser is sent to the issuer's ``authorization_endpoint`` (from its discovery document)
with a fresh ``state``, ``nonce`` and S256 code challenge, kept in the visitor's console session.
The callback must bring the same ``state``; the code is exchanged with the verifier, and of the
tokens the issuer returns the one whose audience the gateway accepts is verified like any other
token (:func:`sqlgate.identity.client.login_from_response` chooses it, as ``sqlgate login`` does).
The token is then dropped: the console keeps only the verified principal.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from sqlgate.config import IssuerConfig, Settings
from sqlgate.console.sessions import LOGIN_LIFETIME, PendingLogin
from sqlgate.errors import IdentityError
from sqlgate.identity.client import login_from_response, unverified_claims
from sqlgate.identity.deployment import resolve
from sqlgate.identity.jwt import show_untrusted
from sqlgate.identity.login import pkce_pair
from sqlgate.identity.remote import DISCOVERY_PATH

HTTP_TIMEOUT = 10.0


def sign_in_issuers(settings: Settings) -> list[IssuerConfig]:
    """Issuers a person can sign in with from a browser (those with a ``client_id``)."""
    return [issuer for issuer in settings.identity.issuers if issuer.client_id]


def issuer_config(settings: Settings, index: int) -> IssuerConfig:
    """The ``index``-th sign-in issuer, its audience resolved to this gateway's id when unset."""
    issuers = sign_in_issuers(resolve(settings, create=False))
    if not 0 <= index < len(issuers):
        raise IdentityError("no such issuer to sign in with")
    return issuers[index]


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's discovery document; IdentityError unless it names this issuer and both endpoints."""
    try:
        response = await http.get(issuer.rstrip("/") + DISCOVERY_PATH)
        response.raise_for_status()
        meta = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise IdentityError(f"cannot read the discovery document of {issuer}: {exc}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("issuer") != issuer
        or not isinstance(meta.get("token_endpoint"), str)
        or not isinstance(meta.get("authorization_endpoint"), str)
    ):
        raise IdentityError(f"the discovery document of {issuer} offers no browser sign-in")
    return meta


def authorization_url(meta: dict[str, Any], config: IssuerConfig, redirect_uri: str) -> tuple[str, PendingLogin]:
    """Where to send the browser, and what its callback must match (kept server-side)."""
    verifier, challenge = pkce_pair()
    pending = PendingLogin(
        issuer=config.issuer,
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=verifier,
        redirect_uri=redirect_uri,
        binding=secrets.token_urlsafe(24),
        expires_at=datetime.now(UTC) + LOGIN_LIFETIME,
    )
    query = {
        "response_type": "code",
        "client_id": str(config.client_id),
        "redirect_uri": redirect_uri,
        "scope": " ".join(config.login_scopes),
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{meta['authorization_endpoint']}?{urlencode(query)}", pending


async def exchange(
    http: httpx.AsyncClient, meta: dict[str, Any], config: IssuerConfig, pending: PendingLogin, params: dict[str, str]
) -> str:
    """The token to verify, from the callback's ``params``; IdentityError on any mismatch or refusal."""
    if not secrets.compare_digest(params.get("state", ""), pending.state):
        raise IdentityError("sign-in failed: the state does not match (start again from the sign-in page)")
    if "code" not in params:
        error = params.get("error")
        raise IdentityError(f"sign-in failed: {show_untrusted(error) if error else 'no code returned'}")
    try:
        response = await http.post(
            str(meta["token_endpoint"]),
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": pending.redirect_uri,
                "client_id": str(config.client_id),
                "code_verifier": pending.verifier,
            },
        )
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise IdentityError("sign-in failed: the identity provider refused the code exchange")
    id_token = body.get("id_token")
    if isinstance(id_token, str) and unverified_claims(id_token).get("nonce") not in {None, pending.nonce}:
        raise IdentityError("sign-in failed: the ID token's nonce does not match")
    return login_from_response(config, str(meta["token_endpoint"]), body).access_token
