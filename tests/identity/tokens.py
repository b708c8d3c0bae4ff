"""A test issuer that signs whatever it is told to, and serves its JWKS through an httpx transport."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, RSAKey

from sqlgate.config import IssuerConfig


def b64(data: bytes | str | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def rsa_sign(private: rsa.RSAPrivateKey, signing_input: bytes, alg: str = "RS256") -> bytes:
    pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    return private.sign(signing_input, pad, hashes.SHA256())


def es_sign(private: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def hs256(secret: bytes, signing_input: bytes) -> bytes:
    mac = hmac.HMAC(secret, hashes.SHA256())
    mac.update(signing_input)
    return mac.finalize()


def compact(header: dict | bytes | str, payload: dict | bytes | str, sign) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input))}"


@dataclass
class FakeIssuer:
    """An issuer with an RSA and an EC key; ``handler`` serves discovery and JWKS like an IdP would.

    Its tokens are for ``audience``, and :meth:`config` trusts that audience explicitly.
    """

    url: str = "https://idp.example.com"
    kid: str = "rsa-1"
    audience: str = "sqlgate"
    cache_control: str = "max-age=300"
    rsa_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    ec_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    down: bool = False
    requests: list[str] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = RSAKey.import_key(self.rsa_key.public_key()).as_dict(kid=self.kid, use="sig")
        ec_jwk = ECKey.import_key(self.ec_key.public_key()).as_dict(kid="ec-1", use="sig")
        return {"keys": [rsa_jwk, ec_jwk]}

    def config(self, **overrides: Any) -> IssuerConfig:
        return IssuerConfig(issuer=self.url, **{"audience": self.audience, **overrides})

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "sub": "alice", "iat": now, "exp": now + 600, "name": "Alice"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, alg: str = "RS256", header: dict | None = None, **claims: Any) -> str:
        head = {"alg": alg, "typ": "JWT", "kid": self.kid if alg.startswith(("RS", "PS")) else "ec-1"}
        head.update(header or {})
        if alg == "ES256":
            return compact(head, self.claims(**claims), lambda data: es_sign(self.ec_key, data))
        return compact(head, self.claims(**claims), lambda data: rsa_sign(self.rsa_key, data, alg))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.path)
        if self.down:
            return httpx.Response(503)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})
        if request.url.path.endswith("/jwks"):
            return httpx.Response(200, json=self.jwks(), headers={"cache-control": self.cache_control})
        return httpx.Response(404)

    def jwks_fetches(self) -> int:
        return sum(1 for path in self.requests if path.endswith("/jwks"))


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
