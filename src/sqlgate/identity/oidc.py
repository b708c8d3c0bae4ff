"""Verification of one issuer's tokens: pinned algorithms, its keys, its claim rules, its claim names.

A verification names the key that signed (its RFC 7638 thumbprint), so a
principal cached afterwards can be dropped once the issuer stops publishing it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from sqlgate.config import IssuerConfig
from sqlgate.identity.claims import ClaimRules, check_claims
from sqlgate.identity.jwt import SignatureChecker, UnverifiedToken
from sqlgate.identity.mapping import ClaimNames, principal_from_claims
from sqlgate.identity.principal import AuthMethod, Principal
from sqlgate.identity.remote import KeySource, RemoteKeys


@dataclass(frozen=True, slots=True)
class Verified:
    """A principal and the thumbprint of the key that signed its token (None for AWS IAM, which has no keys)."""

    principal: Principal
    key_thumbprint: str | None


@dataclass(frozen=True, slots=True)
class IssuerVerifier:
    """Everything needed to turn a token of one issuer into a Principal."""

    rules: ClaimRules
    names: ClaimNames
    signatures: SignatureChecker
    keys: KeySource
    method: AuthMethod = "oidc"

    @classmethod
    def remote(cls, config: IssuerConfig, http: httpx.AsyncClient) -> IssuerVerifier:
        """A verifier whose keys come from the issuer's discovery document and JWKS."""
        keys = RemoteKeys(config.issuer, http, grace=config.jwks_grace.total_seconds(), jwks_uri=config.jwks_uri)
        return cls.local(config, keys)

    @classmethod
    def local(cls, config: IssuerConfig, keys: KeySource, method: AuthMethod = "oidc") -> IssuerVerifier:
        """A verifier with the given key source."""
        return cls(ClaimRules.of(config), ClaimNames.of(config), SignatureChecker(config.algorithms), keys, method)

    @property
    def issuer(self) -> str:
        """The ``iss`` this verifier accepts."""
        return self.rules.issuer

    async def verify(self, token: UnverifiedToken, now: float) -> Verified:
        """The principal ``token`` proves and the key that signed it, or TokenRejected."""
        self.signatures.check_alg(token)
        check_claims(token.claims, self.rules, now)
        key = await self.keys.key(token.kid, token.alg, now)
        self.signatures.verify(token, key)
        principal = principal_from_claims(token.claims, self.names, method=self.method)
        return Verified(_cap_by_age(principal, token.claims.get("iat"), self.rules.max_token_age), key.thumbprint())

    def still_publishes(self, key_thumbprint: str, now: float) -> bool:
        """True while the issuer still publishes the key (a stale key set is refreshed in the background)."""
        return self.keys.publishes(key_thumbprint, now)


def _cap_by_age(principal: Principal, iat: object, max_token_age: float | None) -> Principal:
    """With a maximum token age, the principal stops being valid when the token gets too old."""
    if max_token_age is None or not isinstance(iat, int | float) or principal.expires_at is None:
        return principal
    too_old = datetime.fromtimestamp(iat + max_token_age, UTC)
    return replace(principal, expires_at=min(principal.expires_at, too_old))
