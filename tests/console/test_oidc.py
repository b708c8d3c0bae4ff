"""Sign in with an issuer: authorization code + PKCE against a real OpenID provider (npm oidc-provider)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from sqlgate.audit.search import search
from sqlgate.config import IssuerConfig
from sqlgate.console import oidc
from sqlgate.errors import IdentityError
from tests.console.conftest import csrf_of
from tests.gateway import DEMO_POLICY, RunningGateway
from tests.identity.oidc_provider import Provider, _Forms

META = {"issuer": "https://idp.example.com", "authorization_endpoint": "https://idp.example.com/auth"}
CONFIG = IssuerConfig(issuer="https://idp.example.com", client_id="console", audience="sqlgate")


def test_authorization_url_carries_state_nonce_and_an_s256_challenge():
    url, pending = oidc.authorization_url(META, CONFIG, "http://127.0.0.1:8480/ui/login/callback")
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    assert url.startswith("https://idp.example.com/auth?")
    assert query["response_type"] == "code"
    assert query["client_id"] == "console"
    assert query["redirect_uri"] == pending.redirect_uri == "http://127.0.0.1:8480/ui/login/callback"
    assert (query["state"], query["nonce"]) == (pending.state, pending.nonce)
    digest = hashlib.sha256(pending.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert query["code_challenge_method"] == "S256"
    assert pending.verifier not in url  # the verifier stays on the server
    again = oidc.authorization_url(META, CONFIG, pending.redirect_uri)[1]
    assert (again.state, again.nonce, again.verifier) != (pending.state, pending.nonce, pending.verifier)


async def test_a_callback_with_another_state_is_refused_before_any_exchange():
    _url, pending = oidc.authorization_url(META, CONFIG, "http://127.0.0.1/ui/login/callback")
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:  # nothing listens: nothing may be sent
        for params in ({"code": "c", "state": "forged"}, {"code": "c"}):
            with pytest.raises(IdentityError, match="state does not match"):
                await oidc.exchange(http, {**META, "token_endpoint": "http://127.0.0.1:9/t"}, CONFIG, pending, params)
        with pytest.raises(IdentityError, match="access_denied"):
            await oidc.exchange(http, META, CONFIG, pending, {"state": pending.state, "error": "access_denied"})


def sign_in_at_the_provider(browser: httpx.Client, url: str, user: str, gateway_url: str) -> httpx.Response:
    """Follow the provider's pages (login as ``user``, consent) until the browser is back at the gateway."""
    response = browser.get(url)
    for _ in range(8):
        if str(response.url).startswith(gateway_url):
            return response
        parser = _Forms()
        parser.feed(response.text)
        assert parser.forms, response.text
        action, fields = parser.forms[0]
        fields = {**fields, "login": user, "password": "any"} if "login" in fields else fields
        response = browser.post(urljoin(str(response.url), action), data=fields)
    pytest.fail("the provider's pages did not finish")


class OidcGateway(RunningGateway):
    """A gateway whose only sign-in is the provider's (the dev issuer off)."""

    issuer = ""

    def _prepare_database(self, policy: str) -> None:
        super()._prepare_database(policy)
        path = self.workdir / "sqlgate.yaml"
        issuer = f"{{issuer: '{self.issuer}', client_id: console, audience: sqlgate, algorithms: [RS256]}}"
        path.write_text(path.read_text().replace("identity: {dev_issuer: true}", f"identity: {{issuers: [{issuer}]}}"))


@pytest.fixture(scope="module")
def provider():
    running = Provider()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def oidc_gateway(pg_server, provider, tmp_path_factory):
    database = f"t_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{database}"')
    OidcGateway.issuer = provider.issuer
    running = OidcGateway(pg_server, tmp_path_factory.mktemp("oidc"), DEMO_POLICY, database, secrets.token_hex(3))
    yield running
    running.stop()
    pg_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_sign_in_with_the_provider(oidc_gateway, provider):
    with httpx.Client(base_url=oidc_gateway.http_url, follow_redirects=True, timeout=30) as browser:
        login = browser.get("/ui/login")
        host = urlsplit(provider.issuer).netloc
        assert f">Sign in with {host}</a>" in login.text
        assert 'name="user"' not in login.text  # no dev form while the dev issuer is off
        start = browser.get("/ui/login/issuer/0", follow_redirects=False)
        assert start.status_code == 303
        assert start.headers["location"].startswith(f"{provider.issuer}/auth?")
        binding = browser.cookies["sqlgate_console_login"]
        assert binding not in start.headers["location"]
        page = sign_in_at_the_provider(browser, start.headers["location"], "alice", oidc_gateway.http_url)
        assert page.url.path == "/ui/login/callback", page.text[-1500:]
        assert '<meta http-equiv="refresh" content="0; url=/ui">' in page.text
        assert "sqlgate_console_login" not in browser.cookies  # used once, then dropped
        assert "eyJ" not in page.text  # the token is not in the page
        replay = browser.get(str(page.url))  # the same code and state a second time
        assert replay.status_code == 400
        assert "not started here" in replay.text
        page = browser.get("/ui")
        assert "<h1>My access</h1>" in page.text  # the replay changed nothing
        assert "Signed in as <strong>Alice Analyst</strong> in analysts" in page.text
        forged = browser.post("/ui/login", data={"user": "mallory", "csrf_token": csrf_of(page.text)})
        assert forged.status_code == 404  # the dev form is off
    services = oidc_gateway.gateway.services
    oidc_gateway.call(services.audit.flush())
    page = oidc_gateway.call(search(services.store, type="auth.success", who=f"{provider.issuer}#alice"))
    assert [record["data"]["protocol"] for record in page.records] == ["console"]


def test_an_unknown_issuer_index_is_refused(oidc_gateway):
    with httpx.Client(base_url=oidc_gateway.http_url) as browser:
        answer = browser.get("/ui/login/issuer/5")
        assert answer.status_code == 401
        assert "no such issuer" in answer.text


def test_sign_in_with_the_provider_in_chromium_from_another_site(oidc_gateway, provider, browser):
    """Issuer (127.0.0.1) and console (localhost) on different sites: the sign-in holds without Strict cookies.

    As in production, the SameSite=Strict session cookie does not ride the issuer's redirect back.
    """
    from playwright.sync_api import expect  # noqa: PLC0415 - Playwright is imported where Chromium exists

    console_url = f"http://localhost:{oidc_gateway.gateway.http_port}"
    context = browser.new_context(base_url=console_url)
    try:
        page = context.new_page()
        page.goto("/ui/login")
        page.get_by_role("link", name=f"Sign in with {urlsplit(provider.issuer).netloc}").click()
        for _ in range(6):  # the provider's own pages: sign in, then consent
            page.wait_for_load_state()
            if page.url.startswith(console_url):
                break
            if page.locator("input[name=login]").count():
                page.fill("input[name=login]", "bob")
                page.fill("input[name=password]", "any")
            page.locator("button[type=submit]").first.click()
        expect(page.get_by_role("heading", name="My access")).to_be_visible()
        expect(page.get_by_text("Signed in as Bob Builder in engineers, oncall")).to_be_visible()
        assert page.url == f"{console_url}/ui"
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        session = cookies["sqlgate_console"]
        assert (session["httpOnly"], session["sameSite"], session["path"]) == (True, "Strict", "/ui")
        assert "sqlgate_console_login" not in cookies
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_text("You have signed out.")).to_be_visible()
    finally:
        context.close()
