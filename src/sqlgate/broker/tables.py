"""The broker's table: one row per lease, written before the login exists (its password sealed, when shared)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from sqlgate.store.tables import metadata

LEASE_STATES = ("minting", "active", "revoking", "revoked", "failed")

leases = Table(
    "broker_leases",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_key", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("database", String(64), nullable=False),
    Column("db_login", String(128), nullable=False),
    Column("db_role", String(64), nullable=True),
    Column("privilege", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("revoke_reason", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sealed_secret", Text, nullable=True),  # the password, encrypted with server.lease_key (broker_0002)
    Column("minted_by", Text, nullable=True),  # the replica that minted it
    Index("ix_broker_leases_state_expires_at", "state", "expires_at"),
    Index("ix_broker_leases_principal_key_database", "principal_key", "database"),
    Index("ix_broker_leases_db_login", "db_login"),
)
