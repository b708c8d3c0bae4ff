"""The Authenticator: dispatch by issuer, principal cache, health, and a table of hostile tokens."""

from __future__ import annotations

import json
import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from sqlgate.errors import IdentityError, TokenRejected
from sqlgate.identity import jwt
from sqlgate.identity.authenticator import Authenticator
from tests.identity.tokens import FakeIssuer, b64, compact, hs256, rsa_sign


async def test_valid_token_gives_principal(authenticator, issuer_a):
    principal = await authenticator.authenticate(issuer_a.token(groups=["analysts"]), "10.0.0.7")
    assert (principal.subject, principal.issuer, principal.name) == ("alice", issuer_a.url, "Alice")
    assert principal.groups == ("analysts",)
    assert principal.source == "10.0.0.7"
    assert principal.method == "oidc"


async def test_es256_token_accepted(authenticator, issuer_b):
    principal = await authenticator.authenticate(issuer_b.token("ES256"), None)
    assert principal.issuer == issuer_b.url


async def test_cache_hit_needs_no_keys_and_applies_source(authenticator, issuer_a, clock):
    """A cached principal survives an IdP outage; a new token fails closed once the grace period is over."""
    token = issuer_a.token(exp=int(clock.now) + 36_000)
    first = await authenticator.authenticate(token, "10.0.0.1")
    issuer_a.down = True
    clock.advance(300 + 3600 + 1)  # past the JWKS max-age and the one-hour grace
    again = await authenticator.authenticate(token, "10.0.0.2")
    assert (again.key, again.source, first.source) == (first.key, "10.0.0.2", "10.0.0.1")
    assert issuer_a.jwks_fetches() == 1
    with pytest.raises(TokenRejected, match="unavailable"):
        await authenticator.authenticate(issuer_a.token(sub="bob", exp=int(clock.now) + 600), None)


async def test_cached_principal_ends_with_its_token(authenticator, issuer_a, clock):
    token = issuer_a.token(exp=int(clock.now) + 120)
    await authenticator.authenticate(token, None)
    clock.advance(200)  # past exp plus the 30 s leeway
    with pytest.raises(TokenRejected, match="expired"):
        await authenticator.authenticate(token, None)


async def test_cached_principal_ends_at_max_token_age(issuer_a, http, clock):
    """With max_token_age, the principal (and its cache entry) ends when the token gets too old, not at exp."""
    from sqlgate.identity.oidc import IssuerVerifier  # noqa: PLC0415

    config = issuer_a.config(max_token_age=300)
    auth = Authenticator({issuer_a.url: IssuerVerifier.remote(config, http)}, clock=clock)
    token = issuer_a.token(iat=int(clock.now), exp=int(clock.now) + 3600)
    principal = await auth.authenticate(token, None)
    assert principal.expires_at.timestamp() == int(clock.now) + 300
    clock.advance(340)
    with pytest.raises(TokenRejected, match="older than max_token_age"):
        await auth.authenticate(token, None)


async def test_cache_is_bounded(issuer_a, http, clock):
    from sqlgate.identity.oidc import IssuerVerifier  # noqa: PLC0415

    auth = Authenticator({issuer_a.url: IssuerVerifier.remote(issuer_a.config(), http)}, cache_size=2, clock=clock)
    for user in ("u1", "u2", "u3"):
        await auth.authenticate(issuer_a.token(sub=user), None)
    assert len(auth._cache) == 2


async def test_health_reports_key_freshness(authenticator, issuer_a, issuer_b, clock):
    assert authenticator.health() == {issuer_a.url: False, issuer_b.url: False}
    await authenticator.refresh_keys()
    assert authenticator.health() == {issuer_a.url: True, issuer_b.url: True}
    clock.advance(300 + 3600 + 1)  # past max-age plus the default one-hour grace
    assert authenticator.health() == {issuer_a.url: False, issuer_b.url: False}


async def test_harmless_extra_headers_are_ignored(authenticator, issuer_a):
    """GitHub Actions and Entra ID put certificate thumbprints (x5t) in the header; they are not keys."""
    token = issuer_a.token(header={"x5t": "abc", "x5t#S256": "def", "pi.atm": "x"})
    assert (await authenticator.authenticate(token, None)).subject == "alice"


async def test_empty_token_is_identity_error(authenticator):
    with pytest.raises(IdentityError, match="no token"):
        await authenticator.authenticate("", None)


