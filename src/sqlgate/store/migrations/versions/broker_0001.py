"""Broker: the lease table.

Revision ID: broker_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "broker_0001"
down_revision = "0001_foundation"
branch_labels = ("broker",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_leases",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("principal_key", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("database", sa.String(64), nullable=False),
        sa.Column("db_login", sa.String(128), nullable=False),
        sa.Column("db_role", sa.String(64), nullable=True),
        sa.Column("privilege", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revoke_reason", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_broker_leases"),
    )
    op.create_index("ix_broker_leases_state_expires_at", "broker_leases", ["state", "expires_at"])
    op.create_index("ix_broker_leases_principal_key_database", "broker_leases", ["principal_key", "database"])
    op.create_index("ix_broker_leases_db_login", "broker_leases", ["db_login"])


def downgrade() -> None:
    op.drop_table("broker_leases")
