"""What every broker backend does: mint, renew and revoke logins, find ours, rotate the admin secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlgate.identity.principal import Principal


@dataclass(frozen=True, slots=True)
class MintSpec:
    """One login to create."""

    lease_id: str
    login: str
    password: str | None
    expires_at: datetime
    group_role: str | None
    connection_limit: int
    comment: str
    server_secret: str | None = None  # the password as the server stores it (a SCRAM verifier), from prepare()


@dataclass(frozen=True, slots=True)
class FoundLogin:
    """A login of ours on the server; ``lease_id`` from its marker where the engine keeps one (else by name)."""

    login: str
    lease_id: str | None


class Backend(Protocol):
    """One target database server, reached with its admin credential."""

    engine: str
    mints_logins: bool  # False for Cloud SQL IAM, where the login is the identity's own database user

    def login_for(self, principal: Principal, privilege: str) -> str:
        """The login name a new lease of ``principal`` with privilege level ``privilege`` gets."""

    async def prepare(self, spec: MintSpec) -> MintSpec:
        """Work that needs no server (hashing the password), done while the lease is being recorded."""

    async def mint(self, spec: MintSpec) -> None:
        """Create the login, in the group role, expiring at ``spec.expires_at``, marked with ``spec.comment``."""

    async def renew(self, login: str, expires_at: datetime) -> None:
        """Move the login's expiry."""

    async def revoke(self, login: str) -> None:
        """Lock the login, end its sessions, hand its objects over and drop it. Idempotent."""

    async def logins(self) -> list[FoundLogin]:
        """Every login on the server whose name has our prefix (for the reaper)."""

    async def rotate_admin(self, new_password: str) -> None:
        """Set the admin password to ``new_password`` and prove it works; restore the old one if not."""

    async def restore_admin(self, old_password: str) -> None:
        """Put the previous admin password back (when the new one could not be saved)."""

    async def connect(self, login: str, password: str | None, dbname: str | None = None) -> Any:
        """A driver connection (asyncpg, or asyncmy for MySQL) logged in as a lease's login."""

    async def close(self) -> None:
        """Close admin connections."""
