"""The access-request tables: one row per request, one row per distinct approver."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from sqlgate.store.tables import metadata

REQUEST_STATES = ("pending", "approved", "denied", "expired")

access_requests = Table(
    "policy_access_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal_key", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("requester_name", Text, nullable=False),
    Column("database", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("duration_seconds", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("min_approvals", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", Text, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Index("ix_policy_access_requests_principal_key_database", "principal_key", "database"),
    Index("ix_policy_access_requests_status_expires_at", "status", "expires_at"),
)

request_approvals = Table(
    "policy_request_approvals",
    metadata,
    Column("request_id", String(32), ForeignKey("policy_access_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("approver_key", Text, primary_key=True),
    Column("approver_name", Text, nullable=False),
    Column("approved_at", DateTime(timezone=True), nullable=False),
)
