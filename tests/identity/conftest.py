"""Fixtures for the identity tests: fake issuers behind an httpx transport, a hand-driven clock."""

from __future__ import annotations

import httpx
import pytest

from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.oidc import IssuerVerifier
from tests.identity.tokens import Clock, FakeIssuer


@pytest.fixture
def issuer_a():
    return FakeIssuer(url="https://a.example.com", kid="a-1")


@pytest.fixture
def issuer_b():
    return FakeIssuer(url="https://b.example.com", kid="b-1")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def http(issuer_a, issuer_b):
    issuers = {"a.example.com": issuer_a, "b.example.com": issuer_b}
    transport = httpx.MockTransport(lambda request: issuers[request.url.host].handler(request))
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


@pytest.fixture
def authenticator(issuer_a, issuer_b, http, clock):
    verifiers = {
        issuer.url: IssuerVerifier.remote(issuer.config(algorithms=["RS256", "ES256"]), http)
        for issuer in (issuer_a, issuer_b)
    }
    return Authenticator(verifiers, cache_size=100, clock=clock)
