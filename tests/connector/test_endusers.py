"""End-user verification and how it maps to database roles."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from sqlgate.connector import EndUser, EndUserRejected, EndUsers, JwksVerifier
from sqlgate.connector.endusers import quote_ident
from sqlgate.connector.testing import ServerThread, TestIssuer


async def test_jwt_verifier_pins_issuer_audience_and_algorithm():
    issuer = TestIssuer()
    claims = await issuer.verifier(issuer.issue("alice", groups=["analysts"]))
    assert (claims["sub"], claims["groups"]) == ("alice", ["analysts"])
    for token in (
        issuer.issue("alice", aud="someone-else"),
        issuer.issue("alice", iss="https://evil.test"),
        issuer.issue("alice", ttl=-120),
        TestIssuer().issue("alice"),  # another key
        "not.a.jwt",
    ):
        with pytest.raises(EndUserRejected, match="failed verification"):
            await issuer.verifier(token)


async def test_unsigned_tokens_are_refused():
    """alg=none is never accepted: the algorithm list is pinned."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    issuer = TestIssuer()
    claims = {"iss": issuer.issuer, "aud": issuer.audience, "sub": "x", "exp": int(time.time()) + 60}
    forged = f"{part({'alg': 'none'})}.{part(claims)}."
    with pytest.raises(EndUserRejected):
        await issuer.verifier(forged)


async def test_identify_reads_the_bearer_header():
    issuer = TestIssuer()
    required = EndUsers(issuer.verifier)
    optional = EndUsers(issuer.verifier, required=False)
    user = await required.identify("Bearer " + issuer.issue("alice", groups=["a", "b"]))
    assert user == EndUser("alice", ("a", "b"), user.claims if user else {})
    assert await optional.identify(None) is None
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(EndUserRejected, match="needs an end-user bearer token"):
            await required.identify(header)


@dataclass
class FakePrincipal:
    subject: str
    groups: tuple[str, ...]
    claims: dict


def test_end_user_of_accepts_subjects_claims_and_principals():
    assert EndUser.of("alice").subject == "alice"
    assert EndUser.of({"sub": "bob", "groups": ["x"]}).groups == ("x",)
    assert EndUser.of(FakePrincipal("carol", ("dba",), {})).groups == ("dba",)
    with pytest.raises(TypeError, match="expected str"):
        EndUser.of(42)


def test_role_mapping():
    """First matching group in mapping order; a callable decides itself; no mapping keeps the app's role."""

    async def verifier(token: str) -> str:
        return token

    by_group = EndUsers(verifier, roles={"admins": "app_admin", "analysts": "app_read"})
    assert by_group.role_for(EndUser("a", ("analysts", "admins"))) == "app_admin"
    assert by_group.role_for(EndUser("a", ("other",))) is None
    by_callable = EndUsers(verifier, roles=lambda u: f"r_{u.subject}")
    assert by_callable.role_for(EndUser("z")) == "r_z"
    assert EndUsers(verifier).role_for(EndUser("a", ("admins",))) is None


def test_quote_ident():
    assert quote_ident('we"ird') == '"we""ird"'
    with pytest.raises(ValueError, match="non-empty"):
        quote_ident("")


async def test_jwks_verifier_fetches_and_refetches_keys():
    """Keys come from the JWKS URL; a token signed by a rotated-in key is accepted after a refetch."""
    issuer = TestIssuer()
    keys = {"current": issuer}
    app = FastAPI()

    @app.get("/jwks")
    def jwks() -> dict:
        return {"keys": [keys["current"].key.as_dict(private=False)]}

    with ServerThread(app) as server:
        verifier = JwksVerifier(f"{server.url}/jwks", issuer=issuer.issuer, audience=issuer.audience)
        assert (await verifier(issuer.issue("alice")))["sub"] == "alice"
        rotated = TestIssuer(issuer.issuer, issuer.audience)
        keys["current"] = rotated
        verifier._fetched_at -= 60  # the last fetch is older than the refetch floor
        assert (await verifier(rotated.issue("bob")))["sub"] == "bob"
    broken = JwksVerifier("http://127.0.0.1:9/jwks", issuer="i", audience="a")
    with pytest.raises(EndUserRejected, match="cannot load the issuer's keys"):
        await broken(issuer.issue("x"))
