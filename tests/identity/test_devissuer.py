"""The built-in dev issuer: keys on disk, minting, its HTTP routes, the exposure check, `sqlgate token`."""

from __future__ import annotations

import json
import stat
import time
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.config import Settings
from sqlgate.errors import ConfigError, TokenRejected
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.devissuer import DevIssuer, check_dev_issuer_exposure, dev_issuer_url
from sqlgate.identity.devissuer_http import dev_issuer_router

runner = CliRunner()


def settings_for(tmp_path, **identity):
    return Settings(data_dir=tmp_path, identity={"dev_issuer": True, **identity})


def test_key_is_created_once_with_mode_0600(tmp_path):
    first = DevIssuer.load(tmp_path, "http://127.0.0.1:8480/dev-issuer")
    path = tmp_path / "dev-issuer" / "signing-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert DevIssuer.load(tmp_path, first.url).kid == first.kid


def test_issuer_url_default_and_override(tmp_path):
    assert dev_issuer_url(settings_for(tmp_path)) == "http://127.0.0.1:8480/dev-issuer"
    assert dev_issuer_url(settings_for(tmp_path, dev_issuer_url="https://gw/dev")) == "https://gw/dev"


async def test_minted_token_is_accepted_by_the_authenticator(tmp_path):
    settings = settings_for(tmp_path)
    token = DevIssuer.from_settings(settings).mint("alice", ["analysts", "x"], timedelta(minutes=5))
    authenticator = Authenticator.from_settings(settings)
    try:
        principal = await authenticator.authenticate(token, "127.0.0.1")
    finally:
        await authenticator.aclose()
    assert (principal.subject, principal.groups, principal.method) == ("alice", ("analysts", "x"), "dev")
    assert authenticator.health() == {dev_issuer_url(settings): True}


async def test_dev_tokens_are_refused_when_the_dev_issuer_is_off(tmp_path):
    token = DevIssuer.from_settings(settings_for(tmp_path)).mint("alice", [], timedelta(minutes=5))
    authenticator = Authenticator.from_settings(Settings(data_dir=tmp_path))
    with pytest.raises(TokenRejected, match="not trusted"):
        await authenticator.authenticate(token, None)
    await authenticator.aclose()


@pytest.mark.parametrize(
    ("user", "groups", "ttl"),
    [
        ("", [], timedelta(minutes=1)),
        ("a\nb", [], timedelta(minutes=1)),
        ("a", [" x"], timedelta(minutes=1)),
        ("a", [], timedelta(days=2)),
        ("a", [], timedelta(0)),
    ],
)
def test_mint_refuses_bad_input(tmp_path, user, groups, ttl):
    with pytest.raises(ValueError, match="must be"):
        DevIssuer.load(tmp_path, "http://127.0.0.1/dev-issuer").mint(user, groups, ttl)


@pytest.mark.parametrize(
    ("listen", "insecure", "refused"),
    [
        ("127.0.0.1:8480", False, False),
        ("[::1]:8480", False, False),
        ("0.0.0.0:8480", False, True),
        ("0.0.0.0:8480", True, False),
        ("10.1.2.3:8480", False, True),
    ],
)
def test_exposure_check(tmp_path, listen, insecure, refused):
    settings = Settings(data_dir=tmp_path, listen={"http": listen}, identity={"dev_issuer": True})
    if refused:
        with pytest.raises(ConfigError, match="--insecure-dev"):
            check_dev_issuer_exposure(settings, insecure)
    else:
        check_dev_issuer_exposure(settings, insecure)


def test_exposure_check_ignores_a_disabled_dev_issuer(tmp_path):
    check_dev_issuer_exposure(Settings(data_dir=tmp_path, listen={"http": "0.0.0.0:8480"}), insecure_dev=False)


