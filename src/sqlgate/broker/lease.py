"""Leases and credentials: what the broker hands out.

A :class:`Lease` is the record of one short-lived database login (no secret in
it: it is what the state database and the audit log see). A :class:`Credential`
is what a client needs to log in with that lease; its password lives only in
the memory of the broker that minted it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

LeaseState = Literal["minting", "active", "revoking", "revoked", "failed"]
REUSE_FRACTION = 4  # a lease is reused while at least 1/REUSE_FRACTION of its life remains


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Lease:
    """One short-lived database login held by one identity for one (database, privilege)."""

    id: str
    principal_key: str
    subject: str
    issuer: str
    database: str
    db_login: str
    db_role: str | None
    privilege: str
    issued_at: datetime
    expires_at: datetime
    state: LeaseState = "active"
    revoke_reason: str | None = None

    @property
    def life(self) -> timedelta:
        """How long the lease was granted for (renewal lengthens it)."""
        return self.expires_at - self.issued_at

    @property
    def reuse_until(self) -> datetime:
        """The lease is handed out again until this moment; then a new one is minted."""
        return self.expires_at - self.life / REUSE_FRACTION

    def is_live(self, now: datetime | None = None) -> bool:
        """Active and not yet expired."""
        return self.state == "active" and (now or utcnow()) < self.expires_at

    def summary(self) -> dict[str, Any]:
        """The lease as JSON-ready data (it holds no secret)."""
        data = asdict(self)
        data["issued_at"] = self.issued_at.isoformat()
        data["expires_at"] = self.expires_at.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class Credential:
    """Everything a client needs to log in directly with a lease."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    expires_at: datetime
    scheme: str = "postgresql"

    @property
    def dsn(self) -> str:
        """A libpq-style URL with the credential in it (treat it as the secret it holds)."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{auth}@{host}:{self.port}/{quote(self.dbname, safe='')}"

    def as_dict(self) -> dict[str, Any]:
        """``{host, port, dbname, user, password, expires_at, dsn}`` as the API and `sqlgate creds` return it."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "expires_at": self.expires_at.isoformat(),
            "dsn": self.dsn,
        }

    def __repr__(self) -> str:
        return f"Credential(user={self.user!r}, host={self.host!r}, dbname={self.dbname!r}, password=<hidden>)"
