"""The console's tables: signed-in sessions and browser logins under way, shared by every replica.

A session row is found by the SHA-256 of its cookie value, so reading the state database does not
give anyone a usable cookie. ``principal`` is the verified identity as JSON (never a token).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from sqlgate.store.tables import metadata

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("csrf", String(64), nullable=False),
    Column("principal", Text, nullable=False),
    Column("messages", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_sessions_expires_at", "expires_at"),
)

console_logins = Table(
    "console_logins",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("body", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_console_logins_expires_at", "expires_at"),
)
