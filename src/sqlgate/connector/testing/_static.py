"""Fixed tokens and credentials, and a JWT issuer with a key made for the test."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

from sqlgate.connector.credentials import Credential, DirectConnect
from sqlgate.connector.endusers import JwtVerifier
from sqlgate.connector.identity import Token


class StaticToken:
    """An identity source that always gives the same token."""

    def __init__(self, value: str) -> None:
        self._token = Token.of(value)

    async def token(self) -> Token:
        """The fixed token."""
        return self._token


class StaticCredentials(DirectConnect):
    """A credential source that always gives the same credential; ``fetches`` counts the calls."""

    def __init__(self, credential: Credential) -> None:
        self.credential = credential
        self.fetches = 0

    async def fetch(self) -> Credential:
        """The fixed credential."""
        self.fetches += 1
        return self.credential


class TestIssuer:
    """Signs JWTs (ES256) with a key made for this test; :attr:`verifier` checks them."""

    __test__ = False  # not a pytest test class

    def __init__(self, issuer: str = "https://issuer.test", audience: str = "sqlgate-app") -> None:
        self.issuer = issuer
        self.audience = audience
        self.key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(4)})
        self.verifier = JwtVerifier(self.key, issuer=issuer, audience=audience, algorithms=("ES256",))

    def issue(self, subject: str, *, groups: Sequence[str] = (), ttl: float = 300.0, **claims: Any) -> str:
        """A signed token for ``subject``."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "groups": list(groups),
            "iat": now,
            "exp": now + int(ttl),
            **claims,
        }
        return jwt.encode({"alg": "ES256", "kid": self.key.kid}, payload, self.key)
