"""Reading and writing leases in the state database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import and_, insert, or_, select, update

from sqlgate.broker.lease import Lease, LeaseState, utcnow
from sqlgate.broker.tables import leases
from sqlgate.store import StateStore


class LeaseRepository:
    """The lease table of one state store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def insert(self, lease: Lease, *, sealed_secret: str | None = None, minted_by: str | None = None) -> None:
        """Record a new lease (the broker does this before the login exists), its password sealed when shared."""
        async with self._store.begin() as conn:
            await conn.execute(
                insert(leases).values(
                    **_row(lease), sealed_secret=sealed_secret, minted_by=minted_by, updated_at=utcnow()
                )
            )

    async def shared(self, principal_key: str, database: str, privilege: str) -> list[tuple[Lease, str]]:
        """Active leases of this key that any replica can reuse (a sealed secret), longest-lived first."""
        query = (
            select(leases)
            .where(
                leases.c.state == "active",
                leases.c.principal_key == principal_key,
                leases.c.database == database,
                leases.c.privilege == privilege,
                leases.c.sealed_secret.is_not(None),
            )
            .order_by(leases.c.expires_at.desc())
        )
        async with self._store.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [(_lease(row), str(row["sealed_secret"])) for row in rows]

    async def set_state(
        self, lease_id: str, state: LeaseState, *, reason: str | None = None, expires_at: datetime | None = None
    ) -> None:
        """Move a lease to ``state`` (and record why, or its new expiry)."""
        values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
        if reason is not None:
            values["revoke_reason"] = reason
        if expires_at is not None:
            values["expires_at"] = expires_at
        async with self._store.begin() as conn:
            await conn.execute(update(leases).where(leases.c.id == lease_id).values(**values))

    async def get(self, lease_id: str) -> Lease | None:
        """The lease with this id, if any."""
        async with self._store.begin() as conn:
            row = (await conn.execute(select(leases).where(leases.c.id == lease_id))).mappings().first()
        return None if row is None else _lease(row)

    async def states(self, lease_ids: Iterable[str]) -> dict[str, Lease]:
        """The leases among ``lease_ids`` that exist, by id."""
        ids = list(lease_ids)
        found: dict[str, Lease] = {}
        for start in range(0, len(ids), 500):
            async with self._store.begin() as conn:
                rows = await conn.execute(select(leases).where(leases.c.id.in_(ids[start : start + 500])))
                found.update((lease.id, lease) for lease in map(_lease, rows.mappings()))
        return found

    async def by_login(self, database: str, logins: Iterable[str]) -> dict[str, Lease]:
        """The newest lease of each of ``logins`` on ``database`` (for engines without a marker on the login)."""
        names = list(logins)
        found: dict[str, Lease] = {}
        for start in range(0, len(names), 500):
            query = (
                select(leases)
                .where(leases.c.database == database, leases.c.db_login.in_(names[start : start + 500]))
                .order_by(leases.c.issued_at)
            )
            found.update((lease.db_login, lease) for lease in await self._fetch(query))
        return found

    async def active(self, *, principal_key: str | None = None, database: str | None = None) -> list[Lease]:
        """Active leases, optionally of one principal and/or one database."""
        query = select(leases).where(leases.c.state == "active")
        if principal_key is not None:
            query = query.where(leases.c.principal_key == principal_key)
        if database is not None:
            query = query.where(leases.c.database == database)
        return await self._fetch(query)

    async def reapable(self, now: datetime, minting_before: datetime) -> list[Lease]:
        """Leases to clean up: expired actives, interrupted revocations, mints abandoned before ``minting_before``."""
        query = select(leases).where(
            or_(
                and_(leases.c.state == "active", leases.c.expires_at <= now),
                leases.c.state == "revoking",
                and_(leases.c.state == "minting", leases.c.issued_at <= minting_before),
            )
        )
        return await self._fetch(query)

    async def _fetch(self, query: Any) -> list[Lease]:
        async with self._store.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_lease(row) for row in rows]


def _row(lease: Lease) -> dict[str, Any]:
    return {
        "id": lease.id,
        "principal_key": lease.principal_key,
        "subject": lease.subject,
        "issuer": lease.issuer,
        "database": lease.database,
        "db_login": lease.db_login,
        "db_role": lease.db_role,
        "privilege": lease.privilege,
        "issued_at": lease.issued_at,
        "expires_at": lease.expires_at,
        "state": lease.state,
        "revoke_reason": lease.revoke_reason,
    }


def _lease(row: Any) -> Lease:
    return Lease(
        id=row["id"],
        principal_key=row["principal_key"],
        subject=row["subject"],
        issuer=row["issuer"],
        database=row["database"],
        db_login=row["db_login"],
        db_role=row["db_role"],
        privilege=row["privilege"],
        issued_at=_utc(row["issued_at"]),
        expires_at=_utc(row["expires_at"]),
        state=cast("LeaseState", row["state"]),
        revoke_reason=row["revoke_reason"],
    )


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__: Sequence[str] = ["LeaseRepository"]