def client_for(issuer, client_host="127.0.0.1"):
    api = FastAPI()
    api.include_router(dev_issuer_router(issuer))
    transport = httpx.ASGITransport(app=api, client=(client_host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8480")


async def test_http_routes_form_a_working_issuer(tmp_path):
    """Discovery -> JWKS -> token endpoint; the token verifies against the served JWKS (no local keys)."""
    issuer = DevIssuer.load(tmp_path, "http://127.0.0.1:8480/dev-issuer")
    async with client_for(issuer) as http:
        meta = (await http.get("/dev-issuer/.well-known/openid-configuration")).json()
        assert meta["issuer"] == issuer.url
        jwks = await http.get("/dev-issuer/jwks")
        assert "max-age=300" in jwks.headers["cache-control"]
        assert jwks.json()["keys"][0]["kid"] == issuer.kid
        assert "d" not in jwks.json()["keys"][0]
        answer = await http.post("/dev-issuer/token", data={"user": "bob", "groups": ["a,b", "c"], "ttl": "2m"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["expires_in"] == 120
        # the gateway of the same data_dir: its id is the audience the issuer minted for
        settings = Settings(data_dir=tmp_path, identity={"issuers": [{"issuer": issuer.url, "algorithms": ["ES256"]}]})
        authenticator = Authenticator.from_settings(settings, http_client=http)
        principal = await authenticator.authenticate(body["access_token"], None)
        assert (principal.subject, principal.groups) == ("bob", ("a", "b", "c"))


async def test_token_endpoint_refuses_non_loopback_clients(tmp_path):
    issuer = DevIssuer.load(tmp_path, "http://127.0.0.1:8480/dev-issuer")
    async with client_for(issuer, client_host="203.0.113.9") as http:
        answer = await http.post("/dev-issuer/token", data={"user": "bob"})
    assert answer.status_code == 403


async def test_token_endpoint_refuses_bad_ttl(tmp_path):
    issuer = DevIssuer.load(tmp_path, "http://127.0.0.1:8480/dev-issuer")
    async with client_for(issuer) as http:
        answer = await http.post("/dev-issuer/token", data={"user": "bob", "ttl": "3d"})
    assert answer.status_code == 400


def write_config(tmp_path, dev_issuer=True):
    path = tmp_path / "sqlgate.yaml"
    path.write_text(f"data_dir: data\nidentity:\n  dev_issuer: {str(dev_issuer).lower()}\n")
    return path


async def test_cli_token_prints_a_verifiable_token(tmp_path):
    config = write_config(tmp_path)
    result = runner.invoke(app, ["token", "-c", str(config), "--user", "alice", "--group", "analysts", "--ttl", "15m"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    settings = Settings(data_dir=tmp_path / "data", identity={"dev_issuer": True})
    authenticator = Authenticator.from_settings(settings)
    principal = await authenticator.authenticate(token, None)
    await authenticator.aclose()
    assert (principal.subject, principal.groups) == ("alice", ("analysts",))
    assert 14 * 60 < principal.expires_at.timestamp() - time.time() <= 15 * 60


def test_cli_token_json(tmp_path):
    result = runner.invoke(app, ["token", "-c", str(write_config(tmp_path)), "--user", "bob", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["source"] == "dev"
    assert json.loads(result.stdout)["expires_at"].endswith("+00:00")
    assert json.loads(result.stdout)["token"].count(".") == 2


@pytest.mark.parametrize("args", [["--ttl", "soon"], ["--ttl", "3d"], ["--user", ""]])
def test_cli_token_bad_input(tmp_path, args):
    argv = ["token", "-c", str(write_config(tmp_path)), "--user", "bob", *args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert "token" not in result.stdout or result.stdout.count(".") < 2


def test_cli_token_warns_when_dev_issuer_is_off(tmp_path):
    result = runner.invoke(app, ["token", "-c", str(write_config(tmp_path, dev_issuer=False)), "--user", "bob"])
    assert result.exit_code == 0
    assert "dev_issuer is off" in result.stderr


def test_cli_login_without_a_client_id_explains(tmp_path):
    config = tmp_path / "sqlgate.yaml"
    config.write_text("identity:\n  issuers:\n    - issuer: https://idp.example.com\n")
    result = runner.invoke(app, ["login", "-c", str(config)])
    assert result.exit_code == 1
    assert "client_id" in str(result.exception)