def _hostile(a: FakeIssuer, b: FakeIssuer) -> list[tuple[str, str, str]]:
    """(name, token, expected reason) for every attack the table covers."""
    now = int(time.time())
    public_pem = RSAKey.import_key(a.rsa_key.public_key()).as_pem()
    claims = a.claims()
    sign_a = lambda data: rsa_sign(a.rsa_key, data)  # noqa: E731
    attacker = FakeIssuer(url=a.url, kid=a.kid)
    jwk = RSAKey.import_key(attacker.rsa_key.public_key()).as_dict()
    return [
        ("alg none", compact({"alg": "none"}, claims, lambda _: b""), "never accepted"),
        ("alg None mixed case", compact({"alg": "nOnE"}, claims, lambda _: b""), "never accepted"),
        (
            "HS256 with the RSA public key",
            compact({"alg": "HS256", "kid": a.kid}, claims, lambda d: hs256(public_pem, d)),
            "never accepted",
        ),
        ("HS512", compact({"alg": "HS512"}, claims, lambda d: hs256(b"k", d)), "never accepted"),
        ("RS512 not pinned", compact({"alg": "RS512", "kid": a.kid}, claims, sign_a), "not accepted from this issuer"),
        ("PS256 not pinned", a.token("PS256"), "not accepted from this issuer"),
        ("no alg", compact({"kid": a.kid}, claims, sign_a), "no alg"),
        ("wrong iss", a.token(iss="https://evil.example.com"), "issuer (iss) is not trusted"),
        ("no iss", a.token(iss=None), "issuer (iss) is not trusted"),
        ("wrong aud", a.token(aud="other-service"), "audience (aud) is not accepted"),
        ("no aud", a.token(aud=None), "no valid audience"),
        ("aud list of wrong", a.token(aud=["x", "y"]), "audience (aud) is not accepted"),
        ("expired", a.token(exp=now - 3600), "expired"),
        ("no exp", a.token(exp=None), "no expiry"),
        ("exp as string", a.token(exp=str(now + 60)), "not a NumericDate"),
        ("exp as bool", a.token(exp=True), "not a NumericDate"),
        ("future nbf", a.token(nbf=now + 3600), "not valid yet"),
        ("future iat", a.token(iat=now + 3600), "issued in the future"),
        ("no sub", a.token(sub=None), "no subject"),
        ("unknown kid", a.token(header={"kid": "nobody"}), "unknown key id"),
        ("kid not a string", a.token(header={"kid": 7}), "kid is not a string"),
        ("jku header", a.token(header={"jku": "https://evil.example.com/jwks"}), "jku header is refused"),
        ("x5u header", a.token(header={"x5u": "https://evil.example.com/cert"}), "x5u header is refused"),
        (
            "embedded jwk",
            compact({"alg": "RS256", "jwk": jwk}, claims, lambda d: rsa_sign(attacker.rsa_key, d)),
            "jwk header is refused",
        ),
        ("x5c header", a.token(header={"x5c": ["MIIB"]}), "x5c header is refused"),
        ("crit header", a.token(header={"crit": ["exp"], "exp": 1}), "crit header"),
        ("unencoded payload", a.token(header={"b64": False}), "b64 header"),
        ("typ not a JWT", a.token(header={"typ": "JWE"}), "unsupported token type"),
        ("oversized", a.token(pad="x" * 17_000), "larger than 16 KB"),
        ("two segments", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", "not a JWT"),
        ("four segments", a.token() + ".x", "not a JWT"),
        ("bad base64 header", "e$J.eyJ9.c2ln", "header is not base64url"),
        ("bad base64 signature", a.token()[:-4] + "!!!!", "signature is not base64url"),
        ("padded base64", a.token().replace(".", "=.", 1), "header is not base64url"),
        ("header not JSON", f"{b64('not json')}.{b64(claims)}.{b64('s')}", "header is not JSON"),
        ("payload not JSON", compact({"alg": "RS256", "kid": a.kid}, b"\xff\xfe", sign_a), "payload is not JSON"),
        ("payload a list", compact({"alg": "RS256", "kid": a.kid}, b"[1]", sign_a), "not a JSON object"),
        ("deeply nested payload", compact({"alg": "RS256", "kid": a.kid}, b"[" * 9000, sign_a), "payload is not JSON"),
        ("NaN in payload", compact({"alg": "RS256", "kid": a.kid}, b'{"exp": NaN}', sign_a), "not valid JSON"),
        (
            "duplicate claim",
            compact({"alg": "RS256", "kid": a.kid}, b'{"sub":"alice","sub":"admin"}', sign_a),
            "duplicate member 'sub'",
        ),
        ("duplicate header", compact(b'{"alg":"RS256","alg":"none"}', claims, sign_a), "duplicate member 'alg'"),
        (
            "issuer A token signed with B's key",
            compact({"alg": "RS256", "kid": b.kid}, claims, lambda d: rsa_sign(b.rsa_key, d)),
            "unknown key id",
        ),
        (
            "A's kid, B's signature",
            compact({"alg": "RS256", "kid": a.kid}, claims, lambda d: rsa_sign(b.rsa_key, d)),
            "bad signature",
        ),
        (
            "tampered payload",
            a.token().split(".")[0] + "." + b64(a.claims(sub="root")) + "." + a.token().split(".")[2],
            "bad signature",
        ),
        ("empty signature", a.token().rsplit(".", 1)[0] + ".", "signature is not base64url"),
        ("RSA kid with ES256", compact({"alg": "ES256", "kid": a.kid}, claims, sign_a), "cannot verify ES256"),
    ]


@pytest.fixture
def hostile(issuer_a, issuer_b):
    return {name: (token, reason) for name, token, reason in _hostile(issuer_a, issuer_b)}


def test_hostile_table_is_large_enough(hostile):
    assert len(hostile) >= 25


@pytest.mark.parametrize("name", [name for name, _, _ in _hostile(FakeIssuer(), FakeIssuer())])
async def test_hostile_token_is_rejected_with_reason(authenticator, hostile, name, caplog):
    """Each attack is refused with its own reason, and no log record holds the token."""
    token, reason = hostile[name]
    await authenticator.refresh_keys()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TokenRejected) as info:
        await authenticator.authenticate(token, "198.51.100.7")
    assert reason in str(info.value)
    for record in caplog.records:
        text = record.getMessage()
        assert token not in text
        for part in token.split("."):
            assert len(part) < 16 or part not in text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
        st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,40}"),
    )
)
async def test_arbitrary_input_only_raises_identity_errors(authenticator, text):
    """Fuzz: any string as a token yields IdentityError (TokenRejected included), never another exception."""
    with pytest.raises(IdentityError):
        await authenticator.authenticate(text, None)


