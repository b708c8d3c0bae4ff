"""Key fetching: discovery, cache lifetime, rate-limited refetch on unknown kid, grace through an outage."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sqlgate.errors import ConfigError, TokenRejected
from sqlgate.identity.remote import RemoteKeys


def remote(issuer, http, **kwargs):
    return RemoteKeys(issuer.url, http, grace=kwargs.pop("grace", 600.0), **kwargs)


async def test_discovery_then_jwks(issuer_a, http, clock):
    keys = remote(issuer_a, http)
    assert (await keys.key("a-1", "RS256", clock.now)).kid == "a-1"
    assert issuer_a.requests == ["/.well-known/openid-configuration", "/jwks"]


async def test_keys_are_reused_for_their_max_age(issuer_a, http, clock):
    issuer_a.cache_control = "public, max-age=120"
    keys = remote(issuer_a, http)
    await keys.key("a-1", "RS256", clock.now)
    await keys.key("a-1", "RS256", clock.now + 119)
    assert issuer_a.jwks_fetches() == 1
    await keys.key("a-1", "RS256", clock.now + 121)  # served stale; a background fetch starts
    await keys.refresh(clock.now + 121)  # waits for that fetch (rate-limited: no second one)
    assert issuer_a.jwks_fetches() == 2
    assert keys._snapshot.fetched_at == clock.now + 121


async def test_a_hanging_idp_does_not_hold_up_stale_keys(issuer_a, clock):
    """Past max-age, verification uses the cached keys at once; the slow fetch runs in the background."""
    gate = asyncio.Event()

    async def slow(request):
        if request.url.path.endswith("/jwks") and issuer_a.jwks_fetches() >= 1:
            await gate.wait()
        return issuer_a.handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        keys = remote(issuer_a, http)
        await keys.key("a-1", "RS256", clock.now)
        found = await asyncio.wait_for(keys.key("a-1", "RS256", clock.now + 400), timeout=5)
        assert found.kid == "a-1"
        gate.set()
        await keys.aclose()


async def test_unknown_kid_refetch_is_rate_limited(issuer_a, http, clock):
    keys = remote(issuer_a, http)
    await keys.key("a-1", "RS256", clock.now)
    for offset in (6.0, 6.5, 7.0, 8.0):
        with pytest.raises(TokenRejected, match="unknown key id"):
            await keys.key("rotated", "RS256", clock.now + offset)
    assert issuer_a.jwks_fetches() == 2  # one refetch for the first unknown kid, none for the rest


async def test_rotated_key_is_found_by_refetch(issuer_a, http, clock):
    keys = remote(issuer_a, http)
    await keys.key("a-1", "RS256", clock.now)
    issuer_a.kid = "a-2"
    issuer_a.rsa_key = rsa.generate_private_key(65537, 2048)
    assert (await keys.key("a-2", "RS256", clock.now + 10)).kid == "a-2"


async def test_outage_served_from_cache_for_grace_then_fails_closed(issuer_a, http, clock):
    issuer_a.cache_control = "max-age=60"
    keys = remote(issuer_a, http, grace=600.0)
    await keys.key("a-1", "RS256", clock.now)
    issuer_a.down = True
    assert (await keys.key("a-1", "RS256", clock.now + 600)).kid == "a-1"
    assert keys.is_usable(clock.now + 600)
    with pytest.raises(TokenRejected, match="unavailable"):
        await keys.key("a-1", "RS256", clock.now + 661)
    assert not keys.is_usable(clock.now + 661)


async def test_discovery_naming_another_issuer_is_refused(issuer_a, http, clock):
    original = issuer_a.handler

    def lying(request):
        response = original(request)
        if request.url.path.endswith("openid-configuration"):
            return type(response)(200, json={"issuer": "https://evil.example.com", "jwks_uri": f"{issuer_a.url}/jwks"})
        return response

    issuer_a.handler = lying
    keys = remote(issuer_a, http)
    with pytest.raises(TokenRejected, match="unavailable"):
        await keys.key("a-1", "RS256", clock.now)


def test_plain_http_issuer_is_refused_off_loopback(http):
    with pytest.raises(ConfigError, match="https"):
        RemoteKeys("http://idp.example.com", http, grace=1.0)
    RemoteKeys("http://127.0.0.1:9000", http, grace=1.0)


async def test_jwks_uri_override_skips_discovery(issuer_a, http, clock):
    keys = remote(issuer_a, http, jwks_uri=f"{issuer_a.url}/jwks")
    await keys.key("a-1", "RS256", clock.now)
    assert issuer_a.requests == ["/jwks"]


async def test_identity_provider_text_in_logs_is_bounded_and_escaped(issuer_a, clock, caplog):
    """A discovery document's bad jwks_uri and a JWKS key's odd kid are named in the log, never copied."""
    evil = "http://evil.example.com/\x1b[2J" + "x" * 5000
    bad_key = {"kty": "RSA", "kid": "\u202e\n" + "k" * 5000, "n": "!!", "e": "AQAB"}

    def handler(request):
        if request.url.path.endswith("/openid-configuration"):
            return httpx.Response(200, json={"issuer": issuer_a.url, "jwks_uri": evil})
        return httpx.Response(200, json={"keys": [bad_key]})

    caplog.set_level("DEBUG")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await remote(issuer_a, http).refresh(clock.now)
        await RemoteKeys(issuer_a.url, http, grace=60.0, jwks_uri=f"{issuer_a.url}/jwks").refresh(clock.now)
    lines = [record.getMessage() for record in caplog.records]
    assert any("jwks_uri" in line and "...#" in line for line in lines), lines
    assert any("malformed 'RSA' key" in line and "...#" in line for line in lines), lines
    for line in lines:
        assert len(line) < 300, line
        assert line.isascii(), line
        assert line.isprintable(), line
