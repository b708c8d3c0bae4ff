"""Admin secret rotation: Broker.rotate_admin, the schedule in the reaper, and `sqlgate rotate-admin`."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from sqlgate.audit.testing import MemoryAuditor
from sqlgate.broker import Broker, Reaper, rotation
from sqlgate.broker.backends.postgres import PostgresBackend
from sqlgate.broker.rotation import write_secret_file
from sqlgate.cli import app
from sqlgate.errors import BrokerError
from tests.broker.conftest import ALIAS, TTL, principal, settings_for


async def admin_can_log_in(config, password):
    conn = await asyncpg.connect(
        host=config.host, port=config.port, user=config.admin_user, password=password, database=config.dbname
    )
    await conn.close()


async def test_rotate_admin_replaces_the_secret(broker, pg_target, auditor):
    """The new password works, the old one no longer does, the file is 0600, minting still works."""
    old = pg_target.admin_password_value()
    await broker.lease(principal(), ALIAS, "read", TTL)
    await broker.rotate_admin(ALIAS)
    new = pg_target.admin_password_value()
    assert new != old
    assert stat.S_IMODE(pg_target.admin_password_file.stat().st_mode) == 0o600
    await admin_can_log_in(pg_target, new)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await admin_can_log_in(pg_target, old)
    rotation = [event for event in auditor.events if event.type == "admin.rotate"]
    assert rotation[0].outcome == "success"
    assert new not in rotation[0].model_dump_json()
    assert old not in rotation[0].model_dump_json()
    await (await broker.backend(ALIAS).pool()).expire_connections()
    await broker.lease(principal("bob"), ALIAS, "read", TTL)


async def test_rotation_refuses_a_secret_from_the_environment(pg_target, store, tmp_path, monkeypatch, pg_server):
    """An env-var secret cannot be rewritten: a clear refusal, and the password is unchanged."""
    monkeypatch.setenv("TEST_ADMIN_SECRET", pg_target.admin_password_value())
    config = pg_target.model_copy(update={"admin_password_file": None, "admin_password_env": "TEST_ADMIN_SECRET"})
    broker = Broker(settings_for(config, tmp_path), store, MemoryAuditor())
    try:
        with pytest.raises(BrokerError, match="environment variable TEST_ADMIN_SECRET"):
            await broker.rotate_admin(ALIAS)
        await admin_can_log_in(config, os.environ["TEST_ADMIN_SECRET"])
    finally:
        await broker.close()


async def test_unsaved_secret_puts_the_old_password_back(broker, pg_target, auditor, monkeypatch):
    """When the new secret cannot be saved (disk full), the server gets the old password back."""
    old = pg_target.admin_password_value()

    def disk_full(path, secret):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rotation, "write_secret_file", disk_full)
    with pytest.raises(BrokerError, match="old admin password was restored"):
        await broker.rotate_admin(ALIAS)
    assert pg_target.admin_password_value() == old
    await admin_can_log_in(pg_target, old)
    assert [e.outcome for e in auditor.events if e.type == "admin.rotate"] == ["failure"]


async def test_new_password_that_fails_its_proof_is_undone(broker, pg_target, auditor, monkeypatch):
    """If logging in with the new password fails, the old one is set again and the file is untouched."""
    old = pg_target.admin_password_value()

    async def refuse(self, dbname, password=None):
        raise OSError("connection refused")

    monkeypatch.setattr(PostgresBackend, "_connect", refuse)
    with pytest.raises(BrokerError, match="did not work, the old one was kept"):
        await broker.rotate_admin(ALIAS)
    monkeypatch.undo()
    assert pg_target.admin_password_value() == old
    await admin_can_log_in(pg_target, old)


def test_write_secret_file_is_atomic_and_private(tmp_path):
    """The file is replaced whole with mode 0600 and no temporary file is left behind."""
    path = tmp_path / "secret"
    path.write_text("old\n")
    path.chmod(0o644)
    write_secret_file(path, "new")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


async def test_scheduled_rotation_runs_when_the_file_is_old(pg_target, store, tmp_path):
    """rotate_admin_every: the reaper rotates once the secret file is older than the period, not before."""
    config = pg_target.model_copy(update={"rotate_admin_every": timedelta(hours=1)})
    broker = Broker(settings_for(config, tmp_path), store, MemoryAuditor())
    try:
        old = config.admin_password_value()
        assert (await Reaper(broker).run_once()).rotated == []
        two_hours_ago = config.admin_password_file.stat().st_mtime - 7200
        os.utime(config.admin_password_file, (two_hours_ago, two_hours_ago))
        assert (await Reaper(broker).run_once()).rotated == [ALIAS]
        assert config.admin_password_value() != old
    finally:
        await broker.close()


def test_cli_rotate_admin(pg_target, tmp_path):
    """`sqlgate rotate-admin DB -c FILE --json` rotates and reports; the audit line on stderr holds no secret."""
    old = pg_target.admin_password_value()
    settings = tmp_path / "sqlgate.yaml"
    db = pg_target.model_dump(mode="json", exclude_none=True)
    settings.write_text(json.dumps({"databases": {"app": db}}))
    result = CliRunner().invoke(app, ["rotate-admin", "app", "-c", str(settings), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database"] == "app"
    assert report["admin_user"] == pg_target.admin_user
    new = pg_target.admin_password_value()
    assert new != old
    assert new not in result.output
    assert '"admin.rotate"' in result.stderr


def test_cli_rotate_admin_unknown_database(pg_target, tmp_path):
    """An unknown alias is a clear error and exit code 1."""
    settings = tmp_path / "sqlgate.yaml"
    settings.write_text(json.dumps({"databases": {"app": pg_target.model_dump(mode="json", exclude_none=True)}}))
    result = CliRunner().invoke(app, ["rotate-admin", "nope", "-c", str(settings)])
    assert result.exit_code == 1
    assert "unknown database 'nope'" in str(result.exception)


async def test_scheduled_rotation_with_an_env_secret_is_reported(pg_target, store, tmp_path, monkeypatch):
    """A schedule on an env-var secret cannot run; each reaper pass says why instead of failing silently."""
    monkeypatch.setenv("TEST_ADMIN_SECRET", pg_target.admin_password_value())
    config = pg_target.model_copy(
        update={
            "admin_password_file": None,
            "admin_password_env": "TEST_ADMIN_SECRET",
            "rotate_admin_every": timedelta(seconds=1),
        }
    )
    broker = Broker(settings_for(config, tmp_path), store, MemoryAuditor())
    try:
        report = await Reaper(broker).run_once()
        assert report.rotated == []
        assert any("rotate_admin_every needs admin_password_file" in error for error in report.errors)
    finally:
        await broker.close()
