"""Against a real OpenID provider (npm oidc-provider): client credentials, device flow, PKCE, key rotation."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.config import Settings
from sqlgate.errors import TokenRejected
from sqlgate.identity import client
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.login import run_login
from tests.identity.oidc_provider import Provider, drive_pages
from tests.identity.tokens import Clock

pytestmark = pytest.mark.needs_node


@pytest.fixture(scope="module")
def provider():
    running = Provider()
    yield running
    running.stop()


@pytest.fixture
def settings(provider, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    issuer = {"issuer": provider.issuer, "client_id": "cli", "algorithms": ["RS256"], "audience": "sqlgate"}
    return Settings(data_dir=tmp_path, identity={"issuers": [issuer]})


@pytest.fixture
async def authenticator(settings):
    made = Authenticator.from_settings(settings)
    yield made
    await made.aclose()


def device_approval(user):
    """A prompt that plays the person: opens the verification URL and signs in as ``user``."""

    def approve(prompt):
        assert prompt.user_code
        with httpx.Client(follow_redirects=True) as browser:
            page = drive_pages(browser, prompt.url, user)
        assert "Sign-in Success" in page.text or "success" in page.text.lower()

    return approve


async def test_client_credentials_token(provider, authenticator):
    principal = await authenticator.authenticate(provider.client_credentials(), "10.1.1.1")
    assert (principal.subject, principal.issuer) == ("svc", provider.issuer)
    assert principal.claims["client_id"] == "svc"
    assert authenticator.health() == {provider.issuer: True}


async def test_device_flow_end_to_end(provider, settings, authenticator):
    """`login` by device flow, cached 0600, verified by the gateway, refreshed with the refresh token."""
    login = run_login(settings, prompt=device_approval("alice"), sleep=lambda _: None)
    assert login.subject == "alice"
    assert login.refresh_token
    path = next(client.token_dir().glob("*.json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provider.issuer not in path.name

    principal = await authenticator.authenticate(client.current_token(settings), None)
    assert (principal.subject, principal.name, principal.groups) == ("alice", "Alice Analyst", ("analysts",))

    client.save_login(client.CachedLogin(**{**json.loads(path.read_text()), "expires_at": 1.0}))
    refreshed = client.cached_login(settings)
    assert refreshed.access_token != login.access_token
    assert refreshed.expires_at > 1.0
    assert (await authenticator.authenticate(refreshed.access_token, None)).subject == "alice"


def test_sqlgate_token_prints_the_cached_login(provider, settings, tmp_path):
    run_login(settings, prompt=device_approval("bob"), sleep=lambda _: None)
    config = tmp_path / "sqlgate.yaml"
    config.write_text(f"identity:\n  issuers:\n    - issuer: {provider.issuer}\n      client_id: cli\n")
    result = CliRunner().invoke(app, ["token", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["source"] == provider.issuer
    assert body["token"] == client.current_token(settings)


def test_sqlgate_token_without_login_says_what_to_do(provider, settings, tmp_path):
    config = tmp_path / "sqlgate.yaml"
    config.write_text(f"identity:\n  issuers:\n    - issuer: {provider.issuer}\n      client_id: cli\n")
    result = CliRunner().invoke(app, ["token", "-c", str(config)])
    assert result.exit_code == 1
    assert "sqlgate login" in str(result.exception)


async def test_browser_login_with_pkce(provider, settings, authenticator):
    """The fallback: authorization code + PKCE, the redirect caught on 127.0.0.1."""

    def browser(url):
        with httpx.Client(follow_redirects=True) as session:
            page = drive_pages(session, url, "bob")
        assert "signed in" in page.text

    login = run_login(settings, prefer_browser=True, prompt=lambda _: None, open_browser=browser)
    principal = await authenticator.authenticate(login.access_token, None)
    assert (principal.subject, principal.groups) == ("bob", ("engineers", "oncall"))


async def test_key_rotation_during_a_run(tmp_path):
    """The provider rotates its key: new tokens verify after one refetch; old keys stop once retired."""
    rotating = Provider()
    try:
        clock = Clock()
        issuer = {"issuer": rotating.issuer, "algorithms": ["RS256"], "audience": "sqlgate"}
        config = Settings(data_dir=tmp_path, identity={"issuers": [issuer]})
        authenticator = Authenticator.from_settings(config, clock=clock)
        before = rotating.client_credentials()
        assert (await authenticator.authenticate(before, None)).subject == "svc"

        new_kid = rotating.admin("rotate")
        after = rotating.client_credentials()
        assert rotating.published_kids()[0] == new_kid
        clock.advance(6)  # past the refetch rate limit
        assert (await authenticator.authenticate(after, None)).subject == "svc"

        rotating.admin("retire")
        assert rotating.published_kids() == [new_kid]
        authenticator.forget_principals()
        clock.advance(400)  # past the JWKS max-age (the token itself lives 600 s)
        # Stale keys still serve while a background fetch replaces them ...
        assert (await authenticator.authenticate(before, None)).subject == "svc"
        await authenticator.refresh_keys()  # ... waits for that fetch (it holds the issuer's lock)
        # the principal cached just now goes with its key: no forget_principals() needed
        with pytest.raises(TokenRejected, match="unknown key id"):
            await authenticator.authenticate(before, None)
        await authenticator.aclose()
    finally:
        rotating.stop()


async def test_token_for_another_gateway_is_refused(provider, tmp_path):
    """Two gateways trust one IdP; each accepts only tokens for its own public URL (the default audience)."""

    def gateway(name):
        issuer = {"issuer": provider.issuer, "algorithms": ["RS256"]}
        url = f"https://sqlgate-{name}.example.com/"
        return Authenticator.from_settings(
            Settings(data_dir=tmp_path / name, public_url=url, identity={"issuers": [issuer]})
        )

    staging, production = gateway("staging"), gateway("production")
    try:
        token = provider.client_credentials(resource="https://sqlgate-staging.example.com")
        assert (await staging.authenticate(token, None)).subject == "svc"
        with pytest.raises(TokenRejected, match=r"audience \(aud\) is not accepted"):
            await production.authenticate(token, None)
        with pytest.raises(TokenRejected, match=r"audience \(aud\) is not accepted"):
            await production.authenticate(provider.client_credentials(), None)  # the IdP's generic "sqlgate"
        production_token = provider.client_credentials(resource="https://sqlgate-production.example.com")
        assert (await production.authenticate(production_token, None)).subject == "svc"
    finally:
        await staging.aclose()
        await production.aclose()


async def test_cached_principal_is_refused_once_its_key_leaves_the_jwks(tmp_path):
    """A token verified (and cached) before the IdP retired its key is refused on its next use."""
    rotating = Provider()
    clock = Clock()
    issuer = {"issuer": rotating.issuer, "algorithms": ["RS256"], "audience": "sqlgate"}
    authenticator = Authenticator.from_settings(
        Settings(data_dir=tmp_path, identity={"issuers": [issuer]}), clock=clock
    )
    try:
        before = rotating.client_credentials()
        assert (await authenticator.authenticate(before, None)).subject == "svc"
        assert (await authenticator.authenticate(before, None)).subject == "svc"  # served from the cache

        new_kid = rotating.admin("rotate")
        rotating.admin("retire")
        assert rotating.published_kids() == [new_kid]
        clock.advance(6)  # past the refetch rate limit
        after = rotating.client_credentials()  # its new kid makes the gateway fetch the keys again
        assert (await authenticator.authenticate(after, None)).subject == "svc"

        with pytest.raises(TokenRejected, match="unknown key id"):
            await authenticator.authenticate(before, None)  # still within exp, once cached
        assert (await authenticator.authenticate(after, None)).subject == "svc"
    finally:
        await authenticator.aclose()
        rotating.stop()
