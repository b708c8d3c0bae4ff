"""Claims -> Principal for people and workloads (Kubernetes, GitHub Actions, GCP)."""

from __future__ import annotations

import pytest

from sqlgate.identity.mapping import ClaimNames, claim_at, groups_of, principal_from_claims

BASE = {"iss": "https://idp", "sub": "u1", "exp": 2_000_000_000}


@pytest.mark.parametrize(
    ("path", "claims", "groups"),
    [
        ("groups", {"groups": ["a", "b", "a"]}, ("a", "b")),
        ("realm_access.roles", {"realm_access": {"roles": ["admin"]}}, ("admin",)),
        ("cognito:groups", {"cognito:groups": ["ops"]}, ("ops",)),
        ("roles", {"roles": "reader"}, ("reader",)),
        ("https://example.com/groups", {"https://example.com/groups": ["x"]}, ("x",)),
        ("groups", {"groups": [1, None, "ok", ""]}, ("ok",)),
        ("groups", {"groups": {"not": "a list"}}, ()),
        ("realm_access.roles", {"realm_access": "flat"}, ()),
    ],
)
def test_groups_by_path(path, claims, groups):
    assert groups_of(claims, path) == groups


def test_claim_at_missing():
    assert claim_at({"a": {"b": 1}}, "a.c") is None


def test_person():
    claims = {**BASE, "name": "Alice", "email": "a@example.com", "groups": ["analysts"]}
    principal = principal_from_claims(claims, ClaimNames())
    assert (principal.name, principal.email, principal.groups) == ("Alice", "a@example.com", ("analysts",))
    assert principal.expires_at is not None
    assert principal.expires_at.timestamp() == 2_000_000_000


def test_name_falls_back_to_preferred_username_then_subject():
    assert principal_from_claims({**BASE, "preferred_username": "al"}, ClaimNames()).name == "al"
    assert principal_from_claims(BASE, ClaimNames()).name == "u1"


def test_unverified_email_is_dropped():
    claims = {**BASE, "email": "ceo@example.com", "email_verified": False}
    assert principal_from_claims(claims, ClaimNames()).email is None


def test_kubernetes_service_account():
    claims = {
        **BASE,
        "sub": "system:serviceaccount:payments:api",
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "1"}},
    }
    principal = principal_from_claims(claims, ClaimNames())
    assert principal.subject == "system:serviceaccount:payments:api"
    assert principal.groups == ("system:serviceaccounts", "system:serviceaccounts:payments")
    assert principal.claims["kubernetes.io"]["serviceaccount"]["name"] == "api"


def test_github_actions():
    claims = {
        **BASE,
        "sub": "repo:acme/shop:environment:prod",
        "repository": "acme/shop",
        "ref": "refs/heads/main",
        "environment": "prod",
        "repository_owner": "acme",
    }
    principal = principal_from_claims(claims, ClaimNames())
    assert principal.name == "repo:acme/shop:environment:prod"
    assert (principal.claims["repository"], principal.claims["ref"], principal.claims["environment"]) == (
        "acme/shop",
        "refs/heads/main",
        "prod",
    )
    assert principal.groups == ()


def test_gcp_identity_token():
    claims = {**BASE, "sub": "1234567890", "email": "etl@proj.iam.gserviceaccount.com", "email_verified": True}
    principal = principal_from_claims(claims, ClaimNames())
    assert principal.email == "etl@proj.iam.gserviceaccount.com"
    assert principal.name == "1234567890"


def test_claims_cannot_be_changed_through_the_principal():
    principal = principal_from_claims(dict(BASE), ClaimNames())
    with pytest.raises(TypeError):
        principal.claims["sub"] = "root"  # type: ignore[index]