async def test_github_actions_token_end_to_end(issuer_a, http, clock):
    """A workload token with required claims: the repository, ref and environment reach policy via claims."""
    from sqlgate.identity.oidc import IssuerVerifier  # noqa: PLC0415

    config = issuer_a.config(audience="https://github.com/acme", required_claims=["repository", "ref"])
    auth = Authenticator({issuer_a.url: IssuerVerifier.remote(config, http)}, clock=clock)
    claims = {"aud": "https://github.com/acme", "sub": "repo:acme/shop:ref:refs/heads/main", "name": None}
    token = issuer_a.token(**claims, repository="acme/shop", ref="refs/heads/main", environment="prod")
    principal = await auth.authenticate(token, None)
    assert principal.subject == "repo:acme/shop:ref:refs/heads/main"
    assert (principal.claims["repository"], principal.claims["environment"]) == ("acme/shop", "prod")
    with pytest.raises(TokenRejected, match="'ref' is missing"):
        await auth.authenticate(issuer_a.token(**claims, repository="acme/shop"), None)


async def test_kubernetes_service_account_token_end_to_end(issuer_a, http, clock):
    from sqlgate.identity.oidc import IssuerVerifier  # noqa: PLC0415

    auth = Authenticator({issuer_a.url: IssuerVerifier.remote(issuer_a.config(), http)}, clock=clock)
    token = issuer_a.token(
        "ES256",
        sub="system:serviceaccount:payments:api",
        name=None,
        **{"kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "u"}}},
    )
    principal = await auth.authenticate(token, "10.2.0.9")
    assert principal.groups == ("system:serviceaccounts", "system:serviceaccounts:payments")


async def test_cached_principal_goes_when_its_key_leaves_the_jwks(authenticator, issuer_a, clock):
    """The IdP retires the key: the first use past the JWKS max-age refetches in the background, the next is refused."""
    token = issuer_a.token(exp=int(clock.now) + 36_000)
    assert (await authenticator.authenticate(token, None)).subject == "alice"
    issuer_a.rsa_key, issuer_a.kid = rsa.generate_private_key(65537, 2048), "a-2"  # rotated, the old key gone
    assert (await authenticator.authenticate(token, None)).subject == "alice"  # keys still fresh: nothing learnt yet
    clock.advance(301)  # past the JWKS max-age
    assert (await authenticator.authenticate(token, None)).subject == "alice"  # stale keys serve, a fetch starts
    await authenticator.refresh_keys()  # waits for that fetch
    with pytest.raises(TokenRejected, match="unknown key id"):
        await authenticator.authenticate(token, None)
    assert (await authenticator.authenticate(issuer_a.token(), None)).subject == "alice"  # the new key works


async def test_cached_principal_goes_when_its_kid_names_another_key(authenticator, issuer_a, clock):
    """A kid reused for new key material is a new key: principals the old one verified are refused."""
    token = issuer_a.token(exp=int(clock.now) + 36_000)
    await authenticator.authenticate(token, None)
    issuer_a.rsa_key = rsa.generate_private_key(65537, 2048)  # same kid "a-1"
    clock.advance(301)  # past the JWKS max-age
    await authenticator.authenticate(token, None)  # stale keys serve, a fetch starts
    await authenticator.refresh_keys()  # waits for that fetch
    with pytest.raises(TokenRejected, match="bad signature"):
        await authenticator.authenticate(token, None)


async def test_principals_stay_cached_while_their_key_is_published(issuer_a, http, clock):
    """An issuer that keeps publishing the key keeps its principals cached: no fetch per use."""
    from sqlgate.identity.oidc import IssuerVerifier  # noqa: PLC0415

    auth = Authenticator({issuer_a.url: IssuerVerifier.remote(issuer_a.config(), http)}, clock=clock)
    token = issuer_a.token(exp=int(clock.now) + 36_000)
    for _ in range(3):
        await auth.authenticate(token, None)
    clock.advance(301)
    await auth.authenticate(token, None)
    await auth.refresh_keys()
    assert (await auth.authenticate(token, None)).subject == "alice"
    assert issuer_a.jwks_fetches() == 2


def _is_bounded_escaped(text: str, limit: int = 160) -> bool:
    return len(text) <= limit and text.isascii() and text.isprintable()


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ({"kid": "\x1b[31m" + "k" * 10_000 + "\n"}, "kid"),  # a 10 kB kid with terminal escapes
        ({"kid": "evil\r\nINFO forged log line \u202e\u0000"}, "kid"),
        ({"alg": "RS256\x1b[2J\u202e" + "\uff38" * 1000}, "alg"),  # control, bidi and full-width characters
        ({"alg": "\x00" * 8}, "alg"),
    ],
)
async def test_unverified_header_text_is_bounded_and_escaped(authenticator, issuer_a, caplog, header, shown):
    """The kid and alg reach the error (an audit reason, a client message) and the log only as short escaped names."""
    token = issuer_a.token(header=header)
    value = header[shown]
    await authenticator.refresh_keys()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TokenRejected) as info:
        await authenticator.authenticate(token, "198.51.100.7")
    message = str(info.value)
    assert _is_bounded_escaped(message), message
    assert jwt.show_untrusted(value) in message  # named, so an operator can tell tokens apart
    assert len(jwt.show_untrusted(value)) <= jwt.SHOWN_MAX
    lines = [record.getMessage() for record in caplog.records]
    assert any(jwt.show_untrusted(value) in line for line in lines)
    for line in lines:
        assert _is_bounded_escaped(line, 240), line


