"""How every command finds its settings, says which file it used, and what to do without a token."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sqlgate.cli import app
from sqlgate.config import find_config, load_settings
from sqlgate.errors import ConfigError

runner = CliRunner()

DEV = "identity:\n  dev_issuer: true\nlisten: {http: '127.0.0.1:%d'}\n"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A demo folder (``.sqlgate/sqlgate.yaml`` as `sqlgate up` writes it) with a subfolder; no $SQLGATE_CONFIG."""
    monkeypatch.delenv("SQLGATE_CONFIG", raising=False)
    monkeypatch.delenv("SQLGATE_TOKEN", raising=False)
    monkeypatch.delenv("SQLGATE_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached login of the real user
    (tmp_path / ".sqlgate").mkdir()
    (tmp_path / ".sqlgate/sqlgate.yaml").write_text(DEV % 1111)
    (tmp_path / "deep/er").mkdir(parents=True)
    return tmp_path


def test_the_demo_settings_are_found_from_its_folder_and_below(tree, monkeypatch):
    for where in (tree, tree / "deep/er"):
        monkeypatch.chdir(where)
        assert find_config().path == tree / ".sqlgate/sqlgate.yaml"
        assert load_settings().listen.http == "127.0.0.1:1111"


def test_order_is_flag_then_environment_then_here_then_upward(tree, monkeypatch):
    monkeypatch.chdir(tree / "deep")
    (tree / "deep/sqlgate.yaml").write_text(DEV % 2222)
    assert load_settings().listen.http == "127.0.0.1:2222"
    (tree / "env.yaml").write_text(DEV % 3333)
    monkeypatch.setenv("SQLGATE_CONFIG", str(tree / "env.yaml"))
    assert load_settings().listen.http == "127.0.0.1:3333"
    (tree / "flag.yaml").write_text(DEV % 4444)
    assert load_settings(tree / "flag.yaml").listen.http == "127.0.0.1:4444"


def test_no_settings_file_names_every_path_looked_at(tmp_path, monkeypatch):
    monkeypatch.delenv("SQLGATE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(tmp_path / "sqlgate.yaml") in caught.value.problems
    assert str(tmp_path / ".sqlgate/sqlgate.yaml") in caught.value.problems
    assert str(tmp_path.parent / ".sqlgate/sqlgate.yaml") in caught.value.problems
    assert "/.sqlgate/sqlgate.yaml" in caught.value.problems
    result = runner.invoke(app, ["config", "validate", "--json"])
    assert result.exit_code == 1
    assert str(tmp_path / "sqlgate.yaml") in json.loads(result.output)["problems"]


def sqlgate(*argv: str, cwd) -> subprocess.CompletedProcess[str]:
    """The installed command line, as a user types it (``--verbose`` is added to every command there)."""
    return subprocess.run(
        [sys.executable, "-m", "sqlgate", *argv], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_verbose_says_which_file_every_command_used(tree):
    result = sqlgate("config", "validate", "--verbose", cwd=tree / "deep/er")
    assert result.returncode == 0, result.stderr
    assert f"settings: {tree / '.sqlgate/sqlgate.yaml'} (from .sqlgate/sqlgate.yaml (searched upward))" in result.stderr
    token = sqlgate("token", "--user", "alice", "--verbose", cwd=tree)
    assert f"settings: {tree / '.sqlgate/sqlgate.yaml'}" in token.stderr
    quiet = sqlgate("config", "validate", cwd=tree)
    assert "settings:" not in quiet.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["creds", "demo"],
        ["request", "demo", "--role", "write", "--duration", "1h", "--reason", "r"],
        ["requests"],
        ["approve", "r1"],
        ["deny", "r1", "--reason", "no"],
        ["connect", "demo"],
    ],
    ids=lambda a: a[0],
)
def test_client_commands_without_a_token_say_how_to_get_one(tree, monkeypatch, argv):
    monkeypatch.chdir(tree)
    result = runner.invoke(app, argv)
    assert result.exit_code != 0
    message = str(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else ""
    message += result.output
    assert "no token: give --token or set SQLGATE_TOKEN" in message
    assert "sqlgate token --user NAME --group GROUP" in message
    assert "sqlgate login" in message
    assert "client_id to sign in with" not in message
