"""JWKS documents and HTTP cache lifetimes."""

from __future__ import annotations

import pytest

from sqlgate.identity.keys import cache_lifetime, import_jwks
from tests.identity.tokens import FakeIssuer


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("max-age=600", 600.0),
        ("public, max-age=3600, must-revalidate", 3600.0),
        ("s-maxage=10", 300.0),
        ("max-age=5", 30.0),
        ("max-age=999999999", 86400.0),
        ("no-store", 30.0),
        ("no-cache, max-age=600", 30.0),
        ("", 300.0),
    ],
)
def test_cache_lifetime(header, seconds):
    assert cache_lifetime({"cache-control": header} if header else {}) == seconds


def test_import_skips_symmetric_encryption_and_broken_keys():
    document = FakeIssuer().jwks()
    document["keys"] += [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {**document["keys"][0], "kid": "enc", "use": "enc"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not a key",
    ]
    assert [k.kid for k in import_jwks(document)] == ["rsa-1", "ec-1"]


def test_import_drops_private_members():
    issuer = FakeIssuer()
    from joserfc.jwk import RSAKey  # noqa: PLC0415

    private = RSAKey.import_key(issuer.rsa_key).as_dict(private=True, kid="p")
    (key,) = import_jwks({"keys": [private]})
    assert not key.is_private


@pytest.mark.parametrize("document", [None, [], {"keys": "x"}, {}])
def test_not_a_jwks(document):
    with pytest.raises(ValueError, match="not a JWKS"):
        import_jwks(document)
