"""The replicas' tables: who is up, which sessions each holds, and requests to end one."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, String, Table, Text

from sqlgate.store.tables import metadata

REPLICA_STATES = ("up", "draining", "gone")

replicas = Table(
    "replicas",
    metadata,
    Column("instance", String(32), primary_key=True),  # random per process start
    Column("name", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("audit_key", Text, nullable=True),  # the fingerprint of its audit signing key
    Index("ix_replicas_state_heartbeat_at", "state", "heartbeat_at"),
)

replica_sessions = Table(
    "replica_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("instance", String(32), nullable=False),
    Column("replica", Text, nullable=False),
    Column("summary", Text, nullable=False),  # LiveSession.summary() as JSON, no secrets
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_replica_sessions_instance", "instance"),
)

session_end_requests = Table(
    "session_end_requests",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("instance", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Index("ix_session_end_requests_instance", "instance"),
)
