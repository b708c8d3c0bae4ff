"""The command line: help everywhere, version, config commands, honest placeholders."""

from __future__ import annotations

import json

import pytest
import typer.main
from typer.testing import CliRunner

from sqlgate import __version__
from sqlgate.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def all_commands(group=None, prefix=()):
    command = typer.main.get_command(app) if group is None else group
    for name, sub in getattr(command, "commands", {}).items():
        yield (*prefix, name)
        yield from all_commands(sub, (*prefix, name))


@pytest.mark.parametrize("argv", [(), *all_commands()], ids=lambda a: " ".join(a) or "sqlgate")
def test_every_command_has_help(argv):
    result = runner.invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_validate_reports_problems(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("listen: {http: nowhere}\ndatabases:\n  demo: {dbname: d, admin_user: a, port: x}\n")
    result = runner.invoke(app, ["config", "validate", "-c", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    assert any(p.startswith("listen.http:") and "(line 1)" in p for p in report["problems"])
    assert "databases.demo.port: not a valid integer (line 3)" in report["problems"]


def test_config_validate_accepts_a_good_file(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("databases:\n  demo: {dbname: d, admin_user: a, admin_password_env: X}\n")
    result = runner.invoke(app, ["config", "validate", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_config_schema_is_json_schema():
    result = runner.invoke(app, ["config", "schema"])
    schema = json.loads(result.output)
    assert schema["title"] == "sqlgate settings"
    assert "databases" in schema["properties"]
