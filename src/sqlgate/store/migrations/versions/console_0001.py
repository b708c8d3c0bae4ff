"""Console: signed-in sessions and browser logins under way, shared by every replica.

Revision ID: console_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "console_0001"
down_revision = "0001_foundation"
branch_labels = ("console",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("messages", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_table(
        "console_logins",
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state", name="pk_console_logins"),
    )
    op.create_index("ix_console_logins_expires_at", "console_logins", ["expires_at"])


def downgrade() -> None:
    op.drop_table("console_logins")
    op.drop_table("console_sessions")