async def test_member_names_in_errors_are_bounded_and_escaped(authenticator, issuer_a):
    name = "\u202e\x1b" + "\uff38" * 500
    member = json.dumps(name)
    payload = f"{{{member}: 1, {member}: 2}}".encode()  # a duplicate member, written by hand
    token = compact({"alg": "RS256", "kid": issuer_a.kid}, payload, lambda d: rsa_sign(issuer_a.rsa_key, d))
    with pytest.raises(TokenRejected, match="duplicate member") as info:
        await authenticator.authenticate(token, None)
    assert _is_bounded_escaped(str(info.value)), str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a-1", "'a-1'"),
        ("line\nbreak", "'line\\nbreak'"),
        ("\u202eabc", "'\\u202eabc'"),
        (None, "(none)"),
        (7, "<int>"),
    ],
)
def test_show_untrusted(value, expected):
    assert jwt.show_untrusted(value) == expected


def test_show_untrusted_cuts_long_text_and_names_it_by_hash():
    long_a, long_b = "x" * 10_000, "x" * 9_999 + "y"
    shown_a, shown_b = jwt.show_untrusted(long_a), jwt.show_untrusted(long_b)
    assert len(shown_a) == len(shown_b) == jwt.SHOWN_MAX
    assert shown_a != shown_b
    assert shown_a.endswith("...#" + jwt.fingerprint(long_a))
    assert len(jwt.show_untrusted("\x00" * 10_000)) == jwt.SHOWN_MAX
