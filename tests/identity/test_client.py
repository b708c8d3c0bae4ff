"""The client side without a provider: issuer choice, the token cache on disk, which token is kept."""

from __future__ import annotations

import stat

import pytest

from sqlgate.config import IssuerConfig, Settings
from sqlgate.errors import IdentityError
from sqlgate.identity import client
from tests.identity.tokens import b64


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def settings(*issuers):
    return Settings(identity={"issuers": [dict(issuer) for issuer in issuers]})


A = {"issuer": "https://a.example.com", "client_id": "cli"}
B = {"issuer": "https://b.example.com", "client_id": "cli"}
NO_CLIENT = {"issuer": "https://c.example.com"}


def login(issuer, expires_at=4_000_000_000.0, token="t"):
    return client.CachedLogin(
        issuer=issuer, client_id="cli", token_endpoint=f"{issuer}/token", access_token=token, expires_at=expires_at
    )


def test_choose_the_only_issuer_with_a_client_id():
    assert client.choose_issuer(settings(A, NO_CLIENT), None).issuer == A["issuer"]


def test_choose_by_name_and_refuse_unknown():
    assert client.choose_issuer(settings(A, B), "https://b.example.com/").issuer == B["issuer"]
    with pytest.raises(IdentityError, match=r"not in identity\.issuers"):
        client.choose_issuer(settings(A), "https://evil.example.com")


def test_several_issuers_use_the_latest_login():
    with pytest.raises(IdentityError, match="--issuer"):
        client.choose_issuer(settings(A, B), None)
    client.save_login(login(A["issuer"], expires_at=10.0))
    client.save_login(login(B["issuer"], expires_at=20.0))
    assert client.choose_issuer(settings(A, B), None).issuer == B["issuer"]


def test_no_client_id_anywhere():
    with pytest.raises(IdentityError, match="client_id"):
        client.choose_issuer(settings(NO_CLIENT), None)


def test_cache_files_are_private_and_round_trip():
    client.save_login(login(A["issuer"], token="abc"))
    (path,) = client.token_dir().glob("*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert client.current_token(settings(A)) == "abc"


def test_expired_login_without_refresh_token_asks_to_log_in():
    client.save_login(login(A["issuer"], expires_at=1.0))
    with pytest.raises(IdentityError, match="sqlgate login"):
        client.current_token(settings(A))


def test_corrupt_cache_file_counts_as_not_signed_in():
    client.save_login(login(A["issuer"]))
    (path,) = client.token_dir().glob("*.json")
    path.write_text("{not json")
    with pytest.raises(IdentityError, match="not signed in"):
        client.current_token(settings(A))


def jwt_with(claims):
    return f"{b64({'alg': 'RS256'})}.{b64(claims)}.c2ln"


def test_keeps_the_token_whose_audience_the_gateway_accepts():
    config = IssuerConfig(issuer=A["issuer"], client_id="cli", audience="cli")
    access, id_token = jwt_with({"aud": "https://api", "exp": 5}), jwt_with({"aud": "cli", "sub": "u", "exp": 9})
    kept = client.login_from_response(config, "t", {"access_token": access, "id_token": id_token})
    assert (kept.access_token, kept.subject, kept.expires_at) == (id_token, "u", 9)


def test_opaque_access_token_uses_expires_in():
    config = IssuerConfig(issuer=A["issuer"], client_id="cli")
    kept = client.login_from_response(config, "t", {"access_token": "opaque", "expires_in": 60, "refresh_token": "r"})
    assert kept.access_token == "opaque"
    assert kept.refresh_token == "r"
    assert kept.expires_at is not None


def test_answer_without_access_token_is_refused():
    with pytest.raises(IdentityError, match="without an access token"):
        client.login_from_response(IssuerConfig(issuer=A["issuer"]), "t", {"id_token": "x"})


def test_failed_refresh_asks_to_log_in_again():
    """An unreachable token endpoint (or a refused refresh token) means: sign in again."""
    stale = client.CachedLogin(
        issuer=A["issuer"],
        client_id="cli",
        token_endpoint="http://127.0.0.1:9/token",
        access_token="old",
        refresh_token="r",
        expires_at=1.0,
    )
    client.save_login(stale)
    with pytest.raises(IdentityError, match="could not be refreshed"):
        client.current_token(settings(A))
