"""Audit: each chain head also signs the list of every chain id the state database holds.

Revision ID: audit_0002
Revises: audit_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0002"
down_revision = "audit_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.add_column(sa.Column("chains", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_heads") as batch:
        batch.drop_column("chains")
