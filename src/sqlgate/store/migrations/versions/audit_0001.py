"""Audit: hash-chained records and the signed head of each chain.

Revision ID: audit_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = "0001_foundation"
branch_labels = ("audit",)
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("issuer", sa.Text),
        sa.Column("database", sa.String(128)),
        sa.Column("session_id", sa.String(128)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_records_chain_seq", "audit_records", ["chain", "seq"], unique=True)
    for column in ("time", "subject", "database", "type"):
        op.create_index(f"ix_audit_records_{column}", "audit_records", [column])
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_heads")
    op.drop_table("audit_records")
