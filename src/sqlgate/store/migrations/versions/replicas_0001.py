"""Replicas: who is up, the sessions each holds, and requests to end a session held elsewhere.

Revision ID: replicas_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "replicas_0001"
down_revision = "0001_foundation"
branch_labels = ("replicas",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_key", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("instance", name="pk_replicas"),
    )
    op.create_index("ix_replicas_state_heartbeat_at", "replicas", ["state", "heartbeat_at"])
    op.create_table(
        "replica_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("replica", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replica_sessions"),
    )
    op.create_index("ix_replica_sessions_instance", "replica_sessions", ["instance"])
    op.create_table(
        "session_end_requests",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_end_requests"),
    )
    op.create_index("ix_session_end_requests_instance", "session_end_requests", ["instance"])


def downgrade() -> None:
    op.drop_table("session_end_requests")
    op.drop_table("replica_sessions")
    op.drop_table("replicas")
