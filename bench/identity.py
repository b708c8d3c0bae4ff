"""Identity benchmark: RS256 token verification with cached keys, on one core.

Prints tokens/s for the full verification (principal cache off) and for the
principal-cache-hit path, against the targets (>= 10,000/s and >= 500,000/s).
Run: python bench/identity.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from sqlgate.config import IssuerConfig
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.oidc import IssuerVerifier

ISSUER = "https://idp.bench.example"
TARGET_UNCACHED = 10_000
TARGET_CACHED = 500_000


def make_issuer() -> tuple[RSAKey, httpx.AsyncClient]:
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"})
    jwks = {"keys": [key.as_dict(private=False, use="sig")]}

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        return httpx.Response(200, json=jwks, headers={"cache-control": "max-age=86400"})

    return key, httpx.AsyncClient(transport=httpx.MockTransport(serve))


def make_token(key: RSAKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "sqlgate",
        "sub": "alice",
        "iat": now,
        "exp": now + 3600,
        "name": "Alice",
        "email": "alice@example.com",
        "groups": ["analysts", "engineers"],
    }
    return jwt.encode({"alg": "RS256", "kid": "bench-1"}, claims, key, algorithms=["RS256"])


async def rate(authenticator: Authenticator, token: str, seconds: float) -> float:
    await authenticator.authenticate(token, "10.0.0.1")  # warm: keys fetched once
    count, batch = 0, 1000
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            await authenticator.authenticate(token, "10.0.0.1")
        count += batch
    return count / elapsed


async def main(seconds: float) -> None:
    key, http = make_issuer()
    token = make_token(key)
    config = IssuerConfig(issuer=ISSUER, audience="sqlgate", algorithms=["RS256"])
    uncached = Authenticator({ISSUER: IssuerVerifier.remote(config, http)}, cache_size=0)
    cached = Authenticator({ISSUER: IssuerVerifier.remote(config, http)}, cache_size=10_000)
    full = await rate(uncached, token, seconds)
    hits = await rate(cached, token, seconds)
    await http.aclose()
    print(f"token size: {len(token)} bytes, RSA 2048, keys cached, one core")
    verdict = "ok" if full >= TARGET_UNCACHED else "BELOW TARGET"
    print(f"full verification (cache off): {full:>12,.0f} tokens/s   target >= {TARGET_UNCACHED:,}/s  {verdict}")
    verdict = "ok" if hits >= TARGET_CACHED else "BELOW TARGET"
    print(f"principal cache hit:           {hits:>12,.0f} tokens/s   target >= {TARGET_CACHED:,}/s  {verdict}")
    print(f"cache hit / full verification: {hits / full:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    asyncio.run(main(parser.parse_args().seconds))
