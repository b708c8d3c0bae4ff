"""Broker: a lease's password, encrypted with the key every replica shares, so any replica reuses it.

Revision ID: broker_0002
Revises: broker_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "broker_0002"
down_revision = "broker_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broker_leases") as batch:
        batch.add_column(sa.Column("sealed_secret", sa.Text, nullable=True))
        batch.add_column(sa.Column("minted_by", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broker_leases") as batch:
        batch.drop_column("minted_by")
        batch.drop_column("sealed_secret")
