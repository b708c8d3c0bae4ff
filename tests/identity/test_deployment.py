"""The gateway's id in tokens: generated once, kept across restarts, shown by `config show`, binding every token."""

from __future__ import annotations

import json
import re
import shutil
import stat
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.config import Settings, load_settings
from sqlgate.errors import ConfigError, TokenRejected
from sqlgate.identity.authenticator import Authenticator
from sqlgate.identity.deployment import ID_FILE, load_or_create_id, resolve
from sqlgate.identity.devissuer import DevIssuer, mint_dev_token

runner = CliRunner()
GENERATED = re.compile(r"urn:sqlgate:[0-9a-f]{32}")


def write_config(tmp_path, name="sqlgate", extra=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"data_dir: {name}-data\nidentity:\n  dev_issuer: true\n"
        "  issuers: [{issuer: 'https://idp.example.com'}, {issuer: 'https://ci.example.com', audience: ci}]\n"
        "  aws: {enabled: true}\n" + extra
    )
    return path


def config_show(config):
    result = runner.invoke(app, ["config", "show", "-c", str(config)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


async def start_and_stop(config):
    """What the gateway does with identity at start: build the authenticator (the id is made here)."""
    await Authenticator.from_settings(load_settings(config)).aclose()


async def test_generated_id_persists_across_restarts_and_shows_in_config_show(tmp_path):
    config = write_config(tmp_path)
    before, note = config_show(config)
    assert before["identity"]["deployment_id"] is None
    assert "first start" in note
    assert not (tmp_path / "sqlgate-data").exists()  # showing writes nothing

    await start_and_stop(config)
    id_file = tmp_path / "sqlgate-data" / ID_FILE
    first = id_file.read_text().strip()
    assert GENERATED.fullmatch(first)
    assert stat.S_IMODE(id_file.stat().st_mode) == 0o644  # public, like the JWKS

    await start_and_stop(config)  # a restart keeps it
    assert id_file.read_text().strip() == first
    shown, _ = config_show(config)
    identity = shown["identity"]
    assert identity["deployment_id"] == first
    assert [issuer["audience"] for issuer in identity["issuers"]] == [first, "ci"]  # an explicit audience wins
    assert identity["aws"]["server_id"] == first


async def test_dev_tokens_are_for_this_gateway_only(tmp_path):
    """Staging's dev token is refused by production even when both hold the same dev-issuer key."""
    staging, production = write_config(tmp_path, "staging"), write_config(tmp_path, "production")
    await start_and_stop(staging)
    await start_and_stop(production)
    key = Path("dev-issuer") / "signing-key.pem"
    shutil.copyfile(tmp_path / "staging-data" / key, tmp_path / "production-data" / key)

    result = runner.invoke(app, ["token", "-c", str(staging), "--user", "alice", "--group", "analysts"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    staging_gateway = Authenticator.from_settings(load_settings(staging))
    production_gateway = Authenticator.from_settings(load_settings(production))
    try:
        assert (await staging_gateway.authenticate(token, None)).subject == "alice"
        with pytest.raises(TokenRejected, match=r"audience \(aud\) is not accepted"):
            await production_gateway.authenticate(token, None)
    finally:
        await staging_gateway.aclose()
        await production_gateway.aclose()


async def test_token_before_the_first_start_works_after_it(tmp_path):
    """`sqlgate token --user` on a fresh data_dir makes the id; the gateway started later uses the same one."""
    config = write_config(tmp_path)
    token = mint_dev_token(load_settings(config), "bob", [], timedelta(minutes=5))
    gateway = Authenticator.from_settings(load_settings(config))
    try:
        assert (await gateway.authenticate(token, None)).subject == "bob"
    finally:
        await gateway.aclose()


def test_public_url_names_the_gateway(tmp_path):
    settings = resolve(
        Settings(data_dir=tmp_path, public_url="HTTPS://SQLGate.Example.com:8443/", identity={"dev_issuer": True})
    )
    assert settings.identity.deployment_id == "https://sqlgate.example.com:8443"
    assert DevIssuer.from_settings(settings).audience == "https://sqlgate.example.com:8443"
    assert settings.identity.aws.server_id == "https://sqlgate.example.com:8443"
    assert not (tmp_path / ID_FILE).exists()  # nothing generated when the URL names the gateway


def test_explicit_deployment_id_wins_over_public_url(tmp_path):
    settings = Settings(
        data_dir=tmp_path, public_url="https://gw.example.com", identity={"deployment_id": "prod-eu", "aws": {}}
    )
    assert resolve(settings).identity.aws.server_id == "prod-eu"


def test_a_damaged_id_file_stops_start_up_and_is_left_alone(tmp_path):
    (tmp_path / ID_FILE).write_text("sqlgate\n")
    with pytest.raises(ConfigError, match="does not hold a deployment id"):
        Authenticator.from_settings(Settings(data_dir=tmp_path, identity={"dev_issuer": True}))
    assert (tmp_path / ID_FILE).read_text() == "sqlgate\n"


def test_concurrent_first_starts_agree_on_one_id(tmp_path):
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(load_or_create_id(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [ID_FILE]  # no temporary file left behind
