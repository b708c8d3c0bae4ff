"""The dev issuer over HTTP: discovery, JWKS and a loopback-only token endpoint (a FastAPI router).

The HTTP API includes :func:`dev_issuer_router` (its paths start with
``/dev-issuer``). ``POST /dev-issuer/token`` takes form fields ``user``,
``groups`` (repeated, or comma-separated) and ``ttl`` (``15m``), and answers
only clients on a loopback address.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, Response

from sqlgate.config import is_loopback, parse_duration
from sqlgate.identity.devissuer import DEV_ALGORITHM, DEV_ISSUER_PATH, DevIssuer

JWKS_MAX_AGE = 300


def discovery_document(issuer: DevIssuer) -> dict[str, Any]:
    """The OpenID Provider metadata of the dev issuer."""
    return {
        "issuer": issuer.url,
        "jwks_uri": f"{issuer.url}/jwks",
        "token_endpoint": f"{issuer.url}/token",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [DEV_ALGORITHM],
        "token_endpoint_auth_methods_supported": ["none"],
    }


def dev_issuer_router(issuer: DevIssuer) -> APIRouter:
    """Routes of the dev issuer under ``/dev-issuer``."""
    router = APIRouter(prefix=DEV_ISSUER_PATH, tags=["dev issuer"])

    @router.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        """OpenID Provider metadata."""
        return discovery_document(issuer)

    @router.get("/jwks")
    def jwks(response: Response) -> dict[str, Any]:
        """The public signing key."""
        response.headers["cache-control"] = f"public, max-age={JWKS_MAX_AGE}"
        return {"keys": [issuer.public_jwk()]}

    @router.post("/token")
    def token(
        request: Request,
        user: Annotated[str, Form(max_length=128)],
        groups: Annotated[list[str] | None, Form()] = None,
        ttl: Annotated[str, Form(max_length=16)] = "15m",
    ) -> dict[str, Any]:
        """Mint a token for ``user`` (demo grant; loopback clients only)."""
        if request.client is None or not is_loopback(request.client.host):
            raise HTTPException(403, "the dev issuer mints tokens for loopback clients only")
        names = [g.strip() for value in groups or [] for g in value.split(",") if g.strip()]
        try:
            lifetime = parse_duration(ttl)
            access_token = issuer.mint(user, names, lifetime)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": int(lifetime.total_seconds())}

    return router
