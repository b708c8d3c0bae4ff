"""Admin secret rotation: a new random password, proven, then saved atomically.

Order matters so the admin is never locked out: the server is told the new
password (as a SCRAM verifier), a fresh connection proves it works while the
old one is still in the secret file, then the file is replaced atomically
(temporary file in the same directory, fsync, rename, mode 0600). If saving
fails the old password is put back on the server. A secret that comes from an
environment variable cannot be rewritten here, so rotation refuses.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from sqlgate.audit.events import AuditEvent, Auditor
from sqlgate.broker.backends import Backend
from sqlgate.broker.lease import utcnow
from sqlgate.config import DatabaseConfig
from sqlgate.errors import BrokerError

SECRET_BYTES = 32


async def rotate_admin(alias: str, config: DatabaseConfig, backend: Backend, auditor: Auditor) -> datetime:
    """Rotate the admin password of database ``alias``; returns the time of rotation."""
    path = _secret_file(alias, config)
    old_password = config.admin_password_value()
    new_password = secrets.token_urlsafe(SECRET_BYTES)
    data = {"admin_user": config.admin_user, "secret_file": str(path)}
    try:
        await backend.rotate_admin(new_password)
    except Exception as exc:
        await auditor.record(_event(alias, "failure", f"server refused the new password: {exc}", data))
        raise
    try:
        write_secret_file(path, new_password)
    except OSError as exc:
        await backend.restore_admin(old_password)
        await auditor.record(_event(alias, "failure", f"could not save the secret file: {exc.strerror}", data))
        raise BrokerError(f"could not write {path}: {exc.strerror}; the old admin password was restored") from exc
    now = utcnow()
    await auditor.record(_event(alias, "success", "admin password rotated", data))
    return now


def write_secret_file(path: Path, secret: str) -> None:
    """Replace ``path`` with ``secret`` atomically: temp file, fsync, rename, mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _secret_file(alias: str, config: DatabaseConfig) -> Path:
    if config.engine == "cloudsql":
        raise BrokerError(f"database {alias!r} uses Cloud SQL IAM authentication: it has no admin password to rotate")
    if config.admin_password_file is None:
        raise BrokerError(
            f"the admin password of {alias!r} comes from the environment variable {config.admin_password_env}, "
            "which sqlgate cannot rewrite",
            hint="rotate it where it is set, or move it to a file named by admin_password_file",
        )
    return config.admin_password_file


def _event(alias: str, outcome: str, reason: str, data: dict[str, str]) -> AuditEvent:
    return AuditEvent(
        type="admin.rotate",
        database=alias,
        db_login=data["admin_user"],
        outcome="success" if outcome == "success" else "failure",
        reason=reason,
        data=data,
    )
